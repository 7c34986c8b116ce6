"""A run whose notebook fails in a real kernel leaves the earlier complete run untouched."""
import json

import nbformat
import pytest

import vqldm_nb.cli as cli


def failing_notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "quick"\nout_dir = "x"\ndata = ""\ntest_data = ""\nprior = "ar"\nseed = 0\ndevice = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params,
                nbformat.v4.new_code_cell('from pathlib import Path\n(Path(out_dir) / "half.txt").write_text("partial")'),
                nbformat.v4.new_code_cell('raise RuntimeError("training diverged")')]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_failed_run_keeps_earlier_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"reconstruction_mse_test": 0.1}))
    notebook = failing_notebook(tmp_path / "failing.ipynb")
    monkeypatch.setattr(cli, "pipeline_notebook_path", lambda: notebook)

    with pytest.raises(cli.RunFailed, match="RuntimeError: training diverged"):
        cli.run_pipeline(out, preset="quick", log_output=False)

    assert json.loads((out / "metrics.json").read_text()) == {"reconstruction_mse_test": 0.1}
    assert not (out / "half.txt").exists()
    failed = tmp_path / "run.failed"
    assert (failed / "half.txt").read_text() == "partial"
    assert "training diverged" in (failed / "report.html").read_text()
    assert not (failed / "metrics.json").exists()
    assert not (tmp_path / "run.partial").exists()
