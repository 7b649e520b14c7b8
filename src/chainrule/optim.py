"""Optimisers and learning-rate schedules, with PyTorch's names.

An optimiser holds a list of parameters; ``step()`` moves each one against its
gradient, ``zero_grad()`` resets the gradients. A schedule maps a step number to a
learning rate; set ``optimizer.lr = schedule(k)`` before each step. This module needs
only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from chainrule.engine import Value
from chainrule.errors import NumericOverflowError

__all__ = [
    "SCHEDULES",
    "SGD",
    "Adam",
    "Constant",
    "Cosine",
    "LinearDecay",
    "Optimizer",
    "Schedule",
    "StepDecay",
    "make_schedule",
]


def _positive(name: str, x: float, allow_zero: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {x!r}")
    return float(x)


class Optimizer:
    """Base class: the parameters, the learning rate ``lr``, ``zero_grad()``."""

    weight_decay = 0.0  # added to each gradient as weight_decay * p (L2); subclasses set it

    def __init__(self, params: Iterable[Value], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters to optimise")
        if not all(isinstance(p, Value) for p in self.params):
            raise TypeError(f"{type(self).__name__}: parameters must be Values")
        self.lr = _positive("lr", lr)
        self.steps = 0

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        self.steps += 1
        for i, p in enumerate(self.params):
            new = p.data - self._update(i, p.grad + self.weight_decay * p.data)
            if not math.isfinite(new):
                raise NumericOverflowError(
                    f"{type(self).__name__}.step: a parameter became {new} at step "
                    f"{self.steps} (training diverged); lower the learning rate (lr={self.lr})"
                )
            p.data = new

    def _update(self, i: int, g: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * v`` with ``v = momentum * v + grad``.

    ``weight_decay`` adds ``weight_decay * p`` to each gradient (L2 regularisation).
    """

    def __init__(
        self,
        params: Iterable[Value],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        self.velocity = [0.0] * len(self.params)

    def _update(self, i: int, g: float) -> float:
        if self.momentum:
            g = self.velocity[i] = self.momentum * self.velocity[i] + g
        return self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): steps scaled by running averages of grad and grad².

    ``m = β1 m + (1-β1) g``, ``v = β2 v + (1-β2) g²``, and the step is
    ``lr * m̂ / (sqrt(v̂) + eps)`` with the bias-corrected ``m̂ = m / (1-β1^t)``,
    ``v̂ = v / (1-β2^t)``.
    """

    def __init__(
        self,
        params: Iterable[Value],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def _update(self, i: int, g: float) -> float:
        b1, b2 = self.betas
        self.m[i] = m = b1 * self.m[i] + (1.0 - b1) * g
        self.v[i] = v = b2 * self.v[i] + (1.0 - b2) * g * g
        m_hat = m / (1.0 - b1**self.steps)
        v_hat = v / (1.0 - b2**self.steps)
        return self.lr * m_hat / (math.sqrt(v_hat) + self.eps)


# -- schedules --------------------------------------------------------------------------


class Schedule:
    """A learning rate for each step ``k = 0, 1, ...``: call it with ``k``."""

    def __call__(self, k: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class Constant(Schedule):
    """The same learning rate at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = _positive("lr", lr)

    def __call__(self, k: int) -> float:
        return self.lr

    def __repr__(self) -> str:
        return f"Constant({self.lr})"


class LinearDecay(Schedule):
    """From ``start`` to ``end`` in a straight line over ``steps`` steps, then ``end``.

    ``LinearDecay(1.0, 0.1, 100)`` is the reference demo's ``1.0 - 0.9 * k / 100``.
    """

    def __init__(self, start: float, end: float, steps: int) -> None:
        self.start = _positive("start", start)
        self.end = _positive("end", end, allow_zero=True)
        self.steps = int(_positive("steps", steps))

    def __call__(self, k: int) -> float:
        if k >= self.steps:
            return self.end
        return self.start - (self.start - self.end) * k / self.steps

    def __repr__(self) -> str:
        return f"LinearDecay({self.start}, {self.end}, {self.steps})"


class StepDecay(Schedule):
    """``lr`` multiplied by ``gamma`` every ``step_size`` steps."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr = _positive("lr", lr)
        self.step_size = int(_positive("step_size", step_size))
        self.gamma = _positive("gamma", gamma)

    def __call__(self, k: int) -> float:
        return self.lr * self.gamma ** (k // self.step_size)

    def __repr__(self) -> str:
        return f"StepDecay({self.lr}, {self.step_size}, {self.gamma})"


class Cosine(Schedule):
    """Half a cosine from ``lr`` down to ``min_lr`` over ``steps`` steps."""

    def __init__(self, lr: float, steps: int, min_lr: float = 0.0) -> None:
        self.lr = _positive("lr", lr)
        self.steps = int(_positive("steps", steps))
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)

    def __call__(self, k: int) -> float:
        t = min(k, self.steps) / self.steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * t))

    def __repr__(self) -> str:
        return f"Cosine({self.lr}, {self.steps}, {self.min_lr})"


SCHEDULES: tuple[str, ...] = ("constant", "linear", "step", "cosine")


def make_schedule(name: str, lr: float, steps: int) -> Schedule:
    """A schedule by name for a run of ``steps`` steps starting at ``lr``.

    ``linear`` decays to a tenth of ``lr`` (the reference demo's 1.0 → 0.1), ``step``
    divides by ten at each third of the run, ``cosine`` anneals to zero.
    """
    if name == "constant":
        return Constant(lr)
    if name == "linear":
        return LinearDecay(lr, lr / 10.0, steps)
    if name == "step":
        return StepDecay(lr, max(1, math.ceil(steps / 3)), 0.1)
    if name == "cosine":
        return Cosine(lr, steps)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
