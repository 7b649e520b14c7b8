"""Checkpoints: a training run's whole state, saved as JSON and read back checked.

:class:`Checkpoint` holds what a run needs to go on bit for bit (weights, optimiser
state, the mini-batch sampler, :class:`History`, :class:`Evaluations`, early-stopping
bookkeeping); :meth:`Checkpoint.save` writes it atomically, :func:`load_checkpoint`
reads it with every entry checked (:class:`CheckpointError` names the first bad one),
within the size bound :data:`MAX_CHECKPOINT_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError
from chainrule.io.files import atomic_write_text
from chainrule.nn import (
    MAX_FLOAT_CHARS,
    MAX_MODEL_PARAMETERS,
    MLP,
    ModelFileError,
    find_number_beyond_float,
    model_document,
    model_from_document,
    read_json_file,
)
from chainrule.training.config import MAX_STEPS, ConfigError, TrainConfig, make_optimizer

__all__ = [
    "CHECKPOINT_BYTES_PER_PARAMETER",
    "CHECKPOINT_BYTES_PER_STEP",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_HEADER_BYTES",
    "CHECKPOINT_VERSION",
    "MAX_CHECKPOINT_BYTES",
    "Checkpoint",
    "CheckpointError",
    "Evaluations",
    "History",
    "data_sha256",
    "load_checkpoint",
]


class CheckpointError(ChainruleError, ValueError):
    """A checkpoint that cannot be resumed: missing, truncated, tampered, or not this run's."""


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
    generators keep no state into the loop), or the data are read again from the
    config's data file; ``data_sha256`` proves they came out the same. :meth:`save`
    writes it as JSON (never pickle), :func:`load_checkpoint` reads it back with every
    entry checked.
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
        config.features,
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
    """The checkpoint in ``doc``, read entry by entry in the order of its document: the
    header, the config (on which the rest is checked), the model and optimiser, the
    schedule, the mini-batch sampler, the history, the evaluations and the rest."""
    doc = _checked_header(doc)
    config = _config_entry(doc)
    step = _whole(_entry(doc, "step", int), "step")
    if step > config.steps:
        raise CheckpointError(f"step {step} is past the config's {config.steps} steps")
    weights, optimizer_state = _model_and_optimizer(doc, config)
    schedule = _entry(doc, "schedule", dict)
    if schedule != {"name": config.schedule, "position": step, "steps": config.steps}:
        raise CheckpointError(
            f"its schedule {schedule!r:.80} is not the config's {config.schedule!r} over "
            f"{config.steps} steps at position {step}"
        )
    batch_rng = _random_state(_entry(doc, "random", dict).get("batches"))
    history = _history_entry(doc, step)
    evaluations = _evaluations_entry(doc, step)
    best_loss, best_step, best_weights, since_best = _best_entry(doc, len(weights))
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
        history=history,
        evaluations=evaluations,
        best_loss=best_loss,
        best_step=best_step,
        best_weights=best_weights,
        since_best=since_best,
        stopped_early=_entry(doc, "stopped_early", bool),
        seconds=seconds,
        resumed_at=resumed_at,
        data_sha256=sha,
    )


def _checked_header(doc: object) -> dict[str, Any]:
    """``doc`` if it is an object of this format and version."""
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not a chainrule checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"unknown checkpoint version {doc.get('version')!r:.40}; "
            f"this chainrule reads version {CHECKPOINT_VERSION}"
        )
    return doc


def _config_entry(doc: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_json(_entry(doc, "config", dict))
    except ConfigError as exc:
        raise CheckpointError(f"its config: {exc}") from None


def _model_and_optimizer(
    doc: dict[str, Any], config: TrainConfig
) -> tuple[list[float], dict[str, Any]]:
    """The weights of the model entry, which must be the config's model, and the
    optimiser state, checked by the config's optimiser loading it."""
    try:
        model, _ = model_from_document(_entry(doc, "model", dict))
    except ModelFileError as exc:
        raise CheckpointError(f"its model: {exc}") from None
    expected = _model_with(config).architecture()
    if model.architecture() != expected:
        raise CheckpointError(
            f"its model ({model.architecture()}) is not the config's ({expected})"
        )
    optimizer_state = _entry(doc, "optimizer", dict)
    try:
        make_optimizer(config, model).load_state_dict(optimizer_state)
    except ValueError as exc:
        raise CheckpointError(f"its optimizer state: {exc}") from None
    return [p.data for p in model.parameters()], optimizer_state


def _history_entry(doc: dict[str, Any], step: int) -> History:
    """The history: ``step`` losses, accuracies and learning rates."""
    history = _entry(doc, "history", dict)
    if sorted(history) != ["accuracy", "loss", "lr"]:
        raise CheckpointError("history must hold loss, accuracy and lr")
    return History(**{key: _numbers(history[key], f"history {key}", step) for key in history})


def _evaluations_entry(doc: dict[str, Any], step: int) -> Evaluations:
    """The evaluations: lists of one length, none after ``step``."""
    ev = _entry(doc, "evaluations", dict)
    names = [f.name for f in fields(Evaluations)]
    if sorted(ev) != sorted(names):
        raise CheckpointError(f"evaluations must hold {', '.join(names)}")
    if not isinstance(ev["step"], list):
        raise CheckpointError("evaluations step must be a list of steps")
    evaluations = Evaluations(
        step=[_whole(k, "an evaluation's step", 1) for k in ev["step"]],
        **{
            key: _numbers(ev[key], f"evaluations {key}", len(ev["step"]))
            for key in names
            if key != "step"
        },
    )
    if any(k > step for k in evaluations.step):
        raise CheckpointError(f"an evaluation is after step {step}")
    return evaluations


def _best_entry(doc: dict[str, Any], n: int) -> tuple[float, int | None, list[float], int]:
    """The early-stopping bookkeeping: best loss (inf if none yet), its step, its ``n``
    weights, and the evaluations since."""
    best = _entry(doc, "best", dict)
    loss = best.get("loss")
    best_loss = math.inf if loss is None else _numbers([loss], "best loss")[0]
    best_step = best.get("step")
    if best_step is not None:
        best_step = _whole(best_step, "best step", 1)
    best_weights = _numbers(best.get("weights"), "best weights", n)
    since_best = _whole(best.get("evaluations_since"), "best evaluations_since")
    return best_loss, best_step, best_weights, since_best


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


def data_sha256(*parts: object) -> str:
    """A fingerprint of the data a run trains and is tested on (floats written exactly)."""
    return hashlib.sha256(json.dumps(parts).encode("ascii")).hexdigest()
