"""One training run as an object: :class:`Run` holds the data, the model, the optimiser
and the bookkeeping of a run, and advances it a step at a time.

:func:`chainrule.training.train` drives a :class:`Run` to the end (with checkpoints,
early stopping, Ctrl-C); the explorer's training view drives one a click at a time.
Each step is the gradient-descent loop a reader can follow::

    outputs = [model(x) for x in batch]        # forward pass: build the graph
    loss = task.loss(outputs, labels) + l2     # one Value at the top of the graph
    optimizer.zero_grad()
    loss.backward()                            # the chain rule, node by node
    optimizer.lr = schedule(k)
    optimizer.step()                           # p.data -= lr * p.grad, and friends

A run is built from a :class:`~chainrule.training.TrainConfig`, or from a
:class:`~chainrule.training.Checkpoint` (with :func:`resume_config`'s config) to go on
bit for bit as if it had never stopped. Standard library only (the explorer runs it
in the browser); ``compiled`` runs load the compiler, and NumPy, on first use.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from chainrule import data as datasets
from chainrule import losses
from chainrule.core import Value, no_grad
from chainrule.core.vmap import vmap
from chainrule.errors import DivergedError
from chainrule.io.csvrows import RowsError
from chainrule.nn import MLP
from chainrule.optim import make_schedule
from chainrule.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    Evaluations,
    History,
    data_sha256,
)
from chainrule.training.config import ConfigError, Task, TrainConfig, build, make_optimizer

__all__ = [
    "DIVERGENCE_FACTOR",
    "ResumeConflict",
    "Run",
    "StepResult",
    "TrainResult",
    "check_loss",
    "data_changed",
    "diverged",
    "engine_name",
    "evaluate",
    "resume_config",
]

#: Training stops with :class:`~chainrule.errors.DivergedError` when the loss exceeds
#: this many times its first value (or 1, whichever is larger): the losses here start
#: near 1 (hinge, mse) or log(classes) (cross-entropy), so such a loss has blown up.
DIVERGENCE_FACTOR = 1e6


#: How a compiled run measures a model on points at once: ``(X, y) -> (loss, accuracy)``.
MeasureOf = Callable[[Sequence[Sequence[float]], Sequence[int]], tuple[float, float]]


def _as_arrays(task: Task, X: Sequence[Sequence[float]], y: Sequence[int]) -> tuple[Any, ...]:
    """Points, targets and labels as arrays for a compiled program: the targets as
    :meth:`Task.example_loss` takes them (one-hot rows for softmax: a compiled
    function's inputs cannot index)."""
    import numpy as np

    labels = np.asarray(y, dtype=np.int64)
    if task.loss == "softmax":
        targets = np.eye(task.classes)[labels]
    else:
        targets = np.asarray(task.targets(y), dtype=np.float64)
    return np.asarray(X, dtype=np.float64), targets, labels


def _accuracy(outputs: Any, labels: Any) -> float:
    """The fraction of outputs (an array) whose class, as :meth:`Task.predict` gives it
    (the largest logit, or ``z > 0``), is the label."""
    classes = outputs.argmax(axis=1) if outputs.ndim == 2 else outputs > 0.0
    return float((classes == labels).mean())


@dataclass(frozen=True)
class StepResult:
    """What one :meth:`Run.step` did: the batch's loss and accuracy (before the update),
    the learning rate of the update, and how many points the batch held."""

    loss: float
    accuracy: float
    lr: float
    batch_size: int


class Run:
    """A training run, one :meth:`step` at a time: ``Run(config)`` starts one afresh,
    ``Run(config, checkpoint)`` (or :meth:`resume`) goes on from a checkpoint, with
    ``config`` checked by :func:`resume_config` (only ``steps`` may differ).

    A new run draws its data (or reads them from ``config.data``), held-out split and
    initial weights from ``config.seed`` and its mini-batches from
    ``random.Random(seed + 1)``. :attr:`X` and :attr:`y`
    (the training points) are read afresh at every step, so a caller may add or
    remove points between steps (the explorer does). Raises :class:`ConfigError` for
    a bad config and :class:`CheckpointError` for a checkpoint whose data are not
    what its config draws (or whose data file is gone or has changed).
    """

    def __init__(self, config: TrainConfig, checkpoint: Checkpoint | None = None) -> None:
        if checkpoint is not None:
            config = resume_config(checkpoint, config)  # the saved one, but for steps
        model, task, X, y = _build(config, resuming=checkpoint is not None)  # validates config
        X_test: list[list[float]] = []
        y_test: list[int] = []
        if config.test_fraction:
            X, y, X_test, y_test = datasets.train_test_split(
                X, y, config.test_fraction, seed=config.seed
            )
        self.config, self.model, self.task = config, model, task
        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test
        self.params = model.parameters()
        self.data_sha256 = data_sha256(X, y, X_test, y_test)
        self.optimizer = make_optimizer(config, model)
        #: The learning rate of step ``k``; :meth:`set_lr` replaces it.
        self.schedule = make_schedule(config.schedule, config.lr, config.steps)
        self.batch_rng = random.Random(config.seed + 1)
        self.history = History()
        self.evaluations = Evaluations()
        self.best_loss: float = math.inf
        self.best_step: int | None = None
        self.best_weights = [p.data for p in self.params]
        self.since_best, self.stopped_early = 0, False
        self.earlier_seconds = 0.0  # training time in earlier sessions
        self.resumed_at: list[int] = []
        self.compiled: Any = None  # the compiled loss (chainrule.compile), if compiled
        #: ``(X, y) -> (loss, accuracy)`` by a compiled program, if compiled; else None
        #: and :func:`measure` runs the model on Values, point by point
        self.measure_of: MeasureOf | None = None
        self._arrays: tuple[Any, ...] = ()  # X and the targets as arrays, see _batch_arrays
        if config.compiled:
            from chainrule.compiler import compile

            self.compiled = compile(self._batch_loss, self.params, has_aux=True)
            self._measure = compile(self._mean_loss, self.params, has_aux=True)
            self.measure_of = self._measure_compiled
        if checkpoint is not None:
            self._restore(checkpoint)
        self.started = time.perf_counter()

    @classmethod
    def resume(
        cls, checkpoint: Checkpoint, config: TrainConfig | Mapping[str, Any] | None = None
    ) -> Run:
        """The run of ``checkpoint``, with its config or the settings ``config`` gives
        (:func:`resume_config` checks them)."""
        return cls(resume_config(checkpoint, config), checkpoint)

    def _restore(self, saved: Checkpoint) -> None:
        if saved.data_sha256 != self.data_sha256:
            if self.config.data is not None:
                raise data_changed(self.config.data, "its points are not those it trained on")
            raise CheckpointError(
                "the data drawn from the checkpoint's config differ from the data it was "
                "trained on (another version of chainrule or NumPy?); it cannot be "
                "resumed exactly"
            )
        for p, w in zip(self.params, saved.weights, strict=True):
            p.data = w
        self.optimizer.load_state_dict(saved.optimizer)
        self.batch_rng.setstate(saved.batch_rng)
        self.history = History(*(list(v) for v in asdict(saved.history).values()))
        self.evaluations = Evaluations(*(list(v) for v in asdict(saved.evaluations).values()))
        self.best_loss, self.best_step = saved.best_loss, saved.best_step
        self.best_weights, self.since_best = list(saved.best_weights), saved.since_best
        self.stopped_early = saved.stopped_early
        self.earlier_seconds, self.resumed_at = saved.seconds, [*saved.resumed_at, saved.step]

    @property
    def done(self) -> int:
        """How many steps have been taken (the next one is number ``done``, from 0)."""
        return len(self.history.loss)

    @property
    def finished(self) -> bool:
        """Whether the run is over: all ``config.steps`` done, or stopped early."""
        return self.stopped_early or self.done >= self.config.steps

    def set_lr(self, lr: float) -> None:
        """Hold the learning rate at ``lr`` from the next step on (a constant schedule),
        checked as a config's ``lr`` is; the explorer's learner sets it by hand."""
        config = replace(self.config, lr=lr, schedule="constant")
        config.validate()
        self.config = config
        self.schedule = make_schedule("constant", lr, config.steps)

    def _loss(self, rows: Sequence[Sequence[Value]], labels: Sequence[Any]) -> tuple[Value, Any]:
        """The batch's loss (with the L2 term) and the model's outputs."""
        outputs = [self.model(row) for row in rows]
        loss = self.task.loss_value(outputs, labels)
        if self.config.l2:
            loss = loss + self.config.l2 * losses.l2(self.params)
        return loss, outputs

    def _mean_loss(self, X: Any, targets: Any) -> tuple[Value, Any]:
        """The loss of one example, mapped over the batch with :func:`chainrule.vmap`
        (traced once, replayed over any batch size) and averaged; and the outputs."""
        outputs = vmap(self.model)(X)
        return vmap(self.task.example_loss, reduce="mean")(outputs, targets), outputs

    def _batch_loss(self, X: Any, targets: Any) -> tuple[Value, Any]:
        """The compiled step's loss: :meth:`_mean_loss` plus the L2 term, and the
        outputs. The numbers of :meth:`_loss`."""
        loss, outputs = self._mean_loss(X, targets)
        if self.config.l2:
            loss = loss + self.config.l2 * losses.l2(self.params)
        return loss, outputs

    def _batch_arrays(self, idx: Sequence[int]) -> tuple[Any, Any, Any]:
        """The points ``idx``, their targets and their labels, as arrays (see
        :func:`_as_arrays`). The whole data's arrays are kept while :attr:`X` and
        :attr:`y` are the same lists of the same lengths."""
        key = (id(self.X), len(self.X), id(self.y), len(self.y))
        if not self._arrays or self._arrays[0] != key:
            self._arrays = (key, *_as_arrays(self.task, self.X, self.y))
        _, X, targets, labels = self._arrays
        if len(idx) == len(X) and idx == range(len(X)):
            return X, targets, labels
        at = list(idx)
        return X[at], targets[at], labels[at]

    def _measure_compiled(
        self, X: Sequence[Sequence[float]], y: Sequence[int]
    ) -> tuple[float, float]:
        """:func:`measure` by the compiled program: the mean loss and the accuracy."""
        arrays = _as_arrays(self.task, X, y)
        loss, outputs = self._measure(*arrays[:2])
        return loss.data, _accuracy(outputs, arrays[2])

    def _batch(self) -> Sequence[int]:
        """The indices of the next batch: every point, or ``batch_size`` drawn."""
        size, batch_size = len(self.X), self.config.batch_size
        if batch_size is None or batch_size >= size:
            return range(size)
        return self.batch_rng.sample(range(size), batch_size)

    def _forward(self, idx: Sequence[int]) -> tuple[Value, float]:
        """The loss and accuracy of the points ``idx``: eager (a graph of Values) or by
        the compiled program."""
        if self.compiled is None:
            labels = [self.y[i] for i in idx]
            rows = [[Value(v) for v in self.X[i]] for i in idx]
            loss, outputs = self._loss(rows, self.task.targets(labels))
            predicted = [self.task.predict(o)[0] for o in outputs]
            return loss, losses.accuracy(predicted, labels)
        X, targets, labels = self._batch_arrays(idx)
        loss, outputs = self.compiled(X, targets)
        return loss, _accuracy(outputs, labels)

    def step(self) -> StepResult:
        """One gradient step on the next batch; raises
        :class:`~chainrule.errors.DivergedError` (before updating) for a loss that is
        not finite or has blown up (:data:`DIVERGENCE_FACTOR`)."""
        k = self.done
        idx = self._batch()
        loss, accuracy = self._forward(idx)
        check_loss(loss.data, self.history.loss, k, self.config.lr)
        optimizer = self.optimizer
        optimizer.zero_grad()
        loss.backward()
        optimizer.lr = self.schedule(k)
        self.history.loss.append(loss.data)
        self.history.accuracy.append(accuracy)
        self.history.lr.append(optimizer.lr)
        optimizer.step()
        return StepResult(loss.data, accuracy, optimizer.lr, len(idx))

    def evaluation_due(self) -> bool:
        """With held-out data: whether :meth:`evaluate` is due after this step (every
        ``eval_every`` steps and after the last)."""
        done = self.done
        return bool(self.X_test) and (
            done % self.config.eval_every == 0 or done == self.config.steps
        )

    def evaluate(self) -> bool:
        """Measure the whole training and test sets (no graph recorded) into
        :attr:`evaluations` and keep the best test loss's weights; True when
        ``patience`` evaluations have passed without a better one (the run has then
        stopped early)."""
        of = self.measure_of
        train_loss, train_acc = measure(self.model, self.task, self.X, self.y, of)
        test_loss, test_acc = measure(self.model, self.task, self.X_test, self.y_test, of)
        ev = self.evaluations
        ev.step.append(self.done)
        ev.train_loss.append(train_loss)
        ev.train_accuracy.append(train_acc)
        ev.test_loss.append(test_loss)
        ev.test_accuracy.append(test_acc)
        if test_loss < self.best_loss:
            self.best_loss, self.best_step = test_loss, self.done
            self.best_weights = [p.data for p in self.params]
            self.since_best = 0
            return False
        self.since_best += 1
        patience = self.config.patience
        self.stopped_early = patience is not None and self.since_best >= patience
        return self.stopped_early

    def keep_best(self) -> None:
        """With ``patience``: put back the weights of the best test loss, if any."""
        if self.config.patience is not None and self.best_step is not None:
            for p, w in zip(self.params, self.best_weights, strict=True):
                p.data = w

    def snapshot(self) -> Checkpoint:
        """The run's state now, every list copied."""
        return Checkpoint(
            config=self.config,
            step=self.done,
            weights=[p.data for p in self.params],
            optimizer=self.optimizer.state_dict(),
            batch_rng=self.batch_rng.getstate(),
            history=History(*(list(v) for v in asdict(self.history).values())),
            evaluations=Evaluations(*(list(v) for v in asdict(self.evaluations).values())),
            best_loss=self.best_loss,
            best_step=self.best_step,
            best_weights=list(self.best_weights),
            since_best=self.since_best,
            stopped_early=self.stopped_early,
            seconds=self.earlier_seconds + time.perf_counter() - self.started,
            resumed_at=list(self.resumed_at),
            data_sha256=self.data_sha256,
        )

    def result(self, last: Checkpoint, accuracy: float, finished: bool) -> TrainResult:
        """The :class:`TrainResult` of the run as it is, ``last`` its final checkpoint."""
        compiled = self.compiled
        return TrainResult(
            self.model,
            self.config,
            self.task,
            self.history,
            last.seconds,
            self.X,
            self.y,
            self.X_test,
            self.y_test,
            compiled.explain() if compiled is not None else "",
            accuracy,
            self.evaluations,
            self.stopped_early,
            self.best_step,
            finished=finished,
            checkpoint=last,
            resumed_at=self.resumed_at,
            fell_back=compiled is not None and compiled.fell_back,
            measure_of=self.measure_of,
        )


def _build(config: TrainConfig, resuming: bool) -> tuple[MLP, Task, list[list[float]], list[int]]:
    """:func:`build`; but resuming a run on a data file, a file that is gone or has
    changed is a :class:`CheckpointError` saying so."""
    if not resuming or config.data is None:
        return build(config)
    config.validate()  # a bad config is a ConfigError, as ever; the rest is the file's
    try:
        return build(config)
    except OSError as exc:
        raise CheckpointError(
            f"the run trained on {config.data}, which cannot be read now "
            f"({exc.strerror or exc}); put it back to resume the run"
        ) from None
    except RowsError as exc:  # "PATH line 3: ...": now a bad line
        raise data_changed(config.data, "now " + str(exc).removeprefix(f"{config.data} ")) from None
    except ConfigError as exc:  # load_data's: other samples, classes or features
        raise CheckpointError(
            f"{exc}; put back the file the run trained on to resume it, or start a new run"
        ) from None


def data_changed(path: str, how: str) -> CheckpointError:
    """The error of a run resumed on the data file ``path``, which has changed: ``how``."""
    return CheckpointError(
        f"the data file {path} has changed since the run trained on it ({how}); put back "
        "the file it trained on to resume the run, or start a new one"
    )


class ResumeConflict(ConfigError):
    """Settings given for a resumed run that differ from its checkpoint's:
    :attr:`conflicts` lists each as ``(name, given, saved)``."""

    def __init__(self, message: str, conflicts: list[tuple[str, Any, Any]]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def resume_config(
    saved: Checkpoint, given: TrainConfig | Mapping[str, Any] | None = None
) -> TrainConfig:
    """The config a run resumed from ``saved`` goes on with: the saved one, ``steps``
    taken from ``given`` if it has them.

    ``given`` is a whole :class:`TrainConfig`, or only the settings given (a command
    line's flags, by field name); each but ``steps`` must equal the saved one, else
    :class:`ResumeConflict`. ``steps`` may be raised to train on (the schedule then
    spans the new total) or lowered to no fewer than the checkpoint's step; a run that
    stopped early cannot be trained longer (:class:`ConfigError`).
    """
    if given is None:
        given = {}
    elif isinstance(given, TrainConfig):
        given = {f.name: getattr(given, f.name) for f in fields(TrainConfig)}
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(str(k) for k in given if k not in names)
    if unknown:
        raise ConfigError(f"unknown config entries: {', '.join(unknown[:5])}")
    conflicts = [
        (name, value, getattr(saved.config, name))
        for name, value in given.items()
        if name != "steps" and value != getattr(saved.config, name)
    ]
    if conflicts:
        shown = ", ".join(f"{n} {g!r} (saved: {s!r})" for n, g, s in conflicts[:3])
        raise ResumeConflict(
            f"resuming: the config differs from the checkpoint's in {shown}; only steps may "
            "change (leave config out to use the saved one)",
            conflicts,
        )
    config = replace(saved.config, steps=given.get("steps", saved.config.steps))
    if config.steps < saved.step:
        raise ConfigError(
            f"the checkpoint is at step {saved.step}, past {config.steps} steps; "
            f"give at least {saved.step} steps"
        )
    if saved.stopped_early and config.steps != saved.config.steps:
        raise ConfigError(
            f"the run stopped early at step {saved.step} (its test loss had not improved "
            f"for {saved.config.patience} evaluations); it cannot be trained longer"
        )
    return config


@dataclass
class TrainResult:
    """What :func:`~chainrule.training.train` returns: the trained model, its data, the
    history and evaluations, and the checkpoint to go on from."""

    model: MLP
    config: TrainConfig
    task: Task
    history: History
    seconds: float
    X: list[list[float]]
    y: list[int]
    X_test: list[list[float]]
    y_test: list[int]
    compile_report: str = ""
    accuracy: float | None = None  # of the final model on X (train() fills it in)
    evaluations: Evaluations = field(default_factory=Evaluations)
    stopped_early: bool = False
    best_step: int | None = None  # of the best test loss; with patience, its weights are kept
    finished: bool = True  # False: stopped at train(stop_after=...) before config.steps
    checkpoint: Checkpoint | None = None  # the state at the end, to go on from (before
    # the best weights were put back)
    resumed_at: list[int] = field(default_factory=list)  # steps at which it was resumed
    fell_back: bool = False  # compiled, but the compiler ran the step eagerly
    #: ``(X, y) -> (loss, accuracy)`` by a compiled program (a compiled run's), else None
    measure_of: MeasureOf | None = field(default=None, repr=False, compare=False)

    def metrics(self) -> dict[str, Any]:
        """The run's figures, JSON-ready: final loss and accuracy, steps, time, config."""
        accuracy = self.accuracy
        if accuracy is None:
            accuracy = evaluate(self.model, self.task, self.X, self.y, self.measure_of)
        out: dict[str, Any] = {
            "loss": self.history.loss[-1],
            "accuracy": accuracy,
            "steps": len(self.history.loss),
            "seconds": self.seconds,
            "parameters": self.model.num_parameters(),
            "engine": engine_name(bool(self.compile_report), self.fell_back),
            "history": asdict(self.history),
            "config": self.config.to_json(),
        }
        if self.resumed_at:
            out["resumed_at"] = self.resumed_at
        if self.X_test:
            test_loss, test_accuracy = measure(
                self.model, self.task, self.X_test, self.y_test, self.measure_of
            )
            out["test_loss"] = test_loss
            out["test_accuracy"] = test_accuracy
            out["evaluations"] = asdict(self.evaluations)
            out["stopped_early"] = self.stopped_early
            out["best_step"] = self.best_step
        return out


def engine_name(compiled: bool, fell_back: bool) -> str:
    """Which engine ran the steps: ``compiled``, ``compiled (fell back to eager)`` or ``eager``."""
    if not compiled:
        return "eager"
    return "compiled (fell back to eager)" if fell_back else "compiled"


def evaluate(
    model: MLP,
    task: Task,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    measure_of: MeasureOf | None = None,
) -> float:
    """The fraction of ``X`` that ``model`` classifies as ``y`` (no graph recorded);
    by ``measure_of`` (a compiled run's) where given."""
    if measure_of is not None and X:
        return measure_of(X, y)[1]
    with no_grad():
        predicted = [task.predict(model(x))[0] for x in X]
    return losses.accuracy(predicted, list(y))


def measure(
    model: MLP,
    task: Task,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    measure_of: MeasureOf | None = None,
) -> tuple[float, float]:
    """The loss (without L2) and the accuracy of ``model`` on ``X``, no graph recorded;
    by ``measure_of`` (a compiled run's) where given."""
    if measure_of is not None and X:
        return measure_of(X, y)
    with no_grad():
        outputs = [model(x) for x in X]
        loss = task.loss_value(outputs, task.targets(y)).data
    predicted = [task.predict(o)[0] for o in outputs]
    return loss, losses.accuracy(predicted, list(y))


def check_loss(loss: float, previous: Sequence[float], k: int, lr: float) -> None:
    """Raise :class:`DivergedError` if ``loss`` (step ``k``) is non-finite or has exploded."""
    if not math.isfinite(loss):
        raise diverged(k, lr, f"the loss is {loss}")
    if previous and loss > DIVERGENCE_FACTOR * max(previous[0], 1.0):
        raise diverged(k, lr, f"the loss grew from {previous[0]:.4g} to {loss:.4g}")


def diverged(step: int, lr: float, why: str) -> DivergedError:
    """The error of a run that diverged at ``step``, suggesting a lower rate than ``lr``."""
    return DivergedError(
        f"training diverged at step {step} ({why}); lower the learning rate "
        f"(it was {lr:g}): `chainrule lr-find` suggests one"
    )
