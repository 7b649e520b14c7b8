"""`chainrule demo`: train the reference demo (moons, MLP 2-16-16-1) and write its files."""

from __future__ import annotations

import argparse
from typing import Any

from chainrule.cli.args import force_flag, run_flags
from chainrule.cli.training_run import run_training

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add `chainrule demo` to ``subparsers``."""
    p = subparsers.add_parser(
        "demo",
        help="train the reference demo (moons, MLP 2-16-16-1) and write metrics, model, plots",
        description="The reference demo exactly: 100 moons points (noise 0.1, seed 1337), "
        "MLP 2-16-16-1 ReLU, hinge loss + 1e-4 L2, SGD with lr decaying linearly from "
        "1.0 to 0.1, 100 full-batch steps. Writes metrics.json, model.json, loss.png "
        "and decision_boundary.png.",
    )
    run_flags(p, "runs/demo")
    force_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the demo into --out."""
    from chainrule.training import demo_config

    config = demo_config()
    config.compiled = not args.eager
    return run_training(config, args.out, progress=not args.no_progress, force=args.force)
