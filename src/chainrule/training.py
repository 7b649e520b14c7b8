"""Training classifiers end to end: data, model, loss, optimiser, schedule, history.

``train(TrainConfig(...))`` is what the ``chainrule`` command runs; it is an ordinary
gradient-descent loop that a reader can follow step by step::

    outputs = [model(x) for x in batch]        # forward pass: build the graph
    loss = task.loss(outputs, labels) + l2     # one Value at the top of the graph
    optimizer.zero_grad()
    loss.backward()                            # the chain rule, node by node
    optimizer.lr = schedule(k)
    optimizer.step()                           # p.data -= lr * p.grad, and friends
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chainrule import data as datasets
from chainrule import losses
from chainrule.engine import Value, no_grad
from chainrule.errors import ChainruleError
from chainrule.nn import ACTIVATIONS, DEFAULT_ACTIVATION, INITS, MLP
from chainrule.optim import SCHEDULES, SGD, Adam, Optimizer, make_schedule

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "History",
    "Task",
    "TrainConfig",
    "TrainResult",
    "demo_config",
    "evaluate",
    "lr_find",
    "train",
]

LOSSES: tuple[str, ...] = ("auto", "hinge", "bce", "mse", "softmax")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


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


def _float(v: Value | float) -> float:
    return v.data if isinstance(v, Value) else float(v)


@dataclass
class TrainConfig:
    """Every choice of a training run; the defaults are the reference demo's."""

    dataset: str = "moons"
    samples: int = 100
    noise: float = 0.1
    classes: int = 2
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
    test_fraction: float = 0.0
    compiled: bool = True  # replay the step with chainrule.compile; False: the eager engine

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad choice."""
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
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a number >= 0, got {self.l2}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        multiclass = self.classes > 2
        if multiclass and self.loss not in ("auto", "softmax"):
            raise ValueError(f"{self.classes} classes need the softmax loss, not {self.loss!r}")

    def task(self) -> Task:
        loss = self.loss
        if loss == "auto":
            loss = "softmax" if self.classes > 2 else "hinge"
        return Task(loss, self.classes)


def demo_config() -> TrainConfig:
    """The reference demo: 100 moons points (noise 0.1, seed 1337), MLP 2-16-16-1 ReLU,
    hinge loss + 1e-4·L2, SGD with lr decaying linearly 1.0 → 0.1, 100 full-batch steps."""
    return TrainConfig()


@dataclass
class History:
    """Per step: the loss and accuracy on the batch (before the update) and the lr."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


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

    def metrics(self) -> dict[str, Any]:
        """The run's figures, JSON-ready: final loss and accuracy, steps, time, config."""
        out: dict[str, Any] = {
            "loss": self.history.loss[-1],
            "accuracy": evaluate(self.model, self.task, self.X, self.y),
            "steps": len(self.history.loss),
            "seconds": self.seconds,
            "parameters": self.model.num_parameters(),
            "engine": _engine(self.compile_report),
            "history": asdict(self.history),
            "config": {**asdict(self.config), "hidden": list(self.config.hidden)},
        }
        if self.X_test:
            out["test_accuracy"] = evaluate(self.model, self.task, self.X_test, self.y_test)
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


def train(config: TrainConfig, progress: bool = False) -> TrainResult:
    """Run ``config``; with ``progress`` a bar shows the loss and accuracy as it goes."""
    model, task, X, y = build(config)
    X_test: list[list[float]] = []
    y_test: list[int] = []
    if config.test_fraction:
        X, y, X_test, y_test = datasets.train_test_split(
            X, y, config.test_fraction, seed=config.seed
        )
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
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, desc="training", unit="step", leave=True)
    start = time.perf_counter()
    try:
        for k in range(config.steps):
            if config.batch_size is None or config.batch_size >= len(inputs):
                idx: Sequence[int] = range(len(inputs))
            else:
                idx = batch_rng.sample(range(len(inputs)), config.batch_size)
            loss, outputs = step([inputs[i] for i in idx], [targets[i] for i in idx])
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
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    report = step.explain() if config.compiled else ""
    return TrainResult(model, config, task, history, seconds, X, y, X_test, y_test, report)


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # the final loss of each short run; inf where it diverged
    suggested: tuple[float, float]


def lr_find(
    config: TrainConfig,
    lr_min: float = 1e-3,
    lr_max: float = 1e3,
    num: int = 13,
    steps: int = 20,
) -> LRFindResult:
    """Short runs from the same initial model over exponentially spaced learning rates.

    Each run uses a constant learning rate for ``steps`` steps; a run whose loss
    overflows, or ends above 10× its starting loss, counts as diverged (``inf``). The
    suggested range is from a tenth of the best learning rate up to the best one:
    the largest rates that still train well are the ones to try.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    if num < 2:
        raise ValueError(f"need at least 2 learning rates, got {num}")
    ratio = (lr_max / lr_min) ** (1.0 / (num - 1))
    lrs = [lr_min * ratio**i for i in range(num)]
    finals = []
    for lr in lrs:
        run = TrainConfig(**{**asdict(config), "lr": lr, "steps": steps, "schedule": "constant"})
        try:
            result = train(run)
            first, last = result.history.loss[0], result.history.loss[-1]
            finals.append(last if last <= 10 * first else math.inf)
        except ChainruleError:  # overflow or a domain error: the run blew up
            finals.append(math.inf)
    best = min(range(num), key=finals.__getitem__)
    return LRFindResult(lrs, finals, (lrs[best] / 10.0, lrs[best]))
