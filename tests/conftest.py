import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def vqldm_command() -> list[str]:
    "The installed `vqldm` console script, the way a user calls it."
    exe = shutil.which("vqldm") or str(Path(sys.executable).parent / "vqldm")
    if not Path(exe).is_file():
        pytest.fail("the vqldm console script is not installed: run `pip install -e .`")
    return [exe]


def run_vqldm(command, *args, timeout=600):
    "Run `vqldm run ARGS` and return the completed process."
    return subprocess.run([*command, "run", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, vqldm_command):
    "A finished `vqldm run --preset quick`, shared by the tests that read its output."
    out = tmp_path_factory.mktemp("cli") / "quick"
    result = run_vqldm(vqldm_command, "--out", str(out), "--preset", "quick", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    return out
