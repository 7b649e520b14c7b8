"""Every notebook in ``examples/`` runs from top to bottom without an error.

Each notebook is executed with nbclient in a fresh kernel that runs *this* Python
(``sys.executable``) with this checkout's ``src`` first on its path, whatever kernels
are installed elsewhere: the test writes a kernelspec into a temporary directory and
points ``JUPYTER_PATH`` at it. The kernel works in a temporary directory, so the
notebooks cannot leave files in the repository. Notebooks are stored without outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
KERNEL_NAME = "chainrule-tests"
CELL_TIMEOUT = 300  # seconds; a demo notebook may train a small network


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {ROOT / 'examples'}"


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec for this interpreter, visible to jupyter_client; returns a work dir."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    pythonpath = os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chainrule tests",
        "language": "python",
        "env": {
            "PYTHONPATH": pythonpath,
            "IPYTHONDIR": str(tmp_path / "ipython"),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_env: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(kernel_env)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: code cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: code cell {i} has a count"
