"""Every chapter has one papermill `parameters` cell, and runs under papermill with small values."""
import ast
import configparser
import json
import subprocess

import papermill
import pytest

from conftest import ROOT

NBS = ROOT / "nbs"
TMP = "<tmp_path>"  # replaced by the test's temporary folder before papermill runs the chapter

# NOTE: `OMP_NUM_THREADS=1 pytest tests/test_chapters.py` took 277 s on two CPU cores shared with other jobs
# (load average 3.5) when 19 of the 21 chapters ran. Starting each chapter's kernel costs about 4-5 s.

# Small parameter values for each chapter. Where a chapter checks the quality of its training, the values
# match the sizes that `nbdev_test` runs under IN_TEST, so those checks still pass.
SMALL = {
    "00_core": {"seed": 7, "work_dir": TMP},
    "01_data": {"n_per_class": 2, "work_dir": TMP},
    "01a_formats": {"work_dir": TMP},
    "02_quantize": {"collapse_epochs": 1},
    "03_autoencoder": {"seed": 1},
    "04_train": {"epochs": 1},
    "05_prior_ar": {"toy_epochs": 15, "guided_epochs": 4, "work_dir": TMP},
    "05a_prior_utils": {"table_epochs": 40},
    "06_sample": {"vqvae_epochs": 3, "prior_epochs": 20, "n_per_class": 4, "small_models": True},
    "07_metrics": {"n_reference": 500, "n_half": 500},
    "08_run": {"work_dir": TMP},
    "09_cli": {"work_dir": TMP},
    "10_pipeline": {"preset": "quick", "epochs": 1, "samples_per_class": 4, "out_dir": TMP},
    "11_prior_wavenet": {"vqvae_epochs": 1, "prior_epochs": 1, "n_val": 200, "work_dir": TMP},
    "12_prior_maskgit": {"vqvae_epochs": 1, "prior_epochs": 1, "n_val": 200, "work_dir": TMP},
    "13_prior_latent_diffusion": {"toy_epochs": 50, "vqvae_epochs": 2, "prior_epochs": 3, "small_models": True,
                                  "ddim_step_counts": [2, 5], "work_dir": TMP},
    "14_priors": {"vqvae_epochs": 1, "prior_epochs": 1, "n_train": 100, "n_samples": 20, "work_dir": TMP},
    "15_evaluate": {"small": True, "work_dir": TMP},
    "16_sweep": {"work_dir": TMP},
    "17_variational": {"vqvae_epochs": 1, "prior_epochs": 1, "n_train": 64},
}


def has_code(path):
    return any(c.get("cell_type") == "code" for c in json.loads(path.read_text())["cells"])


CHAPTERS = sorted(p for p in NBS.glob("*.ipynb") if has_code(p))


def parameters_cells(path):
    "Return the code cells of the committed notebook whose metadata tags include `parameters`."
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]


def parameter_values(source: str) -> dict:
    "Parse a parameters cell of `NAME = <literal>` lines into a dict. Raise AssertionError on any other statement."
    values = {}
    for node in ast.parse(source).body:
        message = f"line {node.lineno} is not a plain `NAME = <literal>` assignment: {ast.unparse(node)!r}"
        assert isinstance(node, ast.Assign), message
        assert len(node.targets) == 1, message
        assert isinstance(node.targets[0], ast.Name), message
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def nbs_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "nbs"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_settings_keep_cell_tags():
    # nbdev_clean drops every cell metadata key not listed here, and with it the `parameters` tag.
    parser = configparser.ConfigParser(delimiters=["="])
    parser.read(ROOT / "settings.ini")
    assert "tags" in parser["DEFAULT"]["allowed_cell_metadata_keys"].split()


def test_small_covers_every_chapter():
    assert sorted(SMALL) == [p.stem for p in CHAPTERS]


def test_parameter_values_rejects_code():
    assert parameter_values("a = 1  # one\nb = 'x'\nc = (2, 5)") == {"a": 1, "b": "x", "c": (2, 5)}
    for source in ("a = len('x')", "import os", "a = b = 1", "a += 1", "a, b = 1, 2", "if True:\n    a = 1"):
        with pytest.raises((AssertionError, ValueError)):
            parameter_values(source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_parameters_cell(path):
    cells = parameters_cells(path)
    assert len(cells) == 1, f"{path.name} has {len(cells)} cells tagged `parameters`; it needs exactly one"
    source = "".join(cells[0]["source"])
    values = parameter_values(source)
    assert values, f"{path.name}: the parameters cell assigns no name"
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) == len(values), f"{path.name}: the parameters cell needs one assignment per line"
    for line in lines:
        assert "#" in line, f"{path.name}: parameter line without a comment on what it sets: {line!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_under_papermill(path, tmp_path, monkeypatch):
    cells = parameters_cells(path)
    assert len(cells) == 1, f"{path.name} has {len(cells)} cells tagged `parameters`; it needs exactly one"
    defaults = parameter_values("".join(cells[0]["source"]))
    unknown = sorted(set(SMALL[path.stem]) - set(defaults))
    assert not unknown, f"SMALL[{path.stem!r}] sets {unknown}, which the parameters cell does not define"

    # The small values alone must make the chapter fast, so the kernel does not see nbdev_test's IN_TEST.
    monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels inherit this process's environment
    out = tmp_path / "out"
    out.mkdir()
    parameters = {name: str(out) if value == TMP else value for name, value in SMALL[path.stem].items()}
    before = nbs_status()
    try:
        papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters=parameters,
                                   kernel_name="python3", cwd=str(NBS), progress_bar=False, execution_timeout=600)
    except papermill.PapermillExecutionError as error:
        # cell_index counts the cells of the executed copy, which has the injected parameters cell too.
        pytest.fail(f"{path.name}: cell {error.cell_index} of the executed notebook (execution count {error.exec_count}) "
                    f"raised {error.ename}: {error.evalue}\n--- cell source ---\n{error.source}", pytrace=False)
    assert nbs_status() == before, f"{path.name} wrote into nbs/:\n{nbs_status()}"
