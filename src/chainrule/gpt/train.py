"""Training the GPT: :class:`Trainer` (Adam on one encoded name per step, eager or
compiled), and :func:`train_gpt`, the run of ``chainrule gpt train`` from a
:class:`GPTConfig` (also importable from :mod:`chainrule.training`).

``Trainer(compiled=True)`` loads the compiler (and NumPy) on first use.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any

from chainrule import data as datasets
from chainrule import nn
from chainrule.core import Value
from chainrule.errors import CompileWarning, DivergedError, DomainError
from chainrule.gpt.model import BETAS, GPT, CharTokenizer, count_parameters, one_hot
from chainrule.optim import Adam, LinearDecay
from chainrule.training import (
    ConfigError,
    check_loss,
    check_seed,
    diverged,
    engine_name,
    progress_bar,
)

__all__ = ["GPTConfig", "GPTResult", "Trainer", "train_gpt"]


class Trainer:
    """Adam training of a :class:`GPT`, one encoded name per :meth:`step`, eager or compiled.

    Adam with ``betas`` :data:`BETAS` and ``eps`` 1e-8; the learning rate falls
    linearly from ``lr`` at step 0 towards 0 at step ``steps``
    (:class:`~chainrule.optim.LinearDecay`). With ``compiled=True`` the loss is
    compiled by :func:`chainrule.compile`, its tokens passed as one-hot rows: one
    program per name length, traced the first time a length is met. The compiled path
    updates with :meth:`~chainrule.optim.Adam.step_arrays` (a Python loop over 4,000
    parameters costs more than the compiled forward and backward together), from the
    model's Values as they are at each step and back into them, so the optimiser's
    :meth:`~chainrule.optim.Optimizer.state_dict` is always its true state. Both paths
    make the same updates (to rounding), and either resumes from the other's state.
    """

    def __init__(
        self, model: GPT, *, lr: float = 0.01, steps: int = 1000, compiled: bool = False
    ) -> None:
        nn.check_parameter_count(  # a model trained here can be saved and loaded
            model.num_parameters(), "Trainer: the model has", hint="; not training it"
        )
        self.model = model
        self.optimizer = Adam(model.parameters(), lr=lr, betas=BETAS, eps=1e-8)
        self.schedule = LinearDecay(lr, 0.0, steps)
        self.compiled: Any = None
        if compiled:
            from chainrule.compiler import compile

            self.compiled = compile(self._one_hot_loss, self.optimizer.params)

    def _one_hot_loss(self, rows: list[list[Value]]) -> Value:
        return self.model.loss(rows)

    def loss(self, tokens: Sequence[int]) -> Any:
        """The loss of one encoded name (a Value, or a compiled loss), not yet backpropagated."""
        model = self.model
        tokens = list(tokens[: model.block_size + 1])
        if self.compiled is None:
            return model.loss(tokens)
        rows = one_hot(tokens, model.vocab_size)
        with warnings.catch_warnings():
            # One program per name length is the plan, not a shape that keeps changing:
            # the compiler's warning about many input shapes does not apply.
            warnings.filterwarnings("ignore", r"compile: .* different input", CompileWarning)
            return self.compiled(rows)

    def step(self, tokens: Sequence[int]) -> float:
        """One Adam step on the loss of ``tokens`` (an encoded name); returns the loss."""
        if self.compiled is not None:
            return self._array_step(tokens)
        optimizer = self.optimizer
        optimizer.zero_grad()
        loss = self.loss(tokens)
        loss.backward()
        optimizer.lr = self.schedule(optimizer.steps)
        optimizer.step()
        return float(loss.data)

    def _array_step(self, tokens: Sequence[int]) -> float:
        """The compiled step: gradients from the program at the parameters' values, then
        Adam's update on arrays (:meth:`~chainrule.optim.Adam.step_arrays`), written back."""
        import numpy as np

        optimizer, model = self.optimizer, self.model
        params = optimizer.params
        theta = np.fromiter(map(_data, params), np.float64, len(params))
        rows = one_hot(list(tokens[: model.block_size + 1]), model.vocab_size)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"compile: .* different input", CompileWarning)
            loss, g = self.compiled.value_and_grad(rows, params=theta)
        optimizer.lr = self.schedule(optimizer.steps)
        new = optimizer.step_arrays(theta, g)
        for p, x in zip(params, new.tolist(), strict=True):
            p.data = x
        return float(loss)


_data = attrgetter("data")


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
        vocab_size = CharTokenizer.from_names(datasets.names()).vocab_size
        nn.check_parameter_count(
            count_parameters(vocab_size, self.block_size, self.dim, self.layers),
            "the GPT would have",
            ConfigError,
            hint="; choose a smaller dim, layers or block_size",
        )


@dataclass
class GPTResult:
    """What :func:`train_gpt` returns: the model, its tokenizer, and each step's loss and lr."""

    model: GPT
    tokenizer: CharTokenizer
    config: GPTConfig
    loss: list[float]  # per step: the loss of that step's name, before the update
    lr: list[float]  # per step: the learning rate of the update
    seconds: float
    compile_report: str = ""
    fell_back: bool = False  # compiled, but the compiler ran the steps eagerly

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
            "engine": engine_name(bool(self.compile_report), self.fell_back),
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
            check_loss(loss, history, k, config.lr)
            history.append(loss)
            lrs.append(trainer.optimizer.lr)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update()
        k = config.steps
    except (ArithmeticError, DomainError) as exc:
        if isinstance(exc, DivergedError) or not history:
            raise
        raise diverged(k, config.lr, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    if not all(math.isfinite(p.data) for p in model.parameters()):
        raise diverged(k, config.lr, "a parameter is no longer a finite number")
    seconds = time.perf_counter() - start
    compiled = trainer.compiled
    report = compiled.explain() if compiled is not None else ""
    fell_back = compiled is not None and compiled.fell_back
    return GPTResult(model, tokenizer, config, history, lrs, seconds, report, fell_back)
