"""The import path ``chainrule.csvrows``, kept for users: the code is in
:mod:`chainrule.io.csvrows` (rows of numbers from a CSV file, for ``chainrule predict``)."""

from __future__ import annotations

from chainrule.io.csvrows import RowsError, read_rows

__all__ = ["RowsError", "read_rows"]
