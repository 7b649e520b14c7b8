"""The README: a front page whose example runs and prints what it says, whose links
resolve, and whose claims about examples/quickstart.py hold."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "examples" / "quickstart.py"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_examples_run_and_print_what_they_claim() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 1
    namespace: dict[str, object] = {}
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), namespace)
        printed = out.getvalue().split()
        claimed = re.findall(r"print\(.*\)\s+# ([-\w.]+)", block)
        assert printed == claimed  # each print's comment states its output


def test_readme_is_a_front_page_of_at_most_150_lines() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_readme_links_point_to_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert "docs/neuron.svg" in targets and "docs/getting-started.md" in targets
    assert [t for t in targets if "://" not in t and not (ROOT / t).exists()] == []


def test_quickstart_runs_and_every_make_target_it_names_runs_it() -> None:
    """examples/quickstart.py prints the lecture's numbers, and a `make` target that its
    docstring says runs it does run it."""
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], capture_output=True, text=True, check=True
    )
    for number in ("24.7041", "138.8338", "645.5773"):  # micrograd's README's values
        assert number in done.stdout
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    claims = re.findall(r"[Rr]un it with ``make (\w+)``", QUICKSTART.read_text(encoding="utf-8"))
    for target in claims:
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)*)", makefile, re.M)
        assert recipe is not None and "quickstart.py" in recipe.group(1), target
