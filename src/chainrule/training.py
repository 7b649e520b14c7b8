"""Training end to end: data, model, loss, optimiser, schedule, history.

``train(TrainConfig(...))`` is what the ``chainrule`` command runs; it is an ordinary
gradient-descent loop that a reader can follow step by step::

    outputs = [model(x) for x in batch]        # forward pass: build the graph
    loss = task.loss(outputs, labels) + l2     # one Value at the top of the graph
    optimizer.zero_grad()
    loss.backward()                            # the chain rule, node by node
    optimizer.lr = schedule(k)
    optimizer.step()                           # p.data -= lr * p.grad, and friends

A run can be saved and continued: ``train(config, checkpoint_every=10,
checkpoint_path="run.json")`` writes a :class:`Checkpoint` (JSON, atomically) every
10 steps, at the end, and when Ctrl-C (or SIGTERM) stops the run between two steps;
``train(resume_from="run.json")`` goes on from it exactly as if it had never stopped.

``train_gpt(GPTConfig(...))`` does the same for the character-level GPT of
:mod:`chainrule.gpt` on the shipped names, one name per step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from chainrule import data as datasets
from chainrule import losses
from chainrule.engine import Value, no_grad
from chainrule.errors import ChainruleError, DivergedError, DomainError
from chainrule.io.files import atomic_write_text
from chainrule.nn import (
    ACTIVATIONS,
    DEFAULT_ACTIVATION,
    INITS,
    MAX_FLOAT_CHARS,
    MAX_MODEL_PARAMETERS,
    MLP,
    ModelFileError,
    check_parameter_count,
    count_parameters,
    find_number_beyond_float,
    model_document,
    model_from_document,
    read_json_file,
)
from chainrule.optim import SCHEDULES, SGD, Adam, Optimizer, make_schedule

__all__ = [
    "CHECKPOINT_BYTES_PER_PARAMETER",
    "CHECKPOINT_BYTES_PER_STEP",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_HEADER_BYTES",
    "CHECKPOINT_VERSION",
    "DEFAULT_LR",
    "DIVERGENCE_FACTOR",
    "LOSSES",
    "MAX_CHECKPOINT_BYTES",
    "MAX_SEED",
    "MAX_STEPS",
    "OPTIMIZERS",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "Evaluations",
    "GPTConfig",
    "GPTResult",
    "History",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "check_seed",
    "demo_config",
    "evaluate",
    "load_checkpoint",
    "lr_find",
    "progress_bar",
    "train",
    "train_gpt",
]

LOSSES: tuple[str, ...] = ("auto", "hinge", "bce", "mse", "softmax")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")

#: Training stops with :class:`~chainrule.errors.DivergedError` when the loss exceeds
#: this many times its first value (or 1, whichever is larger): the losses here start
#: near 1 (hinge, mse) or log(classes) (cross-entropy), so such a loss has blown up.
DIVERGENCE_FACTOR = 1e6

#: The learning rate ``chainrule train`` uses when none is given, per optimiser: plain
#: SGD moves by lr x gradient, Adam by about lr per weight whatever the gradient's size.
DEFAULT_LR: dict[str, float] = {"sgd": 1.0, "adam": 0.05}

#: Adam's step is about ``lr`` in every weight: from this rate up it only jumps about.
ADAM_MAX_LR = 1.0

#: The largest seed (the smallest is 0): the datasets draw from NumPy's ``RandomState``
#: stream (:mod:`chainrule.data`), which takes a seed of 32 bits.
MAX_SEED = datasets.MAX_SEED

#: The most steps a run of :func:`train` may take: its history is part of every
#: checkpoint, so this bounds a checkpoint's size (:data:`MAX_CHECKPOINT_BYTES`).
MAX_STEPS = 1_000_000


class ConfigError(ChainruleError, ValueError):
    """A training configuration that cannot run: an unknown choice or a bad number."""


def check_seed(seed: object) -> int:
    """``seed`` if it is a whole number from 0 to :data:`MAX_SEED`; else :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"seed must be from 0 to {MAX_SEED} (a whole number of 32 bits), got {seed!r:.40}"
        )
    return seed


class CheckpointError(ChainruleError, ValueError):
    """A checkpoint that cannot be resumed: missing, truncated, tampered, or not this run's."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped :func:`train` between two steps, after saving
    :attr:`checkpoint`; :attr:`signum` is the signal's number.

    A ``KeyboardInterrupt``, so code that does not know it stops as on any Ctrl-C.
    """

    def __init__(self, checkpoint: Checkpoint, signum: int = signal.SIGINT) -> None:
        super().__init__(f"training interrupted after step {checkpoint.step}")
        self.checkpoint = checkpoint
        self.signum = signum


@dataclass(frozen=True)
class Task:
    """How a model's outputs become a loss, a class and a score.

    ``loss`` is ``hinge`` (one output, labels ±1), ``bce`` (one logit, labels 0/1),
    ``mse`` (one output regressed onto ±1) or ``softmax`` (one logit per class).
    """

    loss: str
    classes: int

    @property
    def outputs(self) -> int:
        return self.classes if self.loss == "softmax" else 1

    def targets(self, y: Sequence[int]) -> list[Any]:
        """Class labels 0..k-1 in the form this loss wants."""
        if self.loss in ("hinge", "mse"):
            return datasets.to_signed(y)
        if self.loss == "bce":
            return [float(c) for c in y]
        return list(y)

    def loss_value(self, outputs: Sequence[Any], targets: Sequence[Any]) -> Value:
        if self.loss == "hinge":
            return losses.hinge(outputs, targets)
        if self.loss == "bce":
            return losses.binary_cross_entropy_with_logits(outputs, targets)
        if self.loss == "mse":
            return losses.mse(outputs, targets)
        return losses.softmax_cross_entropy(outputs, targets)

    def predict(self, output: Value | float | Sequence[Value | float]) -> tuple[int, float]:
        """The class (0..k-1) and a score: the margin, a probability or a softmax share.

        ``output`` is the model's output: Values, or the floats a compiled step returns.
        """
        if self.loss == "softmax":
            logits = [_float(v) for v in output]  # type: ignore[union-attr]
            top = max(range(len(logits)), key=logits.__getitem__)
            shift = max(logits)
            total = sum(math.exp(z - shift) for z in logits)
            return top, math.exp(logits[top] - shift) / total
        z = _float(output)  # type: ignore[arg-type]
        if self.loss == "bce":
            return int(z > 0), 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return int(z > 0), z

    def to_json(self) -> dict[str, Any]:
        return {"loss": self.loss, "classes": self.classes}

    @classmethod
    def from_json(cls, data: object, outputs: int) -> Task:
        """The task stored in a model file's metadata, checked against the model's outputs.

        ``data`` is what :meth:`to_json` wrote, or ``None`` for a file without one (then
        a one-output model is a hinge classifier, a k-output one a k-class softmax).
        Raises :class:`~chainrule.nn.ModelFileError` naming what does not fit.
        """
        if data is None:
            return cls("softmax", outputs) if outputs > 1 else cls("hinge", 2)
        if not isinstance(data, dict):
            raise ModelFileError(f"the task metadata must be an object, got {data!r:.40}")
        loss, classes = data.get("loss"), data.get("classes", 2)
        if loss not in LOSSES or loss == "auto":
            choices = ", ".join(x for x in LOSSES if x != "auto")
            raise ModelFileError(f"unknown task loss {loss!r:.40}; expected one of {choices}")
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ModelFileError(
                f"the task's classes must be a whole number >= 2, got {classes!r:.40}"
            )
        task = cls(loss, classes)
        if task.outputs != outputs:
            raise ModelFileError(
                f"the task ({loss}, {classes} classes) needs {task.outputs} model "
                f"output{'s' if task.outputs > 1 else ''}, but the model has {outputs}"
            )
        return task


def _float(v: Value | float) -> float:
    return v.data if isinstance(v, Value) else float(v)


class _DatasetDefault:
    """The default of ``samples``, ``noise`` and ``classes``: the dataset's own."""

    def __repr__(self) -> str:
        return "<the dataset's default>"


_DATASET_DEFAULT: Any = _DatasetDefault()


@dataclass
class TrainConfig:
    """Every choice of a training run; the defaults are the reference demo's.

    ``samples``, ``noise`` and ``classes`` not given are the dataset's own
    (:data:`chainrule.data.DEFAULTS`), as in ``chainrule train`` and the explorer.
    """

    dataset: str = "moons"
    samples: int = _DATASET_DEFAULT
    noise: float = _DATASET_DEFAULT
    classes: int = _DATASET_DEFAULT
    hidden: tuple[int, ...] = (16, 16)
    activation: str = DEFAULT_ACTIVATION
    init: str = "uniform"
    loss: str = "auto"
    l2: float = 1e-4
    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.0
    schedule: str = "linear"
    steps: int = 100
    batch_size: int | None = None
    seed: int = 1337
    test_fraction: float = 0.0  # `chainrule train` holds out 0.2; the demo keeps all
    eval_every: int = 10  # with held-out data: evaluate after every this many steps and the last
    patience: int | None = None  # stop after this many evaluations without a better test loss
    compiled: bool = True  # replay the step with chainrule.compile; False: the eager engine

    def __post_init__(self) -> None:
        """Fill in the dataset's own ``samples``, ``noise`` and ``classes`` where not given
        (an unknown dataset gets moons' here; :meth:`validate` refuses its name)."""
        own = datasets.DEFAULTS.get(self.dataset, datasets.DEFAULTS["moons"])
        for name in ("samples", "noise", "classes"):
            if getattr(self, name) is _DATASET_DEFAULT:
                setattr(self, name, getattr(own, name))

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ``ValueError``) naming the first bad choice.

        Everything a run could trip over is checked here, before any work is done.
        """
        choices: dict[str, tuple[str, Sequence[str]]] = {
            "dataset": (self.dataset, tuple(datasets.DATASETS)),
            "activation": (self.activation, ACTIVATIONS),
            "init": (self.init, INITS),
            "loss": (self.loss, LOSSES),
            "optimizer": (self.optimizer, OPTIMIZERS),
            "schedule": (self.schedule, SCHEDULES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ConfigError(
                f"steps must be from 1 to {MAX_STEPS:,} (chainrule.training.MAX_STEPS), "
                f"got {self.steps}"
            )
        check_seed(self.seed)
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ConfigError(f"l2 must be a number >= 0, got {self.l2}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer == "adam" and self.momentum:
            raise ConfigError(
                "momentum applies to SGD only; Adam keeps its own running averages "
                "(drop --momentum, or use --optimizer sgd)"
            )
        if self.optimizer == "adam" and self.lr >= ADAM_MAX_LR:
            raise ConfigError(
                f"lr {self.lr:g} is too large for Adam, which moves every weight by about "
                f"lr per step; try 0.001 to 0.1 (default {DEFAULT_LR['adam']:g})"
            )
        if self.eval_every < 1:
            raise ConfigError(f"eval_every must be at least 1, got {self.eval_every}")
        if self.patience is not None:
            if self.patience < 1:
                raise ConfigError(f"patience must be at least 1, got {self.patience}")
            if not self.test_fraction:
                raise ConfigError(
                    "patience watches the held-out loss: it needs a test fraction above 0"
                )
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"noise must be a number >= 0, got {self.noise}")
        if self.classes < 2:
            raise ConfigError(f"classes must be at least 2, got {self.classes}")
        if self.classes != 2 and self.dataset not in datasets.MULTICLASS:
            raise ConfigError(
                f"dataset {self.dataset!r} has 2 classes; --classes applies to "
                f"{' and '.join(sorted(datasets.MULTICLASS))}"
            )
        if self.samples < max(2, self.classes):
            raise ConfigError(
                f"{self.samples} samples are too few: need at least {max(2, self.classes)}"
            )
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        if self.test_fraction and max(1, round(self.samples * self.test_fraction)) >= self.samples:
            raise ConfigError(
                f"a test fraction of {self.test_fraction} of {self.samples} samples leaves "
                "none to train on"
            )
        multiclass = self.classes > 2
        if multiclass and self.loss not in ("auto", "softmax"):
            raise ConfigError(f"{self.classes} classes need the softmax loss, not {self.loss!r}")
        check_parameter_count(
            count_parameters(2, [*self.hidden, self.task().outputs]),
            "the model would have",
            ConfigError,
            hint="; choose smaller hidden layers",
        )

    def task(self) -> Task:
        loss = self.loss
        if loss == "auto":
            loss = "softmax" if self.classes > 2 else "hinge"
        return Task(loss, self.classes)

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready (``hidden`` as a list)."""
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_json(cls, data: object) -> TrainConfig:
        """The config :meth:`to_json` wrote: every field present, of its type, and valid.

        Raises :class:`ConfigError` naming the first field that is missing, unknown,
        of the wrong type (a whole number where one is due, ...) or invalid.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be an object, got {data!r:.40}")
        names = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ConfigError(f"unknown config entries: {', '.join(unknown[:5])}")
        missing = [name for name in names if name not in data]
        if missing:
            raise ConfigError(f"the config lacks {', '.join(missing)}")
        config = cls(**{name: _typed(name, data[name], kind) for name, kind in names.items()})
        config.validate()
        return config


def _typed(name: str, x: object, kind: str) -> Any:
    """``x`` as a value of the field type ``kind`` (as written in :class:`TrainConfig`)."""
    if kind.endswith(" | None"):
        if x is None:
            return None
        kind = kind.removesuffix(" | None")
    whole = isinstance(x, int) and not isinstance(x, bool)
    if kind == "bool" and isinstance(x, bool):
        return x
    if kind == "int" and whole:
        return x
    if kind == "float" and (whole or isinstance(x, float)):
        return float(x)  # type: ignore[arg-type]
    if kind == "str" and isinstance(x, str):
        return x
    whole_numbers = isinstance(x, list) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in x
    )
    if kind == "tuple[int, ...]" and whole_numbers:
        return tuple(x)  # type: ignore[arg-type]
    words = {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "str": "a string",
        "tuple[int, ...]": "a list of whole numbers",
    }
    raise ConfigError(f"config {name} must be {words.get(kind, kind)}, got {x!r:.40}")


def demo_config() -> TrainConfig:
    """The reference demo: 100 moons points (noise 0.1, seed 1337), MLP 2-16-16-1 ReLU,
    hinge loss + 1e-4·L2, SGD with lr decaying linearly 1.0 → 0.1, 100 full-batch steps,
    every point used for training (no held-out set)."""
    return TrainConfig(test_fraction=0.0)


@dataclass
class History:
    """Per step: the loss and accuracy on the batch (before the update) and the lr."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


@dataclass
class Evaluations:
    """With held-out data, per evaluation (after ``step`` updates, no graph recorded):
    the loss (without the L2 term) and accuracy of the whole training and test sets."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


@dataclass
class TrainResult:
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

    def metrics(self) -> dict[str, Any]:
        """The run's figures, JSON-ready: final loss and accuracy, steps, time, config."""
        accuracy = self.accuracy
        if accuracy is None:
            accuracy = evaluate(self.model, self.task, self.X, self.y)
        out: dict[str, Any] = {
            "loss": self.history.loss[-1],
            "accuracy": accuracy,
            "steps": len(self.history.loss),
            "seconds": self.seconds,
            "parameters": self.model.num_parameters(),
            "engine": _engine(self.compile_report),
            "history": asdict(self.history),
            "config": self.config.to_json(),
        }
        if self.resumed_at:
            out["resumed_at"] = self.resumed_at
        if self.X_test:
            test_loss, test_accuracy = _measure(self.model, self.task, self.X_test, self.y_test)
            out["test_loss"] = test_loss
            out["test_accuracy"] = test_accuracy
            out["evaluations"] = asdict(self.evaluations)
            out["stopped_early"] = self.stopped_early
            out["best_step"] = self.best_step
        return out


def _engine(report: str) -> str:
    """Which engine ran the steps: ``compiled``, ``compiled (fell back to eager)`` or ``eager``."""
    if not report:
        return "eager"
    return "compiled (fell back to eager)" if "fallback" in report else "compiled"


def evaluate(model: MLP, task: Task, X: Sequence[Sequence[float]], y: Sequence[int]) -> float:
    """The fraction of ``X`` that ``model`` classifies as ``y`` (no graph recorded)."""
    with no_grad():
        predicted = [task.predict(model(x))[0] for x in X]
    return losses.accuracy(predicted, list(y))


def _measure(
    model: MLP, task: Task, X: Sequence[Sequence[float]], y: Sequence[int]
) -> tuple[float, float]:
    """The loss (without L2) and the accuracy of ``model`` on ``X``, no graph recorded."""
    with no_grad():
        outputs = [model(x) for x in X]
        loss = task.loss_value(outputs, task.targets(y)).data
    predicted = [task.predict(o)[0] for o in outputs]
    return loss, losses.accuracy(predicted, list(y))


def build(config: TrainConfig) -> tuple[MLP, Task, list[list[float]], list[int]]:
    """The dataset and the freshly initialised model of a run."""
    config.validate()
    X, y = datasets.make(config.dataset, config.samples, config.noise, config.seed, config.classes)
    task = config.task()
    model = MLP(
        2,
        [*config.hidden, task.outputs],
        activation=config.activation,  # type: ignore[arg-type]
        init=config.init,  # type: ignore[arg-type]
        rng=random.Random(config.seed),
    )
    return model, task, X, y


def make_optimizer(config: TrainConfig, model: MLP) -> Optimizer:
    if config.optimizer == "adam":
        return Adam(model.parameters(), lr=config.lr)
    return SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


# -- checkpoints ---------------------------------------------------------------------------

CHECKPOINT_FORMAT = "chainrule.checkpoint"
CHECKPOINT_VERSION = 1

# A checkpoint is compact JSON: a number takes at most MAX_FLOAT_CHARS and its comma,
# a layer size (below the parameter cap) or a step number its digits and its comma.
_NUMBER = MAX_FLOAT_CHARS + 1
_SIZE = len(str(MAX_MODEL_PARAMETERS)) + 1
_STEP = len(str(MAX_STEPS)) + 1

#: The most bytes one parameter takes in a checkpoint. It is there four times: in the
#: model (a number, and as in a model file at most half of its neuron's row brackets and
#: of its layer's keys and brackets, its size in the model's ``nouts`` and the config's
#: ``hidden``), in the best weights, and twice in the optimiser's running state (Adam's
#: ``m`` and ``v``; SGD keeps one ``velocity``).
CHECKPOINT_BYTES_PER_PARAMETER = math.ceil(
    _NUMBER + (len("[],") + len('{"weights":[],"biases":[]},') + 2 * _SIZE) / 2 + 3 * _NUMBER
)

#: The most bytes one step adds to a checkpoint: its loss, accuracy and lr in the
#: history, and at most one evaluation (its step, and four losses and accuracies).
CHECKPOINT_BYTES_PER_STEP = 3 * _NUMBER + _STEP + 4 * _NUMBER

#: Room in a checkpoint for the rest: format, config, the mini-batch sampler's state
#: (625 numbers), schedule, best step, and ``resumed_at`` (one step number a session).
CHECKPOINT_HEADER_BYTES = 1024 * 1024

#: The largest checkpoint :func:`load_checkpoint` reads: that of a run of
#: :data:`MAX_STEPS` steps of a model of :data:`~chainrule.nn.MAX_MODEL_PARAMETERS`
#: parameters (the caps :meth:`TrainConfig.validate` checks), so every run that
#: :func:`train` can make can be resumed. A bigger file is refused unread.
MAX_CHECKPOINT_BYTES = (
    MAX_MODEL_PARAMETERS * CHECKPOINT_BYTES_PER_PARAMETER
    + MAX_STEPS * CHECKPOINT_BYTES_PER_STEP
    + CHECKPOINT_HEADER_BYTES
)


@dataclass
class Checkpoint:
    """A run's whole state after ``step`` updates: enough to go on exactly as if it
    had never stopped (every loss and weight the same, bit for bit).

    It holds what the config cannot rebuild: the weights, the optimiser's state
    (:meth:`~chainrule.optim.Optimizer.state_dict`: SGD's momentum buffers, Adam's
    moments and step count), the state of the ``random.Random`` that draws the
    mini-batches, the history, the held-out evaluations and the early-stopping
    bookkeeping. The schedule's position is ``step``. The data, the held-out split and
    the initial weights come from ``config.seed`` and are drawn again on resume (their
    generators keep no state into the loop); ``data_sha256`` proves they came out the
    same. :meth:`save` writes it as JSON (never pickle), :func:`load_checkpoint`
    reads it back with every entry checked.
    """

    config: TrainConfig
    step: int  # updates done; the next step is number `step` (counting from 0)
    weights: list[float]  # model.parameters() order
    optimizer: dict[str, Any]
    batch_rng: tuple[Any, ...]  # random.Random.getstate() of the mini-batch sampler
    history: History
    evaluations: Evaluations
    best_loss: float  # inf before the first evaluation
    best_step: int | None
    best_weights: list[float]
    since_best: int  # evaluations since the best one
    stopped_early: bool
    seconds: float  # training time so far, over every session
    resumed_at: list[int]
    data_sha256: str

    @property
    def finished(self) -> bool:
        """Whether the run is over: all ``config.steps`` done, or stopped early."""
        return self.stopped_early or self.step >= self.config.steps

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as a JSON-ready document; every float keeps every bit."""
        version, internal, gauss = self.batch_rng
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "finished": self.finished,
            "config": self.config.to_json(),
            "data_sha256": self.data_sha256,
            "model": model_document(_model_with(self.config, self.weights)),
            "optimizer": self.optimizer,
            "schedule": {
                "name": self.config.schedule,
                "position": self.step,
                "steps": self.config.steps,
            },
            "random": {"batches": [version, list(internal), gauss]},
            "history": asdict(self.history),
            "evaluations": asdict(self.evaluations),
            "best": {
                "loss": self.best_loss if math.isfinite(self.best_loss) else None,
                "step": self.best_step,
                "weights": self.best_weights,
                "evaluations_since": self.since_best,
            },
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "resumed_at": self.resumed_at,
        }

    def dumps(self) -> str:
        """The checkpoint as the JSON text :meth:`save` writes (compact, no NaN)."""
        return json.dumps(self.to_json(), allow_nan=False, separators=(",", ":"))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``path`` as JSON, atomically: a reader (or a resumed
        run) finds the previous checkpoint or this one, never half a file."""
        return atomic_write_text(path, self.dumps())

    @classmethod
    def from_json(cls, doc: object) -> Checkpoint:
        """The checkpoint in ``doc`` (:meth:`to_json`'s form), every entry checked.

        Raises :class:`CheckpointError` naming the first entry that is missing, of
        the wrong type or size, or does not agree with the rest (a model that is not
        the config's, a history of the wrong length, an optimiser state of another
        optimiser, ...), or holds a number that no float can hold
        (:func:`~chainrule.nn.find_number_beyond_float`). The model is checked as
        :func:`chainrule.nn.load` checks a model file, the optimiser state as its
        ``load_state_dict`` does.
        """
        beyond = find_number_beyond_float(doc)
        if beyond is not None:
            raise CheckpointError(beyond)
        return _checked_checkpoint(doc)


def _checked_checkpoint(doc: object) -> Checkpoint:
    """:meth:`Checkpoint.from_json` of a document whose numbers are known to fit floats."""
    try:
        return _checkpoint_from_json(doc)
    except (ConfigError, ModelFileError, ValueError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(str(exc)) from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :meth:`Checkpoint.save` (or ``chainrule train``).

    The file is refused unread above :data:`MAX_CHECKPOINT_BYTES`; its JSON must parse
    (no ``NaN``, no number beyond a float's range, nothing truncated) and every entry
    pass :meth:`Checkpoint.from_json`. Raises :class:`CheckpointError` naming the file
    and what is wrong with it.
    """
    doc = read_json_file(
        path,
        kind="checkpoint",
        limit=MAX_CHECKPOINT_BYTES,
        limit_name="chainrule.training.MAX_CHECKPOINT_BYTES",
        error=CheckpointError,
    )
    try:
        return _checked_checkpoint(doc)  # read_json_file has checked the numbers' range
    except CheckpointError as exc:
        raise CheckpointError(f"{Path(path)}: {exc}") from None


def _model_with(config: TrainConfig, weights: Sequence[float] | None = None) -> MLP:
    """The model of ``config``, holding ``weights`` (in ``parameters()`` order) if given."""
    model = MLP(
        2,
        [*config.hidden, config.task().outputs],
        activation=config.activation,  # type: ignore[arg-type]
        rng=random.Random(0),  # the weights are set below, or only the shape matters
    )
    if weights is not None:
        for p, w in zip(model.parameters(), weights, strict=True):
            p.data = w
    return model


def _entry(doc: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    if key not in doc:
        raise CheckpointError(f"the checkpoint lacks {key!r}")
    value = doc[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise CheckpointError(f"{key} has the wrong type ({type(value).__name__})")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _whole(value: object, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CheckpointError(f"{what} must be a whole number >= {low}, got {value!r:.40}")
    return value


def _numbers(value: object, what: str, n: int | None = None) -> list[float]:
    """A list of finite numbers (``n`` of them), as floats."""
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise CheckpointError(f"{what} must be a list of {n if n is not None else ''} numbers")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise CheckpointError(f"{what} holds {x!r:.40}, not a finite number")
    return [float(x) for x in value]


def _checkpoint_from_json(doc: object) -> Checkpoint:
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not a chainrule checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"unknown checkpoint version {doc.get('version')!r:.40}; "
            f"this chainrule reads version {CHECKPOINT_VERSION}"
        )
    try:
        config = TrainConfig.from_json(_entry(doc, "config", dict))
    except ConfigError as exc:
        raise CheckpointError(f"its config: {exc}") from None
    step = _whole(_entry(doc, "step", int), "step")
    if step > config.steps:
        raise CheckpointError(f"step {step} is past the config's {config.steps} steps")
    try:
        model, _ = model_from_document(_entry(doc, "model", dict))
    except ModelFileError as exc:
        raise CheckpointError(f"its model: {exc}") from None
    expected = _model_with(config).architecture()
    if model.architecture() != expected:
        raise CheckpointError(
            f"its model ({model.architecture()}) is not the config's ({expected})"
        )
    weights = [p.data for p in model.parameters()]
    optimizer_state = _entry(doc, "optimizer", dict)
    try:  # checked by the optimiser that will load it
        make_optimizer(config, model).load_state_dict(optimizer_state)
    except ValueError as exc:
        raise CheckpointError(f"its optimizer state: {exc}") from None
    schedule = _entry(doc, "schedule", dict)
    if schedule != {"name": config.schedule, "position": step, "steps": config.steps}:
        raise CheckpointError(
            f"its schedule {schedule!r:.80} is not the config's {config.schedule!r} over "
            f"{config.steps} steps at position {step}"
        )
    batch_rng = _random_state(_entry(doc, "random", dict).get("batches"))
    history = _entry(doc, "history", dict)
    if sorted(history) != ["accuracy", "loss", "lr"]:
        raise CheckpointError("history must hold loss, accuracy and lr")
    hist = History(**{key: _numbers(history[key], f"history {key}", step) for key in history})
    ev = _entry(doc, "evaluations", dict)
    names = [f.name for f in fields(Evaluations)]
    if sorted(ev) != sorted(names):
        raise CheckpointError(f"evaluations must hold {', '.join(names)}")
    if not isinstance(ev["step"], list):
        raise CheckpointError("evaluations step must be a list of steps")
    evals = Evaluations(
        step=[_whole(k, "an evaluation's step", 1) for k in ev["step"]],
        **{
            key: _numbers(ev[key], f"evaluations {key}", len(ev["step"]))
            for key in names
            if key != "step"
        },
    )
    if any(k > step for k in evals.step):
        raise CheckpointError(f"an evaluation is after step {step}")
    best = _entry(doc, "best", dict)
    best_loss = best.get("loss")
    best_loss = math.inf if best_loss is None else _numbers([best_loss], "best loss")[0]
    best_step = best.get("step")
    if best_step is not None:
        best_step = _whole(best_step, "best step", 1)
    best_weights = _numbers(best.get("weights"), "best weights", len(weights))
    since_best = _whole(best.get("evaluations_since"), "best evaluations_since")
    seconds = _numbers([_entry(doc, "seconds", (int, float))], "seconds")[0]
    if seconds < 0:
        raise CheckpointError(f"seconds must be >= 0, got {seconds}")
    resumed_at = [_whole(k, "resumed_at", 0) for k in _entry(doc, "resumed_at", list)]
    sha = _entry(doc, "data_sha256", str)
    if len(sha) != 64:
        raise CheckpointError("data_sha256 must be 64 hexadecimal digits")
    return Checkpoint(
        config=config,
        step=step,
        weights=weights,
        optimizer=optimizer_state,
        batch_rng=batch_rng,
        history=hist,
        evaluations=evals,
        best_loss=best_loss,
        best_step=best_step,
        best_weights=best_weights,
        since_best=since_best,
        stopped_early=_entry(doc, "stopped_early", bool),
        seconds=seconds,
        resumed_at=resumed_at,
        data_sha256=sha,
    )


def _random_state(value: object) -> tuple[Any, ...]:
    """A ``random.Random`` state from its JSON form ``[version, [625 ints], gauss]``."""
    try:
        if not isinstance(value, list) or len(value) != 3 or not isinstance(value[1], list):
            raise TypeError("not [version, [numbers], gauss]")
        state = (value[0], tuple(value[1]), value[2])
        random.Random().setstate(state)  # checks the version, the length, the numbers
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"random state of the mini-batches is not valid ({exc})") from None
    return state


def _data_sha256(*parts: object) -> str:
    """A fingerprint of the data a run trains and is tested on (floats written exactly)."""
    return hashlib.sha256(json.dumps(parts).encode("ascii")).hexdigest()


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
) -> TrainResult:
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
    saved = resume_from
    if saved is not None and not isinstance(saved, Checkpoint):
        saved = load_checkpoint(saved)
    config = _session_config(config, saved)
    saving = checkpoint_path is not None or on_checkpoint is not None
    _check_session(config, saved, checkpoint_every, saving, stop_after)
    model, task, X, y = build(config)
    X_test: list[list[float]] = []
    y_test: list[int] = []
    if config.test_fraction:
        X, y, X_test, y_test = datasets.train_test_split(
            X, y, config.test_fraction, seed=config.seed
        )
    fingerprint = _data_sha256(X, y, X_test, y_test)
    targets = task.targets(y)
    params = model.parameters()

    def loss_fn(rows: Sequence[Sequence[Value]], labels: Sequence[Any]) -> tuple[Value, Any]:
        outputs = [model(row) for row in rows]
        loss = task.loss_value(outputs, labels)
        if config.l2:
            loss = loss + config.l2 * losses.l2(params)
        return loss, outputs

    if config.compiled:
        from chainrule.compiler import compile

        step: Any = compile(loss_fn, params, has_aux=True)
        inputs: Sequence[Any] = X
        if task.loss == "softmax":  # labels as probability rows: inputs can't index
            targets = [[float(c == label) for c in range(task.classes)] for label in y]
    else:
        step = loss_fn
        inputs = [[Value(v) for v in row] for row in X]
    optimizer = make_optimizer(config, model)
    schedule = make_schedule(config.schedule, config.lr, config.steps)
    batch_rng = random.Random(config.seed + 1)
    history = History()
    evaluations = Evaluations()
    best_loss, best_step, best_weights = math.inf, None, [p.data for p in params]
    since_best, stopped_early = 0, False
    start, earlier_seconds, resumed_at = 0, 0.0, []
    if saved is not None:
        if saved.data_sha256 != fingerprint:
            raise CheckpointError(
                "the data drawn from the checkpoint's config differ from the data it was "
                "trained on (another version of chainrule or NumPy?); it cannot be "
                "resumed exactly"
            )
        for p, w in zip(params, saved.weights, strict=True):
            p.data = w
        optimizer.load_state_dict(saved.optimizer)
        batch_rng.setstate(saved.batch_rng)
        history = History(*(list(v) for v in asdict(saved.history).values()))
        evaluations = Evaluations(*(list(v) for v in asdict(saved.evaluations).values()))
        best_loss, best_step = saved.best_loss, saved.best_step
        best_weights, since_best = list(saved.best_weights), saved.since_best
        stopped_early, start = saved.stopped_early, saved.step
        earlier_seconds, resumed_at = saved.seconds, [*saved.resumed_at, saved.step]
    started = time.perf_counter()

    def snapshot() -> Checkpoint:
        """The run's state now, every list copied."""
        return Checkpoint(
            config=config,
            step=len(history.loss),
            weights=[p.data for p in params],
            optimizer=optimizer.state_dict(),
            batch_rng=batch_rng.getstate(),
            history=History(*(list(v) for v in asdict(history).values())),
            evaluations=Evaluations(*(list(v) for v in asdict(evaluations).values())),
            best_loss=best_loss,
            best_step=best_step,
            best_weights=list(best_weights),
            since_best=since_best,
            stopped_early=stopped_early,
            seconds=earlier_seconds + time.perf_counter() - started,
            resumed_at=list(resumed_at),
            data_sha256=fingerprint,
        )

    def save(checkpoint: Checkpoint) -> None:
        if checkpoint_path is not None:
            checkpoint.save(checkpoint_path)
        if on_checkpoint is not None:
            on_checkpoint(checkpoint)

    bar = progress_bar(config.steps, initial=start) if progress else None
    end = start if stopped_early else config.steps
    paused = False
    k = start
    try:
        with _InterruptGuard(saving) as guard:
            for k in range(start, end):
                if config.batch_size is None or config.batch_size >= len(inputs):
                    idx: Sequence[int] = range(len(inputs))
                else:
                    idx = batch_rng.sample(range(len(inputs)), config.batch_size)
                loss, outputs = step([inputs[i] for i in idx], [targets[i] for i in idx])
                _check_loss(loss.data, history.loss, k, config.lr)
                predicted = [task.predict(o)[0] for o in outputs]
                acc = losses.accuracy(predicted, [y[i] for i in idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.lr = schedule(k)
                history.loss.append(loss.data)
                history.accuracy.append(acc)
                history.lr.append(optimizer.lr)
                optimizer.step()
                if bar is not None:
                    bar.set_postfix(loss=f"{loss.data:.4f}", accuracy=f"{acc:.0%}", refresh=False)
                    bar.update()
                done = k + 1
                if X_test and (done % config.eval_every == 0 or done == config.steps):
                    train_loss, train_acc = _measure(model, task, X, y)
                    test_loss, test_acc = _measure(model, task, X_test, y_test)
                    evaluations.step.append(done)
                    evaluations.train_loss.append(train_loss)
                    evaluations.train_accuracy.append(train_acc)
                    evaluations.test_loss.append(test_loss)
                    evaluations.test_accuracy.append(test_acc)
                    if test_loss < best_loss:
                        best_loss, best_step, best_weights = (
                            test_loss,
                            done,
                            [p.data for p in params],
                        )
                        since_best = 0
                    else:
                        since_best += 1
                        if config.patience is not None and since_best >= config.patience:
                            stopped_early = True
                            break
                if guard.requested:
                    break
                if stop_after is not None and done >= stop_after and done < config.steps:
                    paused = True
                    break
                if checkpoint_every and done % checkpoint_every == 0 and done < config.steps:
                    save(snapshot())
            k = len(history.loss)
            last = snapshot()  # the run's state, before the best weights are put back
            if saving:
                save(last)
            if guard.requested:
                raise TrainingInterrupted(last, guard.requested)
        if config.patience is not None and best_step is not None and not paused:
            for p, w in zip(params, best_weights, strict=True):  # the best test loss's weights
                p.data = w
        final_accuracy = evaluate(model, task, X, y)  # also proves the final model computes
    except (ArithmeticError, DomainError) as exc:  # overflow, inf - inf, ... in the numbers
        if isinstance(exc, DivergedError) or not history.loss:
            raise  # already explained, or the first loss failed: not a divergence
        raise _diverged(k, config.lr, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    if not all(math.isfinite(p.data) for p in params):
        raise _diverged(k, config.lr, "a parameter is no longer a finite number")
    report = step.explain() if config.compiled else ""
    return TrainResult(
        model,
        config,
        task,
        history,
        last.seconds,
        X,
        y,
        X_test,
        y_test,
        report,
        final_accuracy,
        evaluations,
        stopped_early,
        best_step,
        finished=not paused,
        checkpoint=last,
        resumed_at=resumed_at,
    )


def _session_config(config: TrainConfig | None, saved: Checkpoint | None) -> TrainConfig:
    """The config of this session: ``config``, or the checkpoint's (``steps`` may differ)."""
    if saved is None:
        if config is None:
            raise TypeError("train: give a TrainConfig, or a checkpoint to resume_from")
        return config
    if config is None:
        return replace(saved.config)
    differ = [
        f.name
        for f in fields(TrainConfig)
        if f.name != "steps" and getattr(config, f.name) != getattr(saved.config, f.name)
    ]
    if differ:
        shown = ", ".join(
            f"{name} {getattr(config, name)!r} (saved: {getattr(saved.config, name)!r})"
            for name in differ[:3]
        )
        raise ConfigError(
            f"resuming: the config differs from the checkpoint's in {shown}; only steps may "
            "change (leave config out to use the saved one)"
        )
    return config


def _check_session(
    config: TrainConfig,
    saved: Checkpoint | None,
    checkpoint_every: int | None,
    saving: bool,
    stop_after: int | None,
) -> None:
    """Raise :class:`ConfigError` for a session that cannot run as asked, before any work."""
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
    if saved is None:
        return
    if stop_after is not None and stop_after <= saved.step:
        raise ConfigError(
            f"stop_after {stop_after}: the run is already at step {saved.step}; give a later step"
        )
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


def _check_loss(loss: float, previous: Sequence[float], k: int, lr: float) -> None:
    """Raise :class:`DivergedError` if ``loss`` (step ``k``) is non-finite or has exploded."""
    if not math.isfinite(loss):
        raise _diverged(k, lr, f"the loss is {loss}")
    if previous and loss > DIVERGENCE_FACTOR * max(previous[0], 1.0):
        raise _diverged(k, lr, f"the loss grew from {previous[0]:.4g} to {loss:.4g}")


def _diverged(step: int, lr: float, why: str) -> DivergedError:
    return DivergedError(
        f"training diverged at step {step} ({why}); lower the learning rate "
        f"(it was {lr:g}): `chainrule lr-find` suggests one"
    )


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # the final loss of each short run; inf where it diverged
    suggested: tuple[float, float] | None  # None when every rate diverged


def lr_find(
    config: TrainConfig,
    lr_min: float = 1e-3,
    lr_max: float = 1e3,
    num: int = 13,
    steps: int = 20,
) -> LRFindResult:
    """Short runs from the same initial model over exponentially spaced learning rates.

    Each run uses a constant learning rate for ``steps`` steps; a run that diverges
    (see :func:`train`), or ends above 10× its starting loss, counts as diverged
    (``inf``). The suggested range is from a tenth of the best learning rate up to the
    best one -- the largest rates that still train well are the ones to try -- raised
    if need be so that it contains no rate that diverged. When every rate diverged
    there is no suggestion (``suggested`` is None).
    """
    if not 0 < lr_min < lr_max:
        raise ConfigError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    if num < 2:
        raise ConfigError(f"need at least 2 learning rates, got {num}")
    config.validate()
    ratio = (lr_max / lr_min) ** (1.0 / (num - 1))
    lrs = [lr_min * ratio**i for i in range(num)]
    finals = []
    for lr in lrs:
        changes = {"lr": lr, "steps": steps, "schedule": "constant", "patience": None}
        run = TrainConfig(**{**asdict(config), **changes})
        try:
            result = train(run)
            first, last = result.history.loss[0], result.history.loss[-1]
            finals.append(last if last <= 10 * first else math.inf)
        except DivergedError:
            finals.append(math.inf)
    return LRFindResult(lrs, finals, _suggest(lrs, finals))


def _suggest(lrs: Sequence[float], finals: Sequence[float]) -> tuple[float, float] | None:
    """From a tenth of the best rate to the best, above every diverged rate below it."""
    if not any(math.isfinite(v) for v in finals):
        return None
    best = min(range(len(lrs)), key=finals.__getitem__)
    low = lrs[best] / 10.0
    for i in range(best):
        if not math.isfinite(finals[i]) and lrs[i] >= low:
            low = lrs[i + 1]  # the next tested rate up, which did not diverge
    return low, lrs[best]


# -- the character-level GPT ---------------------------------------------------------------


@dataclass
class GPTConfig:
    """Every choice of a GPT training run; the defaults are ``chainrule gpt train``'s.

    A GPT (:class:`chainrule.gpt.GPT`) of ``layers`` layers, ``dim``-wide vectors,
    ``heads`` heads and a context of ``block_size`` characters, trained on the shipped
    names (:func:`chainrule.data.names`), shuffled with ``seed``, one name per step,
    by Adam with betas (0.85, 0.99) and a learning rate falling linearly from ``lr``.
    """

    steps: int = 1000
    lr: float = 0.01
    layers: int = 1
    dim: int = 16
    heads: int = 4
    block_size: int = 16
    seed: int = 1337
    compiled: bool = True  # one compiled program per name length; False: the eager engine

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad choice, before any work."""
        for name in ("steps", "layers", "dim", "heads", "block_size"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {n!r}")
        if self.dim % self.heads:
            raise ConfigError(
                f"dim {self.dim} is not divisible by heads {self.heads}: each head takes "
                "dim / heads entries"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        check_seed(self.seed)
        from chainrule.gpt import CharTokenizer, count_parameters

        vocab_size = CharTokenizer.from_names(datasets.names()).vocab_size
        check_parameter_count(
            count_parameters(vocab_size, self.block_size, self.dim, self.layers),
            "the GPT would have",
            ConfigError,
            hint="; choose a smaller dim, layers or block_size",
        )


@dataclass
class GPTResult:
    model: Any  # chainrule.gpt.GPT (imported on use: this module serves the MLPs too)
    tokenizer: Any  # chainrule.gpt.CharTokenizer
    config: GPTConfig
    loss: list[float]  # per step: the loss of that step's name, before the update
    lr: list[float]  # per step: the learning rate of the update
    seconds: float
    compile_report: str = ""

    def metrics(self) -> dict[str, Any]:
        """The run's figures, JSON-ready: losses per step, time, engine, sizes, config."""
        last = self.loss[-100:]
        return {
            "loss": math.fsum(last) / len(last),
            "loss_window": len(last),
            "uniform_loss": math.log(self.tokenizer.vocab_size),
            "steps": len(self.loss),
            "seconds": self.seconds,
            "parameters": self.model.num_parameters(),
            "vocab_size": self.tokenizer.vocab_size,
            "engine": _engine(self.compile_report),
            "history": {"loss": self.loss, "lr": self.lr},
            "config": asdict(self.config),
        }


def train_gpt(config: GPTConfig, progress: bool = False) -> GPTResult:
    """Train a GPT on the shipped names; with ``progress`` a bar shows the loss.

    The weights are drawn with ``random.Random(seed)``, the names shuffled with
    ``random.Random(seed + 1)``; step ``k`` trains on the ``k``-th name (cut to the
    context). Divergence stops the run with :class:`~chainrule.errors.DivergedError`,
    as in :func:`train`. Raises :class:`ConfigError` for a bad ``config``.
    """
    from chainrule.gpt import GPT, CharTokenizer, Trainer

    config.validate()
    names = datasets.names()
    tokenizer = CharTokenizer.from_names(names)
    random.Random(config.seed + 1).shuffle(names)
    model = GPT(
        tokenizer.vocab_size,
        config.block_size,
        config.dim,
        config.heads,
        config.layers,
        rng=random.Random(config.seed),
    )
    trainer = Trainer(model, lr=config.lr, steps=config.steps, compiled=config.compiled)
    history: list[float] = []
    lrs: list[float] = []
    bar = progress_bar(config.steps) if progress else None
    start = time.perf_counter()
    k = 0
    try:
        for k in range(config.steps):
            loss = trainer.step(tokenizer.encode(names[k % len(names)]))
            _check_loss(loss, history, k, config.lr)
            history.append(loss)
            lrs.append(trainer.optimizer.lr)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update()
        k = config.steps
    except (ArithmeticError, DomainError) as exc:
        if isinstance(exc, DivergedError) or not history:
            raise
        raise _diverged(k, config.lr, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    if not all(math.isfinite(p.data) for p in model.parameters()):
        raise _diverged(k, config.lr, "a parameter is no longer a finite number")
    seconds = time.perf_counter() - start
    report = trainer.compiled.explain() if trainer.compiled is not None else ""
    return GPTResult(model, tokenizer, config, history, lrs, seconds, report)
