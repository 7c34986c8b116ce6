"""Write README.md from nbs/index.ipynb with nbconvert (nbdev_readme needs Quarto).

Usage: python scripts/make_readme.py [--check]
With --check, exit 1 when README.md differs from what the notebook gives, and write nothing.
"""
import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file. -->\n\n"


def render() -> str:
    "Return the README text rendered from the index notebook."
    nb = nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4)
    # Drop nbdev directive cells and hidden cells: they are for the notebook reader only.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.source.lstrip().startswith(("#| hide", "#|hide")))]
    exporter = MarkdownExporter()
    exporter.exclude_output = True
    body, _ = exporter.from_notebook_node(nb)
    # Links are relative to nbs/ in the notebook and to the repository root in README.md.
    body = re.sub(r"\]\((?!https?://|#|/)(images/[^)]+)\)", r"](nbs/\1)", body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    text = render()
    readme = ROOT / "README.md"
    if args.check:
        if readme.read_text(encoding="utf-8") != text:
            print("README.md is out of date: run `python scripts/make_readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
