import shutil
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
