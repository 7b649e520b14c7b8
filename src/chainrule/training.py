"""Training end to end: data, model, loss, optimiser, schedule, history.

``train(TrainConfig(...))`` is what the ``chainrule`` command runs; it is an ordinary
gradient-descent loop that a reader can follow step by step::

    outputs = [model(x) for x in batch]        # forward pass: build the graph
    loss = task.loss(outputs, labels) + l2     # one Value at the top of the graph
    optimizer.zero_grad()
    loss.backward()                            # the chain rule, node by node
    optimizer.lr = schedule(k)
    optimizer.step()                           # p.data -= lr * p.grad, and friends

``train_gpt(GPTConfig(...))`` does the same for the character-level GPT of
:mod:`chainrule.gpt` on the shipped names, one name per step.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chainrule import data as datasets
from chainrule import losses
from chainrule.engine import Value, no_grad
from chainrule.errors import ChainruleError, DivergedError, DomainError
from chainrule.nn import ACTIVATIONS, DEFAULT_ACTIVATION, INITS, MLP, ModelFileError
from chainrule.optim import SCHEDULES, SGD, Adam, Optimizer, make_schedule

__all__ = [
    "DATASET_DEFAULTS",
    "DEFAULT_LR",
    "DIVERGENCE_FACTOR",
    "LOSSES",
    "OPTIMIZERS",
    "ConfigError",
    "Evaluations",
    "GPTConfig",
    "GPTResult",
    "History",
    "Task",
    "TrainConfig",
    "TrainResult",
    "demo_config",
    "evaluate",
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

#: What ``chainrule train`` uses for ``samples`` and ``classes`` when they are not given:
#: blobs and spiral are three-class sets, and three spiral arms need more than 100 points.
DATASET_DEFAULTS: dict[str, dict[str, int]] = {
    "moons": {"samples": 100, "classes": 2},
    "xor": {"samples": 100, "classes": 2},
    "circles": {"samples": 100, "classes": 2},
    "blobs": {"samples": 100, "classes": 3},
    "spiral": {"samples": 300, "classes": 3},
}

#: The learning rate ``chainrule train`` uses when none is given, per optimiser: plain
#: SGD moves by lr x gradient, Adam by about lr per weight whatever the gradient's size.
DEFAULT_LR: dict[str, float] = {"sgd": 1.0, "adam": 0.05}

#: Adam's step is about ``lr`` in every weight: from this rate up it only jumps about.
ADAM_MAX_LR = 1.0


class ConfigError(ChainruleError, ValueError):
    """A training configuration that cannot run: an unknown choice or a bad number."""


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
    test_fraction: float = 0.0  # `chainrule train` holds out 0.2; the demo keeps all
    eval_every: int = 10  # with held-out data: evaluate after every this many steps and the last
    patience: int | None = None  # stop after this many evaluations without a better test loss
    compiled: bool = True  # replay the step with chainrule.compile; False: the eager engine

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
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
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

    def task(self) -> Task:
        loss = self.loss
        if loss == "auto":
            loss = "softmax" if self.classes > 2 else "hinge"
        return Task(loss, self.classes)


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
            "config": {**asdict(self.config), "hidden": list(self.config.hidden)},
        }
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


def train(config: TrainConfig, progress: bool = False) -> TrainResult:
    """Run ``config``; with ``progress`` a bar shows the loss and accuracy as it goes.

    With held-out data (``test_fraction`` > 0) the model is evaluated, with no graph
    recorded, after every ``eval_every`` steps and after the last: loss and accuracy
    on the whole training and test sets (:class:`Evaluations`). With ``patience`` the
    run stops once the test loss has not improved for that many evaluations in a row,
    and the weights of the best evaluation are put back (``best_step`` records it).

    Divergence stops the run with :class:`~chainrule.errors.DivergedError` (naming the
    step and suggesting a smaller learning rate) instead of returning a useless model:
    a loss that is non-finite or above :data:`DIVERGENCE_FACTOR` times its first value,
    an overflow in a step after the first update, or a final model with a non-finite
    parameter or output. Raises :class:`ConfigError` for a bad ``config``.
    """
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
    evaluations = Evaluations()
    best_loss, best_step, best_weights = math.inf, None, [p.data for p in params]
    since_best, stopped_early = 0, False
    bar = progress_bar(config.steps) if progress else None
    start = time.perf_counter()
    k = 0
    try:
        for k in range(config.steps):
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
            if X_test and ((k + 1) % config.eval_every == 0 or k + 1 == config.steps):
                train_loss, train_acc = _measure(model, task, X, y)
                test_loss, test_acc = _measure(model, task, X_test, y_test)
                evaluations.step.append(k + 1)
                evaluations.train_loss.append(train_loss)
                evaluations.train_accuracy.append(train_acc)
                evaluations.test_loss.append(test_loss)
                evaluations.test_accuracy.append(test_acc)
                if test_loss < best_loss:
                    best_loss, best_step, best_weights = test_loss, k + 1, [p.data for p in params]
                    since_best = 0
                else:
                    since_best += 1
                    if config.patience is not None and since_best >= config.patience:
                        stopped_early = True
                        break
        k = len(history.loss)
        if config.patience is not None and best_step is not None:
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
    seconds = time.perf_counter() - start
    report = step.explain() if config.compiled else ""
    return TrainResult(
        model,
        config,
        task,
        history,
        seconds,
        X,
        y,
        X_test,
        y_test,
        report,
        final_accuracy,
        evaluations,
        stopped_early,
        best_step,
    )


def progress_bar(total: int, desc: str = "training") -> Any:
    """A tqdm bar on stderr: redrawn ten times a second on a terminal, but only every
    30 s when stderr is a file or a pipe (a CI log), so a log is not flooded."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=total, desc=desc, unit="step", leave=True, mininterval=0.1 if interactive else 30.0
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
