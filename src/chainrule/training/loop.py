"""The training loop: :func:`train` drives a :class:`~chainrule.training.Run` from its
first (or resumed) step to the end, with a progress bar, held-out evaluations and early
stopping, checkpoints every so many steps, and Ctrl-C or SIGTERM acted on between two
steps (:class:`TrainingInterrupted`, after a checkpoint).

Standard library only (the explorer runs its package in the browser); the progress bar
loads tqdm on use.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

from chainrule.errors import DivergedError, DomainError
from chainrule.training.checkpoint import Checkpoint, load_checkpoint
from chainrule.training.config import ConfigError, TrainConfig
from chainrule.training.run import Run, TrainResult, diverged, evaluate, resume_config

__all__ = ["TrainingInterrupted", "progress_bar", "train"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped :func:`train` between two steps, after saving
    :attr:`checkpoint`; :attr:`signum` is the signal's number.

    A ``KeyboardInterrupt``, so code that does not know it stops as on any Ctrl-C.
    """

    def __init__(self, checkpoint: Checkpoint, signum: int = signal.SIGINT) -> None:
        super().__init__(f"training interrupted after step {checkpoint.step}")
        self.checkpoint = checkpoint
        self.signum = signum


class _InterruptGuard:
    """Holds Ctrl-C (SIGINT) and SIGTERM off while a step runs, so a checkpoint sees
    whole steps.

    The first such signal only sets :attr:`requested` to its number; the loop looks at
    it between steps, saves a checkpoint and stops. A second one acts at once, as
    usual. A signal is held off only in the main thread and when its usual handler is
    in place (Python's for SIGINT, the default for SIGTERM): not when it is ignored or
    someone else handles it, and then it acts as always.
    """

    _USUAL: ClassVar[dict[int, Any]] = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
    }

    def __init__(self, active: bool) -> None:
        self.requested: int | None = None
        main = active and threading.current_thread() is threading.main_thread()
        self.signals = [
            s for s, usual in self._USUAL.items() if main and signal.getsignal(s) is usual
        ]

    def __enter__(self) -> _InterruptGuard:
        for s in self.signals:
            signal.signal(s, self._note)
        return self

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signum
        signal.signal(signum, self._USUAL[signum])  # the next one stops at once

    def __exit__(self, *exc: object) -> None:
        for s in self.signals:
            signal.signal(s, self._USUAL[s])


def train(
    config: TrainConfig | None = None,
    progress: bool = False,
    *,
    checkpoint_every: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    on_checkpoint: Callable[[Checkpoint], object] | None = None,
    resume_from: Checkpoint | str | os.PathLike[str] | None = None,
    stop_after: int | None = None,
) -> TrainResult:  # about 80 lines, half of them the docstring: the loop reads in one piece
    """Run ``config``; with ``progress`` a bar shows the loss and accuracy as it goes.

    With held-out data (``test_fraction`` > 0) the model is evaluated, with no graph
    recorded, after every ``eval_every`` steps and after the last: loss and accuracy
    on the whole training and test sets (:class:`Evaluations`). With ``patience`` the
    run stops once the test loss has not improved for that many evaluations in a row,
    and the weights of the best evaluation are put back (``best_step`` records it).

    Checkpoints (:class:`Checkpoint`) go to ``checkpoint_path`` (a JSON file, replaced
    atomically each time) and/or to ``on_checkpoint``: after every ``checkpoint_every``
    steps, at the end of the run (also after ``stop_after`` steps), and on Ctrl-C.
    With somewhere to save them, Ctrl-C (SIGINT) and SIGTERM (in the main thread) are
    acted on between two steps: the checkpoint of the last whole step is saved, then
    :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) is raised.

    ``resume_from`` (a :class:`Checkpoint` or its file) goes on from a checkpoint with
    its saved config, bit for bit as if the run had never stopped. ``config`` may be
    left out; if given it must be the saved one but for ``steps``, which may be raised
    to train on (the schedule then spans the new total) or lowered to no fewer than the
    checkpoint's step. ``stop_after`` ends this session after that many steps in all,
    with a checkpoint and ``finished`` False (the best weights are not put back).

    Divergence stops the run with :class:`~chainrule.errors.DivergedError` (naming the
    step and suggesting a smaller learning rate) instead of returning a useless model:
    a loss that is non-finite or above :data:`DIVERGENCE_FACTOR` times its first value,
    an overflow in a step after the first update, or a final model with a non-finite
    parameter or output. Raises :class:`ConfigError` for a bad ``config`` or session
    and :class:`CheckpointError` for a checkpoint that cannot be resumed.
    """
    saving = checkpoint_path is not None or on_checkpoint is not None
    run = _start(config, resume_from, checkpoint_every, saving, stop_after)
    config = run.config

    def save(checkpoint: Checkpoint) -> None:
        if checkpoint_path is not None:
            checkpoint.save(checkpoint_path)
        if on_checkpoint is not None:
            on_checkpoint(checkpoint)

    bar = progress_bar(config.steps, initial=run.done) if progress else None
    k = run.done
    try:
        with _InterruptGuard(saving) as guard:
            paused = False
            end = run.done if run.stopped_early else config.steps
            for k in range(run.done, end):
                paused = _step(run, bar, stop_after)
                done = k + 1
                if run.stopped_early or guard.requested or paused:
                    break
                if checkpoint_every and done % checkpoint_every == 0 and done < config.steps:
                    save(run.snapshot())
            k = run.done
            last = run.snapshot()  # the run's state, before the best weights are put back
            if saving:
                save(last)
            if guard.requested:
                raise TrainingInterrupted(last, guard.requested)
        if not paused:
            run.keep_best()
        final_accuracy = evaluate(run.model, run.task, run.X, run.y, run.measure_of)
    except (ArithmeticError, DomainError) as exc:  # overflow, inf - inf, ... in the numbers
        if isinstance(exc, DivergedError) or not run.history.loss:
            raise  # already explained, or the first loss failed: not a divergence
        raise diverged(k, config.lr, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    if not all(math.isfinite(p.data) for p in run.params):
        raise diverged(k, config.lr, "a parameter is no longer a finite number")
    return run.result(last, final_accuracy, finished=not paused)


def _start(
    config: TrainConfig | None,
    resume_from: Checkpoint | str | os.PathLike[str] | None,
    checkpoint_every: int | None,
    saving: bool,
    stop_after: int | None,
) -> Run:
    """The run of a session: new from ``config``, or resumed from a checkpoint (or its
    file) with :func:`resume_config`'s config; the session checked before any work."""
    saved = resume_from
    if saved is not None and not isinstance(saved, Checkpoint):
        saved = load_checkpoint(saved)
    if saved is None:
        if config is None:
            raise TypeError("train: give a TrainConfig, or a checkpoint to resume_from")
        _check_session(config, 0, checkpoint_every, saving, stop_after)
        return Run(config)
    config = resume_config(saved, config)
    _check_session(config, saved.step, checkpoint_every, saving, stop_after)
    return Run(config, saved)


def _step(run: Run, bar: Any, stop_after: int | None) -> bool:
    """One step of ``run``, its bar moved on, and an evaluation if one is due; True
    when ``stop_after`` ends the session here (before the run's last step)."""
    step = run.step()
    if bar is not None:
        bar.set_postfix(loss=f"{step.loss:.4f}", accuracy=f"{step.accuracy:.0%}", refresh=False)
        bar.update()
    if run.evaluation_due() and run.evaluate():
        return False  # stopped early: the run is over, not paused
    done = run.done
    return stop_after is not None and done >= stop_after and done < run.config.steps


def _check_session(
    config: TrainConfig,
    start: int,
    checkpoint_every: int | None,
    saving: bool,
    stop_after: int | None,
) -> None:
    """Raise :class:`ConfigError` for a session from step ``start`` that cannot run as
    asked, before any work."""
    config.validate()
    if checkpoint_every is not None:
        if isinstance(checkpoint_every, bool) or checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        if not saving:
            raise ConfigError(
                "checkpoint_every needs somewhere to save: checkpoint_path or on_checkpoint"
            )
    if stop_after is not None and stop_after < 1:
        raise ConfigError(f"stop_after must be at least 1, got {stop_after}")
    if start and stop_after is not None and stop_after <= start:
        raise ConfigError(
            f"stop_after {stop_after}: the run is already at step {start}; give a later step"
        )


def progress_bar(total: int, desc: str = "training", initial: int = 0) -> Any:
    """A tqdm bar on stderr, starting at ``initial`` steps done: redrawn ten times a
    second on a terminal, but only every 30 s when stderr is a file or a pipe (a CI
    log), so a log is not flooded."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        leave=True,
        mininterval=0.1 if interactive else 30.0,
    )
