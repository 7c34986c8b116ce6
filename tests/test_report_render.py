"""The HTML report of a run, opened in headless Chromium: its figures must show."""
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# Flags for a closed network: without the background-networking ones Chromium retries many connections.
# The window is tall because the training logs fill the first screens of the report.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,16000", "--virtual-time-budget=5000"]
MATPLOTLIB_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # colour C0, the first line of every figure


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed: install Debian's chromium package to render reports")
def test_report_renders_with_figures(quick_run, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    (quick_run / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    pixels = imread(shot)[..., :3]
    not_white = (pixels < 0.95).any(axis=-1).mean()
    blue = (np.abs(pixels - MATPLOTLIB_BLUE) < 0.08).all(axis=-1).mean()
    assert not_white > 0.02, f"screenshot is nearly blank: {not_white:.2%} of pixels are not white"
    # The report's figures draw their first line in C0; the training logs and code cells never use it.
    assert blue > 0.0005, f"no figure lines visible: {blue:.3%} of pixels have matplotlib's first colour"
