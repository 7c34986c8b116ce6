"""The pipeline notebook under papermill, called the way the README shows."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import ROOT

PIPELINE = ROOT / "nbs" / "10_pipeline.ipynb"


def test_pipeline_has_one_parameters_cell():
    nb = nbformat.read(PIPELINE, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "preset =" in tagged[0].source
    assert "out_dir =" in tagged[0].source


def test_papermill_matches_vqldm_run(tmp_path, quick_run):
    papermill = shutil.which("papermill") or str(Path(sys.executable).parent / "papermill")
    out = tmp_path / "x"
    result = subprocess.run([papermill, str(PIPELINE), str(tmp_path / "x.ipynb"), "-p", "preset", "quick",
                             "-p", "out_dir", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = nbformat.read(tmp_path / "x.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)

    # The notebook's own default preset is "default": "quick" in metrics.json shows that -p reached it.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "quick"

    # Same seed, same device: the same samples and metrics as `vqldm run`, in another process and kernel.
    reference = json.loads((quick_run / "metrics.json").read_text())
    for key in ("reconstruction_mse_test", "codes_used", "perplexity", "mmd2_generated_vs_test"):
        assert metrics[key] == reference[key], key
    assert np.array_equal(np.load(out / "samples.npy"), np.load(quick_run / "samples.npy"))


@pytest.mark.parametrize("prior", ["wavenet", "maskgit", "latent-diffusion"])
def test_pipeline_runs_each_prior(tmp_path, prior):
    # IN_TEST shrinks every training phase to one epoch: this checks the wiring, not sample quality.
    papermill = shutil.which("papermill") or str(Path(sys.executable).parent / "papermill")
    out = tmp_path / prior
    result = subprocess.run([papermill, str(PIPELINE), str(tmp_path / "x.ipynb"), "-p", "prior", prior,
                             "-p", "out_dir", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "IN_TEST": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prior"] == prior
    samples = np.load(out / "samples.npy")
    assert np.isfinite(samples).all()
    assert (out / "prior.safetensors").is_file()


def test_pipeline_multichannel_npz(tmp_path):
    # Three leads of class-dependent sines: the series go through training, sampling and evaluation with C = 3.
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 64, dtype=np.float32)
    y = np.arange(60) % 2
    x = np.stack([np.stack([np.sin(2 * np.pi * (k + 1 + label) * t + rng.normal(0, 0.1)) for k in range(3)])
                  for label in y]).astype(np.float32)  # (60, 3, 64)
    data = tmp_path / "leads.npz"
    np.savez(data, x=x, y=y)
    papermill = shutil.which("papermill") or str(Path(sys.executable).parent / "papermill")
    out = tmp_path / "run"
    result = subprocess.run([papermill, str(PIPELINE), str(tmp_path / "x.ipynb"), "-p", "data", str(data),
                             "-p", "out_dir", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "IN_TEST": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    samples = np.load(out / "samples.npy")
    assert samples.shape[1:] == (3, 64)
    assert np.isfinite(samples).all()
