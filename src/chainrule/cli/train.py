"""`chainrule train`: train a classifier with every choice a flag, or resume a run.

A new run takes its settings from the flags (:func:`~chainrule.cli.args.train_config`);
``--resume DIR`` goes on with the run in DIR, whose settings come from its checkpoint
(:func:`resume_settings` checks the flags given against them).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    CHECKPOINT_FILE,
    UsageError,
    count,
    debug_flag,
    force_flag,
    given_settings,
    out_folder,
    train_config,
    training_flags,
)
from chainrule.cli.training_run import run_training

__all__ = ["RESUME_FLAGS", "add_parser", "resume_settings", "run"]

#: The flags that may be given with --resume; every other setting is the checkpoint's.
RESUME_FLAGS = ("--steps", "--checkpoint-every", "--stop-after", "--no-progress", "--debug")


def add_parser(subparsers: Any) -> None:
    """Add `chainrule train` to ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help="train a classifier with every choice a flag",
        description="Train an MLP classifier on a generated 2-D dataset, or on your own "
        "points (--data FILE.csv). Multi-class data uses softmax cross-entropy. Writes the "
        "same files as `demo` (decision_boundary.png only for points of 2 features).",
    )
    training_flags(p, "runs/train")
    g = p.add_argument_group(
        "checkpoints",
        f"The run's folder always gets {CHECKPOINT_FILE}, the whole state of the run, at "
        "the end; Ctrl-C (or SIGTERM) saves one too, after the step under way, and prints "
        "how to resume. A folder with a checkpoint alone is a run in progress: a new run "
        "into it is refused (resume it, or give --force).",
    )
    g.add_argument(
        "--checkpoint-every",
        type=count(1),
        metavar="N",
        help=f"also save {CHECKPOINT_FILE} after every N steps (off)",
    )
    g.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="go on with the run in DIR from its checkpoint, with its saved settings, "
        "exactly as if it had never stopped; only --steps (to train longer or shorter; "
        "the schedule then spans the new total), --checkpoint-every, --stop-after and "
        "--no-progress may be given",
    )
    g.add_argument(
        "--stop-after",
        type=count(1),
        metavar="K",
        help="stop after step K with a checkpoint, to go on later with --resume (e.g. to "
        "train in sessions)",
    )
    force_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    debug_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train a new run into --out, or go on with the one in --resume."""
    if args.resume is not None:
        return _resume_training(args)
    return run_training(
        train_config(args),
        out_folder(args),
        progress=not args.no_progress,
        checkpoints=True,
        every=args.checkpoint_every,
        stop_after=args.stop_after,
        force=args.force,
    )


def _resume_training(args: argparse.Namespace) -> int:
    """``chainrule train --resume DIR``: go on from DIR/checkpoint.json, into DIR."""
    folder: Path = args.resume
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise UsageError(
            f"--resume {folder} {what}; name the run's folder, the one holding {CHECKPOINT_FILE}"
        )
    if args.out is not None and args.out.resolve() != folder.resolve():
        raise UsageError(f"--out {args.out}: a resumed run writes into its own folder, {folder}")
    if args.force:
        raise UsageError("--force starts a new run; --resume goes on with the one in its folder")
    given = given_settings(args)
    given.pop("steps", None)
    if "data" in given:  # as the run saved it: absolute
        given["data"] = os.path.abspath(given["data"])
    if args.eager:
        given["compiled"] = False
    checkpoint, config = resume_settings(folder, given, args.steps)
    if checkpoint.finished and config.steps == checkpoint.config.steps:
        print(f"the run in {folder} is complete ({checkpoint.step} steps); writing its results")
    return run_training(
        config,
        folder,
        progress=not args.no_progress,
        checkpoints=True,
        every=args.checkpoint_every,
        stop_after=args.stop_after,
        resume=checkpoint,
    )


def resume_settings(folder: Path, given: dict[str, Any], steps: int | None) -> tuple[Any, Any]:
    """The checkpoint in ``folder`` and the configuration that goes on from it.

    ``given``: the settings given as flags besides --steps (``compiled`` False for
    --eager); each must agree with the saved one, as every other setting comes from the
    checkpoint. ``steps``: the new total, or None to keep the saved one. The check is
    training's own (:func:`chainrule.training.resume_config`); this only words its
    conflicts as flags.
    """
    from chainrule.training import ResumeConflict, load_checkpoint, resume_config

    checkpoint = load_checkpoint(folder / CHECKPOINT_FILE)  # every entry checked
    try:
        config = resume_config(checkpoint, given if steps is None else {**given, "steps": steps})
    except ResumeConflict as exc:
        name, _, saved = exc.conflicts[0]
        flag = "--eager" if name == "compiled" else _flag(name)
        raise UsageError(
            f"{flag} conflicts with the run being resumed ({_flag(name)} {_shown(saved)}); "
            f"its settings come from {folder / CHECKPOINT_FILE}: only "
            f"{', '.join(RESUME_FLAGS[:3])} may be given with --resume"
        ) from None
    return checkpoint, config


def _flag(name: str) -> str:
    """The flag of a :class:`TrainConfig` setting (``engine`` for ``compiled``)."""
    if name == "compiled":
        return "engine"
    return "--layers" if name == "hidden" else "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    """A setting's value as its flag writes it."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is True:
        return "compiled"
    if value is False:
        return "eager"
    return str(value)
