"""Shared test settings, and the Jupyter kernel that notebook tests run in."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, settings
from nbclient import NotebookClient

# Deterministic in CI; PyTorch's first calls are slow, so no per-example deadline.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "chainrule-tests"
CELL_TIMEOUT = 300  # seconds; a demo notebook may train a small network


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec for this interpreter, visible to jupyter_client; returns a work dir.

    The kernel runs *this* Python (``sys.executable``) with this checkout's ``src`` first
    on its path, whatever kernels are installed elsewhere: the kernelspec is written into
    a temporary directory that ``JUPYTER_PATH`` points at. The kernel works in a temporary
    directory, so notebooks cannot leave files in the repository."""
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


@pytest.fixture
def run_notebook(kernel_env: Path) -> Callable[[nbformat.NotebookNode], None]:
    """Execute a notebook in place, in one fresh kernel of :func:`kernel_env`; raises
    nbclient's ``CellExecutionError``, naming the cell, on any error."""

    def run(nb: nbformat.NotebookNode) -> None:
        client = NotebookClient(
            nb,
            kernel_name=KERNEL_NAME,
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(kernel_env)}},
        )
        client.execute()

    return run
