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
        "on a 2-D dataset and watch its decision regions. Ctrl-C stops the server. The "
        "first run fetches the page's runtime, Pyodide and Viz.js (8 MB), from the npm "
        "registry into a per-user cache, checked against the pinned sha512.",
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
    p.add_argument(
        "--fetch",
        action="store_true",
        help="only fetch the browser runtime (Pyodide, Viz.js) into the per-user cache if "
        "it is missing, then exit (the first `chainrule explore` does it anyway)",
    )
    debug_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve the explorer until Ctrl-C, or write it to --site."""
    from chainrule.explorer import runtime, server

    folders = runtime.ensure(server.STATIC)  # fetched from the npm registry if missing
    if args.fetch:
        print("the explorer's runtime is in " + ", ".join(str(f) for f in folders.values()))
        return 0
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
