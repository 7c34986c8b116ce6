"""Print one of the README's two set-up commands: `install` or `test`.

The README marks each command's code block with an HTML comment `<!-- command: NAME -->` on the line
before it; .ci/run runs the `test` command exactly as the README shows it.
"""
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_command(name: str, text: str | None = None) -> str:
    "Return the command in the code block after `<!-- command: name -->` in the README."
    text = README.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"<!-- command: {re.escape(name)} -->\s*```[a-z]*\n(.*?)\n```", text, re.S)
    if match is None:
        raise SystemExit(f"README.md has no code block marked <!-- command: {name} -->")
    return match.group(1).strip()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("install", "test"):
        raise SystemExit("usage: python scripts/readme_command.py install|test")
    print(readme_command(sys.argv[1]))
