"""The lecture's own notebooks run on chainrule's ``Value`` and print the lecture's numbers.

``tests/clients/`` holds the two notebooks of the micrograd lecture byte for byte as
published (their README gives the source and the SHA-256 sums checked here). Each is
run twice in one kernel: every code cell as published, with the notebook's own ``Value``;
then again with its ``class Value`` (and ``draw_dot``) replaced by chainrule's, cells
otherwise unchanged. ``random`` is seeded the same before each run (the second notebook
draws its weights from it). After every cell a probe prints the data and grad of every
``Value`` the notebook holds by name and of its network's parameters, so the lecture's
manual walk through backpropagation (``o._backward()``, ...), which prints nothing, is
compared too. Outputs are compared cell by cell: the same text, numbers to 1e-9.
"""

from __future__ import annotations

import ast
import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"
NOTEBOOKS = [
    "micrograd_lecture_first_half_roughly.ipynb",
    "micrograd_lecture_second_half_roughly.ipynb",
]

#: What replaces the notebook's own definitions in the run on chainrule.
SWAPS = {"Value": "from chainrule import Value", "draw_dot": "from chainrule import draw_dot"}

SEED = "import random as _random\n_random.seed(20)"
RESET = "%reset -f"
PROBE = """\
_probe = {}
for _name, _v in sorted(globals().items()):
    if _name.startswith("_"):  # IPython's output history: _, _12, ...
        continue
    if type(_v).__name__ == "Value":
        _probe[_name] = (float(_v.data), float(_v.grad))
    elif type(_v).__name__ == "MLP":
        _probe[_name] = [(float(p.data), float(p.grad)) for p in _v.parameters()]
print("probe", _probe)"""

NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|-?inf|nan")
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# chainrule's repr adds grad and label to the lecture's Value(data=...)
CHAINRULE_REPR = re.compile(r"(Value\(data=[^,)]+)(?:, grad=[^,)]+)?(?:, label='[^']*')?\)")
VALUE_LIST = re.compile(r"^\[(?:Value\(data=[^)]*\)(?:,\s*)?)*\]$")


def test_the_notebooks_are_the_published_bytes() -> None:
    sums = dict(
        reversed(line.split())
        for line in (CLIENTS / "README.md").read_text().splitlines()
        if re.fullmatch(r"\s+[0-9a-f]{64}  \S+", line)
    )
    assert sorted(sums) == sorted([*NOTEBOOKS, "LICENSE-nn-zero-to-hero"])
    for name, digest in sums.items():
        assert hashlib.sha256((CLIENTS / name).read_bytes()).hexdigest() == digest, name


def on_chainrule(source: str) -> tuple[str, list[str]]:
    """``source`` with its top-level ``class Value`` / ``def draw_dot`` replaced by
    chainrule's imports, and the names replaced."""
    if not any(f"class {name}" in source or f"def {name}" in source for name in SWAPS):
        return source, []
    lines = source.splitlines()
    swapped = []
    for node in reversed(ast.parse(source).body):
        name = getattr(node, "name", None)
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and name in SWAPS:
            assert node.end_lineno is not None
            lines[node.lineno - 1 : node.end_lineno] = [SWAPS[name]]
            swapped.append(name)
    return "\n".join(lines), swapped


def code_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def build_runs(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """One notebook holding both runs: each published cell (then the probe) with the
    notebook's own Value, a reset, then each cell again (then the probe) on chainrule."""
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    swapped: list[str] = []
    ours = []
    for source in sources:
        source, names = on_chainrule(source)
        swapped += names
        ours.append(source)
    cells = [code_cell(SEED)]
    for source in sources:
        cells += [code_cell(source), code_cell(PROBE)]
    cells += [code_cell(RESET), code_cell(SEED)]
    for source in ours:
        cells += [code_cell(source), code_cell(PROBE)]
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata), swapped


def shown(cell: nbformat.NotebookNode) -> str:
    """What a cell printed and displayed, as text, addresses and chainrule's longer
    repr made comparable."""
    parts = []
    for output in cell.outputs:
        assert output.output_type != "error", "".join(output.traceback)
        if output.output_type == "stream":
            parts.append(output.text)
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    text = CHAINRULE_REPR.sub(r"\1)", ADDRESS.sub("", "".join(parts)))
    return text


def assert_same_output(ours: str, theirs: str, where: str) -> None:
    assert NUMBER.sub("#", ours) == NUMBER.sub("#", theirs), where
    a, b = [float(x) for x in NUMBER.findall(ours)], [float(x) for x in NUMBER.findall(theirs)]
    if VALUE_LIST.match(theirs.strip()):  # a topological order: theirs walks a set
        a, b = sorted(a), sorted(b)
    assert len(a) == len(b), where
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {x} != {y}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_cell_runs_on_chainrule_with_the_lectures_numbers(
    name: str, run_notebook: Callable[[nbformat.NotebookNode], None]
) -> None:
    published = nbformat.read(CLIENTS / name, as_version=4)
    nb, swapped = build_runs(published)
    assert sorted(swapped) == ["Value", "draw_dot"]
    run_notebook(nb)
    n = sum(cell.cell_type == "code" for cell in published.cells)
    theirs, ours = nb.cells[1 : 1 + 2 * n], nb.cells[3 + 2 * n :]
    assert len(ours) == len(theirs) == 2 * n
    for i, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        where = f"{name}, code cell {i // 2}{' (probe)' if i % 2 else ''}: {mine.source[:40]!r}"
        assert_same_output(shown(mine), shown(reference), where)
