"""The entry point of the ``chainrule`` command: the parser, and errors as one line.

:func:`build_parser` asks each command module (:data:`COMMANDS`) to add its parser;
:func:`main` runs the command chosen and turns whatever goes wrong into one line on
stderr and an exit code (see :func:`main`).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence

from chainrule import __version__
from chainrule.cli import demo, explore, export, gpt, graph, lr_find, predict, train
from chainrule.cli.args import (
    EXIT_BROKEN_PIPE,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Parser,
    UsageError,
    debug_flag,
)
from chainrule.errors import ChainruleError

__all__ = ["COMMANDS", "build_parser", "main"]

#: The command modules, in the order `chainrule --help` lists their commands. Each has
#: ``add_parser(subparsers)``, which sets the parser's ``func`` to the command's runner.
COMMANDS = (demo, train, predict, lr_find, graph, explore, export, gpt)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``chainrule`` command and all its commands."""
    parser = Parser(
        prog="chainrule",
        description="Train small neural networks on chainrule's autograd engine, "
        "predict with them, and draw computational graphs.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    debug_flag(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _describe(exc: BaseException) -> str:
    """One line for an error a user can fix: the message, or the OS's words for a file."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller model or dataset"
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _printable_output() -> None:
    """Text the terminal's encoding cannot show (a GPT's names in an ASCII locale) is
    printed escaped (``\\U0001f600``), never a crash part-way through the output."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    0: done (plain ``chainrule`` prints the help). 2: a bad argument, input file or
    output path, or a training run that diverged -- one line on stderr saying what is
    wrong. 1: an unexpected error, which is a bug in chainrule -- one line saying so
    (``--debug`` shows the traceback).
    130: interrupted; 143: terminated (SIGTERM) during training. 141: the reader of
    the output went away (``chainrule gpt sample | head``), quietly, as Unix tools do.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    _printable_output()
    parser = build_parser()
    if not words:  # plain `chainrule`: the help, not an error about a missing command
        parser.print_help()
        return 0
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(graph.move_leading_minus_expression(words))
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        _error(args, str(exc))
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ChainruleError, OSError, MemoryError) as exc:  # bad input, files, divergence
        if getattr(args, "debug", False):
            raise
        _error(args, _describe(exc))
    except Exception as exc:  # anything else is chainrule's fault, not the user's
        if getattr(args, "debug", False):
            raise
        _error(
            args,
            f"{type(exc).__name__}: {_describe(exc)} -- this is a bug in chainrule; run the "
            "command again with --debug to see the traceback, and please report it",
            kind="internal error",
        )
        return EXIT_BUG
    return EXIT_USAGE


def _silence_stdout() -> None:
    """Point standard output at the null device, so that Python's final flush of what is
    still buffered does not fail again on the closed pipe (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file (tests capture it)
        pass


def _error(args: argparse.Namespace | None, message: str, kind: str = "error") -> None:
    """Print one line, ``chainrule COMMAND: error: ...``, on stderr."""
    if not message.startswith("chainrule"):  # parser errors already name the command
        words = (getattr(args, "command", None), getattr(args, "gpt_command", None))
        command = " ".join(w for w in words if w)
        message = f"chainrule {command}: {kind}: {message}" if command else f"chainrule: {message}"
    print(message.splitlines()[0], file=sys.stderr)
