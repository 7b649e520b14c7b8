"""Optimisers and learning-rate schedules, with PyTorch's names.

An optimiser holds its parameters (each once); ``step()`` moves each one against its
gradient, all of them or, if any would stop being finite, none; ``zero_grad()``
resets the gradients. A schedule maps a step number to a
learning rate; set ``optimizer.lr = schedule(k)`` before each step. This module needs
only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from chainrule.core import Value
from chainrule.errors import NumericOverflowError

_isfinite = math.isfinite
_sqrt = math.sqrt

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


def _betas(betas: Any) -> tuple[float, float]:
    ok = isinstance(betas, (tuple, list)) and len(betas) == 2
    if not ok or not all(
        not isinstance(b, bool) and isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas
    ):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r:.60}")
    return (float(betas[0]), float(betas[1]))


def _positive(name: str, x: float, allow_zero: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {x!r}")
    return float(x)


class Optimizer:
    """Base class: the parameters, the learning rate ``lr``, ``zero_grad()`` and ``step()``.

    ``params`` is fixed at construction, as a tuple; each Value may appear only once
    (listed twice, it would be updated twice per step).
    """

    weight_decay = 0.0  # added to each gradient as weight_decay * p (L2); subclasses set it

    def __init__(self, params: Iterable[Value], lr: float) -> None:
        who = type(self).__name__
        self.params: tuple[Value, ...] = tuple(params)
        if not self.params:
            raise ValueError(f"{who}: no parameters to optimise")
        if not all(isinstance(p, Value) for p in self.params):
            raise TypeError(f"{who}: parameters must be Values")
        first: dict[int, int] = {}
        for i, p in enumerate(self.params):
            j = first.setdefault(id(p), i)
            if j != i:
                raise ValueError(
                    f"{who}: parameter {i} is parameter {j} again (the same Value listed "
                    "twice), so it would be updated twice per step; pass each parameter "
                    "once (Module.parameters() lists each once)"
                )
        self.lr = _positive("lr", lr)
        self.steps = 0

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.grad = 0.0

    #: The names of the per-parameter running state (lists of floats) and of the
    #: hyperparameters that :meth:`state_dict` saves; subclasses set them.
    _buffers: tuple[str, ...] = ()
    _hyperparameters: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`step` uses besides the parameters and their gradients.

        ``{"type": "Adam", "lr": ..., "steps": t, <hyperparameters>, <running state>}``:
        plain numbers and lists of floats (copies), ready for ``json.dumps``, where
        every float round-trips exactly. :meth:`load_state_dict` puts it back, so an
        optimiser rebuilt over the same parameters continues step for step as if it
        had never stopped.
        """
        state: dict[str, Any] = {"type": type(self).__name__, "lr": self.lr, "steps": self.steps}
        for name in self._hyperparameters:
            value = getattr(self, name)
            state[name] = list(value) if isinstance(value, tuple) else value
        for name in self._buffers:
            state[name] = list(getattr(self, name))
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned: all of it, or (on a bad entry) none.

        Raises ``ValueError`` naming the first entry that is missing, of the wrong type
        or length (one number per parameter), or not a finite number.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise ValueError(f"{who}: expected a mapping, got {type(state).__name__}")
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"{who}: the state is of {state.get('type')!r:.40}, not {type(self).__name__}"
            )
        expected = {"type", "lr", "steps", *self._hyperparameters, *self._buffers}
        unknown = sorted(set(state) - expected)
        if unknown:
            raise ValueError(f"{who}: unknown entries {', '.join(map(str, unknown[:5]))}")
        missing = sorted(expected - set(state))
        if missing:
            raise ValueError(f"{who}: missing entries {', '.join(missing)}")
        try:
            lr = _positive("lr", state["lr"])
            hyper = self._check_hyperparameters(state)
        except ValueError as exc:
            raise ValueError(f"{who}: {exc}") from None
        steps = state["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"{who}: steps must be a whole number >= 0, got {steps!r:.40}")
        buffers = {name: self._check_buffer(who, name, state[name]) for name in self._buffers}
        self.lr, self.steps = lr, steps
        for name, value in {**hyper, **buffers}.items():
            setattr(self, name, value)

    def _check_hyperparameters(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The hyperparameters of ``state``, checked as the constructor checks them."""
        return {}

    def _check_buffer(self, who: str, name: str, values: object) -> list[float]:
        n = len(self.params)
        if not isinstance(values, list) or len(values) != n:
            raise ValueError(f"{who}: {name} must be a list of {n} numbers, one per parameter")
        out = []
        for i, x in enumerate(values):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not _isfinite(x):
                raise ValueError(f"{who}: {name}[{i}] must be a finite number, got {x!r:.40}")
            out.append(float(x))
        return out

    def step(self) -> None:
        """Update every parameter once from its current gradient: all of them, or none.

        Every new value (and the optimiser's new state) is computed first and checked to
        be finite; only then is anything assigned. A step that would make any value
        ``inf`` or ``nan`` raises :class:`~chainrule.errors.NumericOverflowError` naming
        the parameter, and leaves every parameter, the state and ``steps`` as they were.
        """
        params = self.params
        wd = self.weight_decay
        grads = [p.grad + wd * p.data for p in params] if wd else [p.grad for p in params]
        t = self.steps + 1
        new, state = self._propose(grads, t)
        for values in (new, *state):
            # A finite sum means every term is finite (nan and inf propagate); only when
            # it is not is each value looked at, to tell divergence from a large sum.
            if not _isfinite(sum(values)) and not all(map(_isfinite, values)):
                raise self._diverged(values is new, values, grads, t)
        for p, x in zip(params, new, strict=True):
            p.data = x
        self._commit(state)
        self.steps = t

    def _propose(
        self, grads: list[float], t: int
    ) -> tuple[list[float], tuple[list[float], ...]]:  # pragma: no cover - abstract
        """The new parameter values and the new state for step ``t`` from ``grads`` (one per
        parameter, weight decay included), changing nothing."""
        raise NotImplementedError

    def _commit(self, state: tuple[list[float], ...]) -> None:  # pragma: no cover - abstract
        """Keep the state that :meth:`_propose` computed (the step is going ahead)."""
        raise NotImplementedError

    def _diverged(
        self, params: bool, values: list[float], grads: list[float], t: int
    ) -> NumericOverflowError:
        i = next(k for k, x in enumerate(values) if not _isfinite(x))
        what = (
            f"parameter {i} would become {values[i]}"
            if params
            else f"the running state of parameter {i} would become {values[i]}"
        )
        return NumericOverflowError(
            f"{type(self).__name__}.step: {what} at step {t} (its value {self.params[i].data!r}, "
            f"its gradient {grads[i]!r}); nothing was updated (training diverged); "
            f"lower the learning rate (lr={self.lr})"
        )


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * v`` with ``v = momentum * v + grad``.

    ``weight_decay`` adds ``weight_decay * p`` to each gradient (L2 regularisation).
    """

    _buffers = ("velocity",)
    _hyperparameters = ("momentum", "weight_decay")

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

    def _check_hyperparameters(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "momentum": _positive("momentum", state["momentum"], allow_zero=True),
            "weight_decay": _positive("weight_decay", state["weight_decay"], allow_zero=True),
        }

    def _propose(self, grads: list[float], t: int) -> tuple[list[float], tuple[list[float], ...]]:
        lr, params = self.lr, self.params
        if not self.momentum:
            return [p.data - lr * g for p, g in zip(params, grads, strict=True)], ()
        mu = self.momentum
        velocity = [mu * v + g for v, g in zip(self.velocity, grads, strict=True)]
        return [p.data - lr * v for p, v in zip(params, velocity, strict=True)], (velocity,)

    def _commit(self, state: tuple[list[float], ...]) -> None:
        if state:
            (self.velocity,) = state


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): steps scaled by running averages of grad and grad².

    ``m = β1 m + (1-β1) g``, ``v = β2 v + (1-β2) g²``, and the step is
    ``lr * m̂ / (sqrt(v̂) + eps)`` with the bias-corrected ``m̂ = m / (1-β1^t)``,
    ``v̂ = v / (1-β2^t)``.

    :meth:`step` updates the Values from their ``grad``; :meth:`step_arrays` is the same
    update on NumPy arrays (a compiled training loop's), with the same formula and the
    same state: ``m`` and ``v`` are kept as lists of floats or, after an array step, as
    arrays, and read as lists (by :meth:`state_dict` too) whichever they are.
    """

    _buffers = ("m", "v")
    _hyperparameters = ("betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Value],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)
        self._m: Any = [0.0] * len(self.params)  # a list of floats, or a NumPy array
        self._v: Any = [0.0] * len(self.params)

    @property
    def m(self) -> list[float]:
        """The running average of the gradients, one per parameter."""
        if not isinstance(self._m, list):
            self._m = self._m.tolist()
        return self._m

    @m.setter
    def m(self, values: list[float]) -> None:
        self._m = values

    @property
    def v(self) -> list[float]:
        """The running average of the squared gradients, one per parameter."""
        if not isinstance(self._v, list):
            self._v = self._v.tolist()
        return self._v

    @v.setter
    def v(self, values: list[float]) -> None:
        self._v = values

    def _check_hyperparameters(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "betas": _betas(state["betas"]),
            "eps": _positive("eps", state["eps"]),
            "weight_decay": _positive("weight_decay", state["weight_decay"], allow_zero=True),
        }

    def _update(self, t: int, sqrt: Any) -> Any:
        """Adam's update at step ``t``: ``(p, g, m, v) -> (new p, new m, new v)``, on floats
        or elementwise on arrays alike (``sqrt`` is ``math.sqrt`` or ``numpy.sqrt``)."""
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1, 1.0 - b2
        # lr * m̂ / (sqrt(v̂) + eps), with the bias corrections taken out of the loop
        step_size = self.lr / (1.0 - b1**t)
        root_c2 = math.sqrt(1.0 - b2**t)
        eps = self.eps

        def update(p: Any, g: Any, m: Any, v: Any) -> tuple[Any, Any, Any]:
            m = b1 * m + c1 * g
            v = b2 * v + c2 * g * g
            return p - step_size * m / (sqrt(v) / root_c2 + eps), m, v

        return update

    def _propose(self, grads: list[float], t: int) -> tuple[list[float], tuple[list[float], ...]]:
        data = [p.data for p in self.params]
        steps = map(self._update(t, _sqrt), data, grads, self.m, self.v)
        new, m, v = map(list, zip(*steps, strict=True))
        return new, (v, m)  # v first: a g² that overflows shows there, not in the step

    def _commit(self, state: tuple[list[float], ...]) -> None:
        self.v, self.m = state

    def step_arrays(self, params: Any, grads: Any) -> Any:
        """:meth:`step` on NumPy arrays: ``params`` and ``grads`` hold one number per
        parameter, in ``self.params`` order. Returns the new parameter values as an
        array and keeps ``m``, ``v`` and ``steps`` as :meth:`step` does, all or nothing
        (a step that would make a number non-finite raises and changes nothing).

        The Values themselves are not touched: a training loop that keeps its
        parameters in an array writes them back when it needs the model.
        """
        import numpy as np  # only ever given arrays, which NumPy made

        p = np.asarray(params, dtype=np.float64)
        g = np.asarray(grads, dtype=np.float64)
        n = len(self.params)
        if p.shape != (n,) or g.shape != (n,):
            raise ValueError(
                f"Adam.step_arrays: params and grads need {n} numbers each, one per "
                f"parameter, got arrays of shapes {p.shape} and {g.shape}"
            )
        if self.weight_decay:
            g = g + self.weight_decay * p
        t = self.steps + 1
        m = np.asarray(self._m, dtype=np.float64)
        v = np.asarray(self._v, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, as step() does
            new, m, v = self._update(t, np.sqrt)(p, g, m, v)
        for values in (new, v, m):
            if not np.isfinite(values).all():
                raise self._diverged(values is new, values.tolist(), g.tolist(), t)
        self._m, self._v, self.steps = m, v, t
        return new


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
