"""The main job through the installed `vqldm` command: a full quick run, and bad input."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vqldm_nb.autoencoder import VQVAE
from vqldm_nb.prior_ar import load_prior
from vqldm_nb.train import load_vqvae

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = {"reconstruction_mse_test", "codes_used", "perplexity", "nn_distance_generated_median",
               "nn_distance_real_test_median", "mmd2_generated_vs_test", "wall_time_s", "device"}


from conftest import run_vqldm


def test_quick_run_writes_metrics(quick_run):
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics), METRIC_KEYS - set(metrics)
    assert metrics["preset"] == "quick"
    assert 0 < metrics["reconstruction_mse_test"] < 1.0  # standardised units: 1.0 is predicting the mean
    assert metrics["codes_used"] > 1
    assert metrics["mmd2_generated_vs_test"] == pytest.approx(metrics["mmd2_generated_vs_test"])  # not NaN


def test_quick_run_writes_figures_and_report(quick_run):
    for name in ("data", "training", "reconstructions", "code_histogram", "uniform_prior_samples",
                 "generated_vs_real", "nearest_neighbour"):
        assert (quick_run / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name
    html = (quick_run / "report.html").read_text()
    assert "data:image/png;base64" in html
    assert not list(quick_run.parent.glob("*.partial"))


def test_quick_run_checkpoints_load(quick_run):
    vqvae, normalizer = load_vqvae(quick_run)
    assert isinstance(vqvae, VQVAE)
    prior = load_prior(quick_run)
    assert prior.cfg.codebook_size == vqvae.cfg.codebook_size


@pytest.mark.parametrize("name, text, expected", [
    ("nan.tsv", "1\t0.1\t0.2\t0.3\t0.4\t0.5\n2\t0.1\tnan\t0.3\t0.4\t0.5\n", "line 2: NaN"),
    ("short.tsv", "1\t0.1\t0.2\t0.3\n2\t0.1\t0.2\t0.3\n", "line 1: series of 3 samples is shorter"),
])
def test_bad_data_file_is_rejected(tmp_path, vqldm_command, name, text, expected):
    data = tmp_path / name
    data.write_text(text)
    out = tmp_path / "run"
    result = run_vqldm(vqldm_command, "--out", str(out), "--preset", "quick", "--data", str(data), timeout=120)
    assert result.returncode == 2
    assert str(data) in result.stderr
    assert expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_data_file_is_rejected(tmp_path, vqldm_command):
    missing = tmp_path / "nowhere.tsv"
    result = run_vqldm(vqldm_command, "--out", str(tmp_path / "run"), "--data", str(missing), timeout=120)
    assert result.returncode == 2
    assert f"data file not found: {missing}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset_is_rejected(tmp_path, vqldm_command):
    result = run_vqldm(vqldm_command, "--out", str(tmp_path / "run"), "--preset", "huge", timeout=120)
    assert result.returncode == 2
    assert "invalid choice: 'huge'" in result.stderr


def test_relative_data_path_small_file(tmp_path, vqldm_command):
    # Ten series: the held-out fifth has two, fewer than the five beats the reconstruction figure shows.
    t = np.linspace(0, 1, 32)
    rows = [f"{k % 2 + 1}\t" + "\t".join(f"{v:.5f}" for v in np.sin(2 * np.pi * (k % 2 + 1) * t + 0.1 * k)) for k in range(10)]
    (tmp_path / "beats.tsv").write_text("\n".join(rows) + "\n")
    result = subprocess.run([*vqldm_command, "run", "--out", "run", "--preset", "quick", "--quiet", "--data", "beats.tsv"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"].startswith(str(tmp_path / "beats.tsv"))


def test_binary_data_file_is_rejected(tmp_path, vqldm_command):
    data = tmp_path / "weights.pkl"
    data.write_bytes(b"\x80\x04\x95\xff\x00")
    result = run_vqldm(vqldm_command, "--out", str(tmp_path / "run"), "--data", str(data), timeout=120)
    assert result.returncode == 2
    assert "unsupported file extension '.pkl'" in result.stderr
