"""Rows of numbers from a CSV file, checked line by line, for ``chainrule predict``.

Each data row must hold exactly ``width`` finite numbers. The first row may be a
header instead: a row in which *no* field is a number (``x1,x2``) is skipped. Empty
lines are skipped. Anything else -- too few or too many values, a field that is not a
number, ``nan`` or ``inf``, a file with no data rows -- raises :class:`RowsError`
naming the file and line, before any row is returned, so a caller that reads first
and writes after never writes half an answer.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator

from chainrule.errors import ChainruleError

__all__ = ["RowsError", "read_rows"]

_SHOWN = 60  # characters of a bad row quoted in the message


class RowsError(ChainruleError, ValueError):
    """A CSV input that is not rows of numbers; the message names the file and line."""


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _quote(row: list[str]) -> str:
    text = ",".join(row)
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


def read_rows(lines: Iterable[str] | Iterable[bytes], width: int, name: str) -> list[list[float]]:
    """Parse CSV ``lines`` into rows of ``width`` floats; ``name`` labels the messages.

    ``lines`` are text, or bytes decoded here as UTF-8 one line at a time (so a bad
    byte is reported on its own line); a byte-order mark at the start is ignored.
    Fields may carry spaces around them and may be quoted. Raises :class:`RowsError`
    (``points.csv line 17: expected 2 numbers, got 'a,b,c' (3 values)``) at the first
    bad row, and when there are no data rows at all.
    """
    rows: list[list[float]] = []
    reader = csv.reader(_text(lines, name), strict=True)
    header = False
    line = 1  # where the next row starts
    try:
        for raw in reader:
            fields = [f.strip() for f in raw]
            if not any(fields) and len(fields) <= 1:
                pass  # an empty line
            elif not rows and not header and not any(map(_is_number, fields)):
                header = True  # e.g. x1,x2: names, not numbers
                if len(fields) != width:
                    raise RowsError(
                        f"{name} line {line}: the header {_quote(raw)} names {len(fields)} "
                        f"column{'s' if len(fields) != 1 else ''}; the model takes {width} "
                        "numbers"
                    )
            else:
                rows.append(_numbers(fields, raw, width, f"{name} line {line}"))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise RowsError(f"{name} line {line}: not CSV ({exc})") from None
    if not rows:
        what = "after the header" if header else "with no rows"
        raise RowsError(
            f"{name} line {reader.line_num + 1}: the file ends {what}; expected lines of "
            f"{width} comma-separated numbers, e.g. {','.join(['0.5'] * width)}"
        )
    return rows


def _text(lines: Iterable[str | bytes], name: str) -> Iterator[str]:
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RowsError(
                    f"{name} line {number}: not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start + 1} of the line); give a CSV file"
                ) from None
        yield line.removeprefix("\ufeff") if number == 1 else line


def _numbers(fields: list[str], raw: list[str], width: int, where: str) -> list[float]:
    expected = f"expected {width} number{'s' if width != 1 else ''}, got {_quote(raw)}"
    if len(fields) != width:
        count = f"{len(fields)} value{'s' if len(fields) != 1 else ''}"
        raise RowsError(f"{where}: {expected} ({count})")
    values = []
    for field in fields:
        try:
            x = float(field)
        except ValueError:
            what = repr(field) if field else "an empty field"
            raise RowsError(f"{where}: {expected} ({what} is not a number)") from None
        if not math.isfinite(x):
            raise RowsError(f"{where}: {expected} ({field!r} is not a finite number)")
        values.append(x)
    return values
