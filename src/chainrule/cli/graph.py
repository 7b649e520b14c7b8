"""`chainrule graph`: evaluate an expression, backpropagate, and draw its computational graph.

The expression language is :mod:`chainrule.expr`'s and the drawing
:mod:`chainrule.graph`'s; the help lists their functions and layouts from their public
names. :func:`move_leading_minus_expression` lets the expression start with a minus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    UsageError,
    atomic_write_bytes,
    check_output_file,
    count,
    debug_flag,
)

__all__ = ["DRAWING_FORMATS", "add_parser", "move_leading_minus_expression", "run"]

#: The drawing formats --format offers (a suffix may name any other of graph.FORMATS).
DRAWING_FORMATS = ("svg", "png", "pdf", "dot")

#: Options of `chainrule graph` that take a value, and those that do not.
_VALUE_OPTIONS = ("--at", "-o", "--output", "--format", "--rankdir", "--max-nodes")
_FLAGS = ("-h", "--help", "--debug")


def add_parser(subparsers: Any) -> None:
    """Add `chainrule graph` to ``subparsers``."""
    from chainrule.expr import FUNCTIONS
    from chainrule.graph import RANKDIRS

    p = subparsers.add_parser(
        "graph",
        help="evaluate an expression, backpropagate, and draw its computational graph",
        description="Evaluate EXPR with chainrule, run backward(), print the value and "
        "the gradient with respect to every variable, and draw the graph with data and "
        "grad on every node. EXPR may use numbers, variables, + - * / **, parentheses "
        f"and one-argument functions ({' '.join(FUNCTIONS)}); nothing else is accepted, "
        "and nothing is run. "
        'An expression may start with a minus sign: chainrule graph "-x*2" --at x=1.',
    )
    p.add_argument("expression", metavar="EXPR", help='e.g. "3*x**2 - 4*x + 5"')
    p.add_argument(
        "--at",
        action="append",
        metavar="x=3,y=-2",
        help="variable values (repeatable; write --at=x=-3 for a leading minus)",
    )
    p.add_argument(
        "-o", "--output", type=Path, help="file to write (graph.FORMAT); - for standard output"
    )
    p.add_argument(
        "--format",
        choices=DRAWING_FORMATS,
        help="drawing format (from the output's suffix, else svg)",
    )
    p.add_argument("--rankdir", choices=RANKDIRS, default=RANKDIRS[0], help="layout (%(default)s)")
    p.add_argument(
        "--max-nodes", type=count(1), default=500, help="largest graph drawn (%(default)s)"
    )
    debug_flag(p)
    p.set_defaults(func=run)


def move_leading_minus_expression(argv: list[str]) -> list[str]:
    """Let ``chainrule graph "-x*2" --at x=1`` mean the expression ``-x*2``.

    argparse takes any word that starts with ``-`` for an option. For ``graph``, the
    first word that starts with a single ``-`` and is neither one of its options nor an
    option's value is the expression: it is moved to the end, after ``--``. Command
    lines that already use ``--`` are left alone, as are other commands'.
    """
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "graph" or "--" in argv:
        return argv
    rest = argv[command + 1 :]
    i = 0
    while i < len(rest):
        word = rest[i]
        name = word.split("=", 1)[0]
        if word in _VALUE_OPTIONS:
            i += 2  # the option and its value
        elif name in _VALUE_OPTIONS or word in _FLAGS:
            i += 1
        elif not word.startswith("-") or word == "-":
            return argv  # the expression is an ordinary word
        elif word.startswith("--") or (word.startswith("-o") and len(word) > 2):
            i += 1  # an unknown long option, or -oFILE: argparse decides
        else:
            expression = rest.pop(i)
            return [*argv[: command + 1], *rest, "--", expression]
    return argv


def _short(x: float) -> str:
    """A number as a person writes it: ``20``, ``14``, ``0.4199743416``; ``0``, not ``-0``."""
    return f"{x + 0.0:.10g}"  # -0.0 + 0.0 is 0.0


def _graph_format(args: argparse.Namespace) -> str:
    """The drawing format: --format, else the output's suffix (any case), else svg.

    A suffix that names another format than --format, or that names no format at all
    (without --format), is refused rather than guessed.
    """
    from chainrule.graph import format_for_suffix

    output: Path | None = args.output
    if output is None or str(output) == "-":
        return str(args.format or "svg")
    named = format_for_suffix(output)
    if args.format:
        if named is not None and named != args.format:
            raise UsageError(
                f"-o {output} asks for {named} but --format is {args.format}; "
                "make them agree or leave one out"
            )
        return str(args.format)
    if named is not None:
        return named
    if output.suffix:
        suffixes = ", ".join(f".{f}" for f in DRAWING_FORMATS[:-1])
        raise UsageError(
            f"-o {output}: cannot tell the drawing format from {output.suffix!r}; "
            f"end the name in {suffixes} or .{DRAWING_FORMATS[-1]}, or give --format"
        )
    return "svg"


def _values(assignments: list[str] | None) -> dict[str, float]:
    """The variables' values of every --at, each name given once."""
    from chainrule.expr import parse_assignments

    values: dict[str, float] = {}
    for text in assignments or []:
        for name, value in parse_assignments(text).items():
            if name in values:
                raise UsageError(f"--at gives `{name}` twice")
            values[name] = value
    return values


def run(args: argparse.Namespace) -> int:
    """Evaluate, backpropagate, print the value and gradients, and write the drawing."""
    from chainrule.expr import evaluate
    from chainrule.graph import GraphTooLargeError, render_bytes

    fmt = _graph_format(args)
    to_stdout = args.output is not None and str(args.output) == "-"
    path: Path = args.output or Path(f"graph.{fmt}")
    if not to_stdout:
        check_output_file(path)
    values = _values(args.at)
    out, leaves = evaluate(args.expression, values)  # refuses anything outside the grammar
    unused = [n for n in values if n not in leaves]
    if unused:
        raise UsageError(f"--at {unused[0]}=...: the expression has no variable `{unused[0]}`")
    out.backward()
    try:  # draw before printing anything: a failure leaves no half-reported result
        drawing = render_bytes(out, fmt, rankdir=args.rankdir, max_nodes=args.max_nodes)
    except GraphTooLargeError as exc:
        raise UsageError(
            f"the graph has {exc.nodes} Values, more than --max-nodes {exc.max_nodes}; "
            f"draw a smaller expression, or raise the limit with --max-nodes {exc.nodes}"
        ) from None
    results = [f"{args.expression} = {_short(out.data)}"]
    results += [f"d/d{name} = {_short(leaf.grad)}" for name, leaf in leaves.items()]
    if to_stdout:  # the drawing is the output; the numbers go to the terminal
        sys.stdout.flush()
        sys.stdout.buffer.write(drawing)
        sys.stdout.buffer.flush()
        print("\n".join(results), file=sys.stderr)
        return 0
    written = atomic_write_bytes(path, drawing)  # straight into /dev/null or a pipe
    print("\n".join(results))
    print(f"wrote {written}")
    return 0
