"""What `make test` needs besides Python, checked before anything runs.

Run by `make test` with the Python that will create the virtual environment, so it uses
the standard library only. It names each missing prerequisite with the command that
installs it (Debian/Ubuntu, macOS) and exits 1; with everything there it prints nothing
and exits 0. The tests themselves never skip: without these they would fail later, one
by one, after minutes of installing.

    python3 tools/preflight.py
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

#: Where the explorer's browser tests find Chromium (tests/test_explorer_browser.py).
CHROMIUM = os.environ.get("CHAINRULE_CHROMIUM", "/usr/bin/chromium")


def missing() -> list[str]:
    """One line for each prerequisite this machine lacks: what it is and how to get it."""
    lines = []
    if sys.version_info < (3, 10):  # noqa: UP036 (run by whatever python3 there is)
        found = ".".join(map(str, sys.version_info[:3]))
        lines.append(
            f"Python 3.10 or newer (this is {found}): Debian/Ubuntu `sudo apt-get install "
            "python3`; macOS `brew install python`; then `make test PYTHON=python3.12`, say"
        )
    if importlib.util.find_spec("ensurepip") is None or importlib.util.find_spec("venv") is None:
        lines.append(
            "Python's venv module (to create .venv): Debian/Ubuntu `sudo apt-get install "
            "python3-venv`"
        )
    if shutil.which("dot") is None:
        lines.append(
            "Graphviz's `dot` program (the graph-drawing tests render with it): "
            "Debian/Ubuntu `sudo apt-get install graphviz`; macOS `brew install graphviz`"
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        lines.append(
            f"Chromium at {CHROMIUM} (the explorer's browser tests drive it): Debian/Ubuntu "
            "`sudo apt-get install chromium`; macOS `brew install --cask chromium`, then "
            "`export CHAINRULE_CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium`"
        )
    return lines


def main() -> int:
    """Print what is missing on stderr; 1 if anything is, else 0."""
    lacking = missing()
    if not lacking:
        return 0
    print("make test: this machine lacks what the tests need:", file=sys.stderr)
    for line in lacking:
        print(f"  - {line}", file=sys.stderr)
    print("Install them and run `make test` again; nothing was run.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
