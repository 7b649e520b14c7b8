"""`chainrule predict`: classify points with a saved model, from the command line or a CSV file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    UsageError,
    atomic_write_text,
    check_output_file,
    debug_flag,
    output_flag,
    refuse_overwriting_inputs,
    row,
)

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Classify points with a model.json written by train or demo.

--input X1,X2 prints "class C  score S" for each point given. --input-file FILE
reads a CSV file (- for standard input): one point per line, exactly as many
numbers as the model takes; a first line with no numbers in it (x1,x2) is a
header and skipped, as are empty lines. Every line is checked before anything is
written: a bad line stops the command with an error naming it, and no output.
It writes CSV, "class,score" and then one line per input point in the same order,
to standard output or, with -o FILE, atomically to FILE.

The class is 0..k-1. What the score means depends on the loss the model was
trained with (stored in model.json):
  hinge, mse  the model's output, a margin: class 1 when it is > 0, class 0
              otherwise; the farther from 0, the surer
  bce         the probability of class 1, sigmoid(output); class 1 when > 0.5
  softmax     the probability of the predicted class, its softmax share (1/k..1)"""


def add_parser(subparsers: Any) -> None:
    """Add `chainrule predict` to ``subparsers``."""
    p = subparsers.add_parser(
        "predict",
        help="classify points with a saved model: one on the command line, or a CSV file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
    )
    p.add_argument("--model", type=Path, required=True, help="a model.json written by train/demo")
    points = p.add_mutually_exclusive_group(required=True)
    points.add_argument(
        "--input",
        type=row,
        action="append",
        metavar="X1,X2",
        help="comma-separated input numbers; repeat for several points "
        "(write --input=-1,0.5 when the first number is negative)",
    )
    points.add_argument(
        "--input-file",
        type=Path,
        metavar="FILE",
        help="a CSV file of points, one per line; - reads standard input",
    )
    output_flag(p, "with --input-file: write the CSV here (atomically) instead of standard output")
    debug_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the class and score of each point given."""
    from chainrule.nn import ModelFileError, load_with_metadata
    from chainrule.training import Task

    to_stdout = args.output is None or str(args.output) == "-"
    if args.output is not None and args.input_file is None:
        raise UsageError("-o goes with --input-file; --input prints to the terminal")
    if not to_stdout:
        check_output_file(args.output, example="predictions.csv")
        refuse_overwriting_inputs(
            args.output,
            {
                "--model, the model being read": args.model,
                "--input-file, the points being read": args.input_file,
            },
        )
    model, metadata = load_with_metadata(args.model)  # size, shapes, numbers checked
    try:
        task = Task.from_json(metadata.get("task"), model.nouts[-1])
    except ModelFileError as exc:
        raise ModelFileError(f"{args.model}: {exc}") from None
    if args.input_file is not None:
        return _predict_file(args, model, task, to_stdout)
    return _predict_points(args.input, model, task)


def _predict_file(args: argparse.Namespace, model: Any, task: Any, to_stdout: bool) -> int:
    """--input-file: every row checked, then the CSV of results written at once."""
    from chainrule.core import no_grad

    rows = _read_input_file(args.input_file, model.nin)  # every row checked first
    with no_grad():
        results = [task.predict(model(r)) for r in rows]
    text = "class,score\n" + "".join(f"{cls},{score!r}\n" for cls, score in results)
    if to_stdout:
        sys.stdout.write(text)
        return 0
    written = atomic_write_text(args.output, text)
    print(f"wrote {len(results)} predictions to {written}")
    return 0


def _predict_points(points: list[list[float]], model: Any, task: Any) -> int:
    """--input: one line for each point, in turn."""
    from chainrule.core import no_grad

    for point in points:
        if len(point) != model.nin:
            raise UsageError(
                f"--input {','.join(map(str, point))}: the model takes {model.nin} numbers, "
                f"got {len(point)}"
            )
        with no_grad():
            cls, score = task.predict(model(point))
        print(f"class {cls}  score {score:.6g}")
    return 0


def _read_input_file(path: Path, width: int) -> list[list[float]]:
    """The rows of ``--input-file`` (``-``: standard input), each ``width`` numbers."""
    from chainrule.io.csvrows import read_rows

    if str(path) == "-":  # bytes when there are (a replaced sys.stdin may be text only)
        return read_rows(getattr(sys.stdin, "buffer", sys.stdin), width, "stdin")
    if path.is_dir():
        raise UsageError(f"--input-file {path} is a folder; name a CSV file")
    with open(path, "rb") as f:  # decoded line by line, so a bad byte names its line
        return read_rows(f, width, str(path))
