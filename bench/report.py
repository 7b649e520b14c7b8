"""Recording benchmark results in ``bench/RESULTS.md``: the machine, the commit, a table.

Each script owns one block of the file between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` and rewrites only that block, so the hand-written analysis
around the blocks stays as it is.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """``Measured <date> on commit `<sha>`; machine: <cores, CPU, Python, OS>.``"""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "bench", ":(exclude)bench/RESULTS.md"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    described = (
        f"{os.cpu_count()} cores, {platform.machine()} ({cpu_model()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    changes = " (with uncommitted changes)" if dirty else ""
    when = date.today().isoformat()
    return f"Measured {when} on commit `{commit}`{changes}; machine: {described}."


def write_block(path: Path, name: str, header: str, table: str) -> None:
    """Put ``header`` and ``table`` in block ``name`` of ``path`` (appended if new)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{header}\n{table}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)
