"""Rows of numbers from a CSV file, checked line by line, for ``chainrule predict
--input-file`` and ``chainrule train --data``.

Each data row must hold exactly ``width`` finite numbers; a width of ``None`` is the
first row's (a header's or a data row's), which every row must then have. The first
row may be a header instead: a row in which *no* field is a number (``x1,x2``) is
skipped. Empty lines are skipped. Anything else -- too few or too many values, a field
that is not a number, ``nan`` or ``inf``, a file with no data rows -- raises
:class:`RowsError` naming the file and line, before any row is returned, so a caller
that reads first and writes after never writes half an answer.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator

from chainrule.errors import ChainruleError

__all__ = ["RowsError", "numbered_rows", "read_rows"]

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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def read_rows(
    lines: Iterable[str] | Iterable[bytes], width: int | None, name: str
) -> list[list[float]]:
    """Parse CSV ``lines`` into rows of ``width`` floats; ``name`` labels the messages.

    ``lines`` are text, or bytes decoded here as UTF-8 one line at a time (so a bad
    byte is reported on its own line); a byte-order mark at the start is ignored.
    Fields may carry spaces around them and may be quoted. ``width`` None takes the
    first row's. Raises :class:`RowsError` (``points.csv line 17: expected 2 numbers,
    got 'a,b,c' (3 values)``) at the first bad row, and when there are no data rows.
    """
    return [row for _, row in numbered_rows(lines, width, name)]


def numbered_rows(
    lines: Iterable[str] | Iterable[bytes], width: int | None, name: str
) -> Iterator[tuple[int, list[float]]]:
    """:func:`read_rows`, one ``(line number, row)`` at a time, for a caller that checks
    more of each row (``chainrule train --data``'s labels) and names its line.

    Rows already yielded are good; a bad one raises :class:`RowsError` when reached,
    and a file with no data rows raises at the end.
    """
    reader = csv.reader(_text(lines, name), strict=True)
    header, rows = False, 0
    source = ""  # where an inferred width comes from: " as on line 3"
    line = 1  # where the next row starts
    try:
        for raw in reader:
            fields = [f.strip() for f in raw]
            if not any(fields) and len(fields) <= 1:
                pass  # an empty line
            elif not rows and not header and not any(map(_is_number, fields)):
                header = True  # e.g. x1,x2: names, not numbers
                if width is None:
                    width, source = len(fields), f" as the header on line {line} names"
                elif len(fields) != width:
                    raise RowsError(
                        f"{name} line {line}: the header {_quote(raw)} names "
                        f"{_plural(len(fields), 'column')}; the model takes {width} numbers"
                    )
            else:
                if width is None:
                    width, source = len(fields), f" as on line {line}"
                yield line, _numbers(fields, raw, width, name, line, source)
                rows += 1
            line = reader.line_num + 1
    except csv.Error as exc:
        raise RowsError(f"{name} line {line}: not CSV ({exc})") from None
    if not rows:
        what = "after the header" if header else "with no rows"
        example = f", e.g. {','.join(['0.5'] * width)}" if width else ""
        numbers = f"{width} comma-separated numbers" if width else "comma-separated numbers"
        raise RowsError(
            f"{name} line {reader.line_num + 1}: the file ends {what}; expected lines of "
            f"{numbers}{example}"
        )


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


def _numbers(
    fields: list[str], raw: list[str], width: int, name: str, line: int, source: str
) -> list[float]:
    """The row's ``width`` finite numbers; else :class:`RowsError` (the message is made
    only then: this runs once a row, 100,000 times for a big file)."""
    if len(fields) == width:
        try:
            values = [float(field) for field in fields]
        except ValueError:
            pass
        else:
            if all(map(math.isfinite, values)):
                return values
    expected = f"{name} line {line}: expected {_plural(width, 'number')}{source}, got {_quote(raw)}"
    if len(fields) != width:
        raise RowsError(f"{expected} ({_plural(len(fields), 'value')})")
    for field in fields:
        if not _is_number(field):
            what = repr(field) if field else "an empty field"
            raise RowsError(f"{expected} ({what} is not a number)")
        if not math.isfinite(float(field)):
            raise RowsError(f"{expected} ({field!r} is not a finite number)")
    raise AssertionError("unreachable: a row with no bad field was refused")
