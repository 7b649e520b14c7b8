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

:class:`Run` is one run as an object (``step()``, ``evaluate()``, ``snapshot()``), which
:func:`train` drives and the explorer's training view too; :func:`resume_config` is the
one check of the settings a resumed run may change.

``train_gpt(GPTConfig(...))`` does the same for the character-level GPT of
:mod:`chainrule.gpt` on the shipped names, one name per step (it lives there, and is
importable from here too).

The modules: :mod:`~chainrule.training.config` (TrainConfig, Task, limits),
:mod:`~chainrule.training.checkpoint` (Checkpoint, History, Evaluations, the checked
reader), :mod:`~chainrule.training.run` (Run, TrainResult, divergence),
:mod:`~chainrule.training.loop` (train) and :mod:`~chainrule.training.lr_sweep` (lr_find).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainrule.training.checkpoint import (
    CHECKPOINT_BYTES_PER_PARAMETER,
    CHECKPOINT_BYTES_PER_STEP,
    CHECKPOINT_FORMAT,
    CHECKPOINT_HEADER_BYTES,
    CHECKPOINT_VERSION,
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointError,
    Evaluations,
    History,
    load_checkpoint,
)
from chainrule.training.config import (
    ADAM_MAX_LR,
    DEFAULT_LR,
    LOSSES,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_STEPS,
    OPTIMIZERS,
    ConfigError,
    Task,
    TrainConfig,
    build,
    check_seed,
    demo_config,
    make_optimizer,
)
from chainrule.training.loop import TrainingInterrupted, progress_bar, train
from chainrule.training.lr_sweep import LRFindResult, lr_find
from chainrule.training.run import (
    DIVERGENCE_FACTOR,
    ResumeConflict,
    Run,
    StepResult,
    TrainResult,
    check_loss,
    diverged,
    engine_name,
    evaluate,
    resume_config,
)

if TYPE_CHECKING:
    from chainrule.gpt.train import GPTConfig, GPTResult, train_gpt

__all__ = [
    "ADAM_MAX_LR",
    "CHECKPOINT_BYTES_PER_PARAMETER",
    "CHECKPOINT_BYTES_PER_STEP",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_HEADER_BYTES",
    "CHECKPOINT_VERSION",
    "DEFAULT_LR",
    "DIVERGENCE_FACTOR",
    "LOSSES",
    "MAX_CHECKPOINT_BYTES",
    "MAX_SAMPLES",
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
    "LRFindResult",
    "ResumeConflict",
    "Run",
    "StepResult",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "build",
    "check_loss",
    "check_seed",
    "demo_config",
    "diverged",
    "engine_name",
    "evaluate",
    "load_checkpoint",
    "lr_find",
    "make_optimizer",
    "progress_bar",
    "resume_config",
    "train",
    "train_gpt",
]

#: The GPT's training, which lives in :mod:`chainrule.gpt.train` (it builds on this
#: package: importing it here at once would be a cycle), loaded on first use.
_GPT_NAMES = ("GPTConfig", "GPTResult", "train_gpt")


def __getattr__(name: str) -> object:
    if name in _GPT_NAMES:
        from chainrule.gpt import train as gpt_train

        return getattr(gpt_train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
