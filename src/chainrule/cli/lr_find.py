"""`chainrule lr-find`: short runs over a range of learning rates; a plot and a suggestion."""

from __future__ import annotations

import argparse
import math
from typing import Any

from chainrule.cli.args import (
    UsageError,
    count,
    debug_flag,
    ensure_writable_folder,
    out_folder,
    positive,
    train_config,
    training_flags,
)
from chainrule.errors import DivergedError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add `chainrule lr-find` to ``subparsers``."""
    p = subparsers.add_parser(
        "lr-find",
        help="short runs over exponentially spaced learning rates; plot and suggestion",
        description="Train briefly at each of several learning rates from the same start, "
        "plot the final loss against the learning rate, and suggest a range.",
    )
    training_flags(p, "runs/lr-find", held_out=False, sweep=True)
    p.add_argument("--min-lr", type=positive, default=1e-3, help="smallest lr (%(default)s)")
    p.add_argument("--max-lr", type=positive, default=1e3, help="largest lr (%(default)s)")
    p.add_argument("--num", type=count(2), default=13, help="learning rates (%(default)s)")
    p.add_argument("--run-steps", type=count(1), default=20, help="steps each (%(default)s)")
    debug_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep, print each learning rate's loss, plot them and suggest a range."""
    from chainrule.plots import plot_lr_find
    from chainrule.training import lr_find

    if not args.min_lr < args.max_lr:
        raise UsageError("--min-lr must be below --max-lr")
    config = train_config(args)
    config.validate()
    out = out_folder(args)
    ensure_writable_folder(out)  # before the runs, not after them
    found = lr_find(config, args.min_lr, args.max_lr, args.num, args.run_steps)
    for lr, loss in zip(found.lrs, found.losses, strict=True):
        shown = f"{loss:.4f}" if math.isfinite(loss) else "diverged"
        print(f"lr {lr:10.4g}   loss after {args.run_steps} steps: {shown}")
    path = plot_lr_find(found.lrs, found.losses, out / "lr_find.png", found.suggested)
    if found.suggested is None:
        print(f"wrote {path}")
        raise DivergedError(
            f"every learning rate from {args.min_lr:g} to {args.max_lr:g} diverged; "
            f"try smaller ones, e.g. --min-lr {args.min_lr / 1e4:g} --max-lr {args.min_lr:g}"
        )
    low, high = found.suggested
    if low == high:
        print(f"suggested learning rate: {low:.3g}")
    else:
        print(f"suggested learning rates: {low:.3g} to {high:.3g}")
    print(f"wrote {path}")
    return 0
