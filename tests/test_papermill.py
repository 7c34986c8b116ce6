"""The pipeline notebook under papermill, called the way the README shows."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from conftest import ROOT

PIPELINE = ROOT / "nbs" / "10_pipeline.ipynb"


def test_pipeline_has_one_parameters_cell():
    nb = nbformat.read(PIPELINE, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "preset =" in tagged[0].source
    assert "out_dir =" in tagged[0].source


def test_papermill_quick_preset(tmp_path):
    papermill = shutil.which("papermill") or str(Path(sys.executable).parent / "papermill")
    out = tmp_path / "x"
    result = subprocess.run([papermill, str(PIPELINE), str(tmp_path / "x.ipynb"), "-p", "preset", "quick",
                             "-p", "out_dir", str(out), "-p", "seed", "1"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "quick"
    assert metrics["seed"] == 1  # the -p value reached the notebook
    executed = nbformat.read(tmp_path / "x.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
