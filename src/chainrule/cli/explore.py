"""`chainrule explore`: serve the in-browser explorer, or write it as a static site."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any

from chainrule.cli.args import UsageError, debug_flag, port

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add `chainrule explore` to ``subparsers``."""
    p = subparsers.add_parser(
        "explore",
        help="open the explorer: step through backprop and watch a network train, in the browser",
        description="Serve the explorer on 127.0.0.1 (this machine only) and open it in "
        "the browser. The page runs chainrule's own engine under Pyodide, offline: type "
        "an expression and step through its backward pass node by node, or train an MLP "
        "on a 2-D dataset and watch its decision regions. Ctrl-C stops the server.",
    )
    p.add_argument(
        "--port",
        type=port,
        default=0,
        help="port to listen on (default: a free one, printed at start)",
    )
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.add_argument(
        "--site",
        type=Path,
        metavar="DIR",
        help="instead of serving, write the explorer as a static site to DIR (new or "
        "empty), to publish on any web server",
    )
    debug_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the explorer until Ctrl-C, or write it to --site."""
    from chainrule.explorer import server

    if args.site is not None:
        folder = server.write_site(args.site)
        print(f"wrote the explorer to {folder}/ (open index.html through a web server)")
        return 0
    try:
        server.serve(args.port, open_browser=not args.no_browser)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
        raise
    return 0
