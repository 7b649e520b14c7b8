"""One training run from the command line, as `chainrule demo` and `chainrule train` make it.

:func:`run_training` checks the configuration and the --out folder, trains, and writes
the run's files into the folder as one unit; with checkpoints it saves the run's state
as it goes (:class:`CheckpointWriter`) and, when stopped or interrupted, says how to
resume. The two commands differ only in where the configuration comes from.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from chainrule.cli.args import (
    CHECKPOINT_FILE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    RUN_FILES,
    TRAIN_RUN_FILES,
    UsageError,
    atomic_write_text,
    replace_folder,
    staged_folder,
)

__all__ = ["CheckpointWriter", "refuse_replacing_a_run_in_progress", "run_training"]


class _Paused(Exception):
    """Raised inside the staged results folder to drop it: a run stopped by --stop-after
    keeps only its checkpoint, as an interrupted one does."""


class CheckpointWriter:
    """Saves each checkpoint of a run into its folder, as :data:`CHECKPOINT_FILE`.

    A new run's first checkpoint replaces the folder as a unit (the previous run's
    results go, this run's checkpoint comes: never a mix); later ones, and those of a
    resumed run (``own``: the folder is already this run's), replace the file
    atomically. :attr:`step` is the step of the last one saved.
    """

    def __init__(self, out: Path, own: bool) -> None:
        self.out = out
        self.own = own
        self.step: int | None = None

    def __call__(self, checkpoint: Any) -> None:
        if self.own:
            checkpoint.save(self.out / CHECKPOINT_FILE)
        else:
            replace_folder(self.out, {CHECKPOINT_FILE: checkpoint.dumps().encode("utf-8")})
            self.own = True
        self.step = checkpoint.step


def run_training(
    config: Any,
    out: Path,
    progress: bool,
    *,
    checkpoints: bool = False,
    every: int | None = None,
    stop_after: int | None = None,
    resume: Any = None,
    force: bool = False,
) -> int:
    """Train, then write :data:`RUN_FILES` (with ``checkpoints``, also
    :data:`CHECKPOINT_FILE`) into ``out`` as one unit; return the exit code.

    The configuration and the folder are checked before training starts. The results
    are written into a hidden temporary folder that is renamed to ``out`` at the end,
    so ``out`` never mixes two runs: it holds the previous results until this run
    saves its first checkpoint, then this run's checkpoint alone (a run in progress,
    interrupted or stopped with --stop-after), then this run's results. A diverged run
    writes no results.

    With ``checkpoints`` the run saves a checkpoint every ``every`` steps, at the end,
    and on Ctrl-C or SIGTERM, which then prints how to resume and returns exit code 130
    (143 for SIGTERM).
    ``resume`` is the :class:`~chainrule.training.Checkpoint` that the run in ``out``
    goes on from; a new run (no ``resume``) does not replace an unfinished one in
    ``out`` unless ``force`` is given.
    """
    from chainrule.training import train

    config.validate()
    if resume is None and not force:
        refuse_replacing_a_run_in_progress(out)
    writer = CheckpointWriter(out, own=resume is not None) if checkpoints else None
    try:
        with staged_folder(out, TRAIN_RUN_FILES) as staging:
            result = train(
                config,
                progress=progress,
                checkpoint_every=every,
                on_checkpoint=writer,
                resume_from=resume,
                stop_after=stop_after,
            )
            if not result.finished:
                raise _Paused  # the checkpoint alone, as after Ctrl-C
            metrics = _write_results(result, config, staging, checkpoints)
            files = _run_files(config, checkpoints)
    except _Paused:
        print(
            f"stopped after step {writer.step if writer else 0} of {config.steps}; the checkpoint "
            f"is {out / CHECKPOINT_FILE}; continue with: {_resume_line(out)}"
        )
        return 0
    except KeyboardInterrupt as exc:
        if writer is None or writer.step is None:
            raise  # nothing saved: the usual "interrupted"
        return _report_interrupted(exc, writer.step, config, out)
    _report(metrics, result, out, files)
    if config.features != 2:
        print(
            f"no decision_boundary.png: the points have {config.features} features, and the "
            "decision boundary is drawn for 2 (loss.png has the loss and accuracy curves)"
        )
    return 0


def _run_files(config: Any, checkpoints: bool) -> tuple[str, ...]:
    """The files a run writes: :data:`RUN_FILES` (with ``checkpoints``, also the
    checkpoint), but no decision boundary for points of other than 2 features."""
    files = TRAIN_RUN_FILES if checkpoints else RUN_FILES
    drawn = config.features == 2
    return tuple(name for name in files if drawn or name != "decision_boundary.png")


def _resume_line(out: Path) -> str:
    """The command that goes on with the run in ``out``."""
    return f"chainrule train --resume {shlex.quote(str(out))}"


def _write_results(result: Any, config: Any, staging: Path, checkpoints: bool) -> Any:
    """Write the run's files into ``staging``; return its metrics."""
    from chainrule import nn

    metrics = result.metrics()
    atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=1))
    nn.save(
        result.model,
        staging / "model.json",
        metadata={"task": result.task.to_json(), "dataset": config.data_name()},
    )
    _plot(result, config, metrics, staging)
    if checkpoints and result.checkpoint is not None:
        result.checkpoint.save(staging / CHECKPOINT_FILE)
    return metrics


def _plot(result: Any, config: Any, metrics: Any, staging: Path) -> None:
    """Draw loss.png and, for points of 2 features, decision_boundary.png into ``staging``."""
    from chainrule.plots import plot_decision_boundary, plot_history

    ev = result.evaluations if result.X_test else None
    plot_history(
        result.history.loss,
        result.history.accuracy,
        staging / "loss.png",
        title=config.data_name(),
        lr=result.history.lr,
        evaluations=ev,
        step_label="train (each step's batch" + (", + L2)" if config.l2 else ")"),
    )
    if config.features != 2:
        return
    accuracy = f"train accuracy {metrics['accuracy']:.1%}"
    if "test_accuracy" in metrics:
        accuracy += f", test accuracy {metrics['test_accuracy']:.1%}"
    plot_decision_boundary(
        result.model,
        result.X,
        result.y,
        staging / "decision_boundary.png",
        title=f"{config.data_name()}: {accuracy}",
        X_test=result.X_test,
        y_test=result.y_test,
        classes=result.task.classes,
    )


def _report_interrupted(exc: KeyboardInterrupt, step: int, config: Any, out: Path) -> int:
    """Say where the checkpoint of an interrupted run is; return 130 (143 for SIGTERM)."""
    terminated = getattr(exc, "signum", signal.SIGINT) == signal.SIGTERM
    print(
        f"chainrule train: {'terminated (SIGTERM)' if terminated else 'interrupted'} "
        f"after step {step} of {config.steps}; checkpoint saved in "
        f"{out / CHECKPOINT_FILE}; resume with: {_resume_line(out)}",
        file=sys.stderr,
    )
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _report(metrics: Any, result: Any, out: Path, files: tuple[str, ...]) -> None:
    """Print the run's figures and the files written."""
    test = ""
    if "test_accuracy" in metrics:
        test = (
            f"; test loss {metrics['test_loss']:.4f}, test accuracy {metrics['test_accuracy']:.1%}"
        )
        if metrics["stopped_early"]:
            test += f" (stopped early; kept the weights of step {metrics['best_step']})"
    resumed = f", resumed at step {result.resumed_at[-1]}" if result.resumed_at else ""
    print(
        f"trained {metrics['parameters']} parameters for {metrics['steps']} steps in "
        f"{metrics['seconds']:.1f} s ({metrics['engine']}{resumed}): loss {metrics['loss']:.4f}, "
        f"training accuracy {metrics['accuracy']:.1%}{test}"
    )
    print("wrote " + ", ".join(str(out / name) for name in files))


def refuse_replacing_a_run_in_progress(out: Path) -> None:
    """Refuse a new run into ``out`` when it holds the checkpoint of a run that has not
    finished (stopped, interrupted or killed): the new run would delete it."""
    from chainrule.training import CheckpointError, load_checkpoint

    path = out / CHECKPOINT_FILE
    if not path.is_file():
        return
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        what = f"a {CHECKPOINT_FILE} that cannot be read"
    else:
        if checkpoint.finished and (out / "model.json").is_file():
            return  # a finished run with its results: replaced like any earlier results
        what = f"an unfinished run (step {checkpoint.step} of {checkpoint.config.steps})"
    raise UsageError(
        f"--out {out} holds {what}; resume it with: {_resume_line(out)} "
        "(or give --force to start over, deleting its checkpoint)"
    )
