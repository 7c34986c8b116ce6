"""Project rules that no notebook checks: settings, clean notebooks, the README commands."""
import configparser
import json

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))


def settings():
    parser = configparser.ConfigParser(delimiters=["="])
    parser.read(ROOT / "settings.ini")
    return parser["DEFAULT"]


def test_settings_test_flags():
    assert settings()["tst_flags"].split() == ["notest", "slow", "gpu"]


def test_settings_keep_parameters_tag():
    assert settings()["allowed_cell_metadata_keys"].strip() == "tags"
    assert settings()["clear_all"].strip() == "False"
    assert settings()["jupyter_hooks"].strip() == "False"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    with_output = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert with_output == [], f"{path.name}: cells {with_output} carry outputs; run nbstripout --keep-id and nbdev_clean"


def test_readme_has_both_commands():
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_command import readme_command
    install, test = readme_command("install"), readme_command("test")
    assert "pip install -e ." in install
    assert "vqldm run" in install
    assert "nbdev_test" in test
    assert "pytest tests" in test
    assert "torch==2.13.0" in install
    assert "torch==2.13.0" in test
