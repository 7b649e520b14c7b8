"""What a training run is: :class:`TrainConfig` (every choice, checked before any work),
:class:`Task` (how outputs become a loss, a class and a score), the limits and defaults
of a run, and :func:`build` / :func:`make_optimizer`, which turn a config into the
dataset, the freshly initialised model and its optimiser.

Standard library only (the explorer runs it in the browser).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import PurePath
from typing import Any

from chainrule import data as datasets
from chainrule import losses
from chainrule.core import Value
from chainrule.errors import ChainruleError
from chainrule.nn import (
    ACTIVATIONS,
    INITS,
    MLP,
    ModelFileError,
    check_parameter_count,
    count_parameters,
)
from chainrule.optim import SCHEDULES, SGD, Adam, Optimizer

__all__ = [
    "ADAM_MAX_LR",
    "DATA_FILE",
    "DEFAULT_LR",
    "LOSSES",
    "MAX_SAMPLES",
    "MAX_SEED",
    "MAX_STEPS",
    "OPTIMIZERS",
    "ConfigError",
    "Task",
    "TrainConfig",
    "build",
    "check_seed",
    "data_facts",
    "demo_config",
    "load_data",
    "make_optimizer",
]

LOSSES: tuple[str, ...] = ("auto", "hinge", "bce", "mse", "softmax")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


#: The learning rate ``chainrule train`` uses when none is given, per optimiser: plain
#: SGD moves by lr x gradient, Adam by about lr per weight whatever the gradient's size.
DEFAULT_LR: dict[str, float] = {"sgd": 1.0, "adam": 0.05}

#: Adam's step is about ``lr`` in every weight: from this rate up it only jumps about.
ADAM_MAX_LR = 1.0

#: The most points a generated dataset may have: they are made in Python, one list each.
MAX_SAMPLES = 10_000_000

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

    def example_loss(self, output: Any, target: Any) -> Value:
        """The loss of one example: the term :meth:`loss_value` averages. The softmax
        loss takes its target as a one-hot row (a compiled function's input cannot be
        used as an index); the others a number."""
        if self.loss == "hinge":
            return (1.0 - target * output).relu()  # type: ignore[no-any-return]
        if self.loss == "bce":
            return output.softplus() - target * output  # type: ignore[no-any-return]
        if self.loss == "mse":
            return (output - target) ** 2  # type: ignore[no-any-return]
        return losses.cross_entropy(output, target)

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
    """The default of ``dataset``, ``samples``, ``noise``, ``classes`` and ``features``:
    the dataset's own, or the data file's."""

    def __repr__(self) -> str:
        return "<the dataset's default>"


_DATASET_DEFAULT: Any = _DatasetDefault()


#: The name :attr:`TrainConfig.dataset` has in a run on a data file.
DATA_FILE = "csv"

#: The fields added to :class:`TrainConfig` since the first checkpoints, with the value
#: each has for a generated dataset: :meth:`TrainConfig.to_json` leaves them out there
#: (so such a run's config and checkpoint are what they always were, byte for byte)
#: and :meth:`TrainConfig.from_json` reads a config without them as that value.
_ADDED_FIELDS: dict[str, object] = {"data": None, "features": 2}


@dataclass
class TrainConfig:
    """Every choice of a training run; the defaults are the reference demo's.

    ``samples``, ``noise`` and ``classes`` not given are the dataset's own
    (:data:`chainrule.data.DEFAULTS`), as in ``chainrule train`` and the explorer.

    ``data``, the path of a CSV file (:func:`chainrule.data.read_csv`: one point a
    line, the features then the label), trains on its points instead of a generated
    dataset. ``dataset`` is then ``"csv"``, ``noise`` 0, and ``samples``, ``classes``
    and ``features`` (the model's inputs; 2 for every generated dataset) are the
    file's: left out, they are read from it here, and a run refuses a file that no
    longer has them (it has changed since). The path is kept as given; ``chainrule
    train --data`` makes it absolute, so that a run resumes from any folder.
    """

    dataset: str = _DATASET_DEFAULT
    samples: int = _DATASET_DEFAULT
    noise: float = _DATASET_DEFAULT
    classes: int = _DATASET_DEFAULT
    hidden: tuple[int, ...] = (16, 16)
    # ReLU, the reference demo's network, not nn's DEFAULT_ACTIVATION (the lecture's tanh):
    # the command line's models and checkpoints have always defaulted to it.
    activation: str = "relu"
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
    data: str | None = None  # a CSV file of points to train on, instead of `dataset`
    features: int = _DATASET_DEFAULT  # numbers per point, the model's inputs

    def __post_init__(self) -> None:
        """Fill in the dataset's own ``samples``, ``noise`` and ``classes`` where not given
        (an unknown dataset gets moons' here; :meth:`validate` refuses its name), or, with
        ``data``, the file's (read here, with :class:`~chainrule.io.csvrows.RowsError`
        naming a bad line)."""
        if self.data is not None:
            if isinstance(self.data, os.PathLike):  # a Path: kept as the str JSON can hold
                self.data = os.fspath(self.data)
            self._fill_in_from_the_file(self.data)
            return
        if self.dataset is _DATASET_DEFAULT:
            self.dataset = "moons"
        own = datasets.DEFAULTS.get(self.dataset, datasets.DEFAULTS["moons"])
        for name in ("samples", "noise", "classes"):
            if getattr(self, name) is _DATASET_DEFAULT:
                setattr(self, name, getattr(own, name))
        if self.features is _DATASET_DEFAULT:
            self.features = 2

    def _fill_in_from_the_file(self, path: str) -> None:
        """``dataset``, ``noise``, ``samples``, ``classes`` and ``features`` of a run on
        the file ``path``, where not given (the file is read only if one is missing)."""
        if self.dataset is _DATASET_DEFAULT:
            self.dataset = DATA_FILE
        if self.noise is _DATASET_DEFAULT:
            self.noise = 0.0
        facts = ("samples", "classes", "features")
        if any(getattr(self, name) is _DATASET_DEFAULT for name in facts):
            found = data_facts(*datasets.read_csv(path))
            for name, value in zip(facts, found, strict=True):
                if getattr(self, name) is _DATASET_DEFAULT:
                    setattr(self, name, value)

    def data_name(self) -> str:
        """What the run trains on, for titles: the dataset, or the data file's name."""
        return PurePath(self.data).name if self.data is not None else self.dataset

    def validate(self) -> None:  # long: one check after another, each a line or two
        """Raise :class:`ConfigError` (a ``ValueError``) naming the first bad choice.

        Everything a run could trip over is checked here, before any work is done.
        """
        self._validate_data()
        choices: dict[str, tuple[str, Sequence[str]]] = {
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
        if self.samples < max(2, self.classes):
            raise ConfigError(
                f"{self.samples} samples are too few: need at least {max(2, self.classes)}"
            )
        if self.samples > MAX_SAMPLES and self.data is None:
            raise ConfigError(
                f"{self.samples:,} samples are more than chainrule generates "
                f"({MAX_SAMPLES:,}, chainrule.training.MAX_SAMPLES)"
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
            count_parameters(self.features, [*self.hidden, self.task().outputs]),
            "the model would have",
            ConfigError,
            hint="; choose smaller hidden layers",
        )

    def _validate_data(self) -> None:
        """The checks of :meth:`validate` on what the run trains on: a generated
        dataset and its noise and classes, or a data file's points."""
        if self.classes < 2:
            raise ConfigError(f"classes must be at least 2, got {self.classes}")
        if self.data is not None:
            self._validate_data_file()
            return
        if self.dataset not in datasets.DATASETS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(datasets.DATASETS)}"
            )
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"noise must be a number >= 0, got {self.noise}")
        if self.classes != 2 and self.dataset not in datasets.MULTICLASS:
            raise ConfigError(
                f"dataset {self.dataset!r} has 2 classes; --classes applies to "
                f"{' and '.join(sorted(datasets.MULTICLASS))}"
            )
        if self.features != 2:
            raise ConfigError(
                f"the generated datasets have 2 features, not {self.features}; more "
                "features come from a data file (data)"
            )

    def _validate_data_file(self) -> None:
        """A run on the file ``data`` has dataset "csv", no noise, at least 1 feature."""
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must name a CSV file, got {self.data!r:.40}")
        if self.dataset != DATA_FILE:
            raise ConfigError(
                f"dataset {self.dataset!r} and data {self.data!r}: a run trains on a "
                f"generated dataset or on a data file, not both (its dataset is {DATA_FILE!r})"
            )
        if self.noise != 0:
            raise ConfigError(
                f"noise {self.noise} applies to generated datasets, not to a data file"
            )
        if self.features < 1:
            raise ConfigError(f"features must be at least 1, got {self.features}")

    def task(self) -> Task:
        loss = self.loss
        if loss == "auto":
            loss = "softmax" if self.classes > 2 else "hinge"
        return Task(loss, self.classes)

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready (``hidden`` as a list); for a generated dataset, those
        of a data file (``data``, ``features``) are left out, so that its config reads
        as it always has."""
        doc = {**asdict(self), "hidden": list(self.hidden)}
        if self.data is None:
            for name in _ADDED_FIELDS:
                del doc[name]
        return doc

    @classmethod
    def from_json(cls, data: object) -> TrainConfig:
        """The config :meth:`to_json` wrote: every field present, of its type, and valid.

        Raises :class:`ConfigError` naming the first field that is missing, unknown,
        of the wrong type (a whole number where one is due, ...) or invalid. A config
        without the fields of a data file is one of a generated dataset (as
        :meth:`to_json` writes it, and as every config did before they came). The
        data file is not read.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be an object, got {data!r:.40}")
        names = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ConfigError(f"unknown config entries: {', '.join(unknown[:5])}")
        if data.get("data") is None:
            data = {**_ADDED_FIELDS, **data}
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


def data_facts(X: Sequence[Sequence[float]], y: Sequence[int]) -> tuple[int, int, int]:
    """``(samples, classes, features)`` of the points ``X`` with classes ``y`` (0..k-1)."""
    return len(X), max(y) + 1, len(X[0])


def load_data(config: TrainConfig) -> tuple[list[list[float]], list[int]]:
    """The points of a run: drawn from its dataset, or read from its data file, which
    must still hold the samples, classes and features of the config (else
    :class:`ConfigError`: the file has changed since the config was made from it)."""
    if config.data is None:
        return datasets.make(
            config.dataset, config.samples, config.noise, config.seed, config.classes
        )
    X, y = datasets.read_csv(config.data)
    found = data_facts(X, y)
    expected = (config.samples, config.classes, config.features)
    if found != expected:
        raise ConfigError(
            f"{config.data} now holds {_facts(found)}, not the {_facts(expected)} of the run's "
            "config; it has changed since the config was made from it"
        )
    return X, y


def _facts(facts: tuple[int, int, int]) -> str:
    samples, classes, features = facts
    return f"{samples} points of {features} features in {classes} classes"


def build(config: TrainConfig) -> tuple[MLP, Task, list[list[float]], list[int]]:
    """The dataset and the freshly initialised model of a run."""
    config.validate()
    X, y = load_data(config)
    task = config.task()
    model = MLP(
        config.features,
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
