"""Where a test's own lines are: for checking that an error names the user's line."""

from __future__ import annotations

from pathlib import Path


def line_of(path: str, marker: str) -> int:
    """The line of the file ``path`` (a test's ``__file__``) holding ``marker``, which
    a test writes in a comment on the line it expects an error to name."""
    for i, text in enumerate(Path(path).read_text().splitlines(), 1):
        if marker in text and "line_of(" not in text:
            return i
    raise AssertionError(f"no line of {path} holds {marker!r}")
