"""The array form of each operation: how a group of nodes computes forward.

Each op's local derivatives are the engine's own rules (:data:`chainrule.core.rules.RULES`),
called with arrays instead of floats; ``ARRAY_RULES`` gives a form of its own where
the scalar rule branches on its input (``**``, ``pow``) or a cheaper one exists (the
engine's ``_step`` works on arrays, but ``x > 0`` is one NumPy call for relu). The
forward of a built-in one-input op named as a NumPy ufunc (``exp``, ``sin``, ``sqrt``,
``square``, ...) is that ufunc, derived from the rule table (:func:`_ufunc_forwards`):
adding such an op to the engine needs nothing here. ``FORWARD`` lists the others. A
test checks every rule of the engine has an array form, and that the compiled values
and gradients equal the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core import custom
from chainrule.core.rules import BUILT_IN_OPS, RULES

__all__ = ["ARRAY_RULES", "FORWARD", "LINEAR", "NARY", "Array", "compilable_ops"]

Array = Any  # numpy.ndarray; kept loose so that the kernels read like the math


#: Ops that are linear combinations of their inputs, with their coefficients.
LINEAR: dict[str, Callable[[int], tuple[float, ...]]] = {
    "+": lambda n: (1.0, 1.0),
    "-": lambda n: (1.0, -1.0),
    "neg": lambda n: (-1.0,),
    "id": lambda n: (1.0,),
    "sum": lambda n: (1.0,) * n,
}


def _sigmoid(x: Array) -> Array:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x: Array) -> Array:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _erf(x: Array) -> Array:
    """``erf`` elementwise: NumPy has none, so ``math.erf`` on each element (exact, slow)."""
    return np.asarray(_ERF(x), dtype=np.float64)


def _erfc(x: Array) -> Array:
    """``erfc = 1 - erf`` elementwise, as ``math.erfc`` on each element."""
    return np.asarray(_ERFC(x), dtype=np.float64)


_ERF = np.frompyfunc(math.erf, 1, 1)
_ERFC = np.frompyfunc(math.erfc, 1, 1)
_SQRT_HALF = math.sqrt(0.5)


def _ufunc_forwards() -> dict[str, Callable[..., Array]]:
    """``np.<name>`` as the forward of each built-in op of one input named as a NumPy
    ufunc of one input (``exp``, ``tanh``, ``asin``, ``log1p``, ``square``, ...)."""
    forwards: dict[str, Callable[..., Array]] = {}
    for name in RULES:
        ufunc = getattr(np, name, None) if name in BUILT_IN_OPS else None
        if isinstance(ufunc, np.ufunc) and ufunc.nin == 1 and ufunc.nout == 1:
            forwards[name] = lambda x, k, f=ufunc: f(x[0])
    return forwards


#: The array form of each elementwise op: forward from the inputs (and ``k`` for
#: ``x ** number``). Their local derivatives come from the engine's ``RULES``, called
#: with arrays, except where ``ARRAY_RULES`` gives a branch-free form. One-input ops
#: named as a NumPy ufunc come from :func:`_ufunc_forwards`; the rest are listed here.
FORWARD: dict[str, Callable[..., Array]] = {
    **_ufunc_forwards(),
    "*": lambda x, k: x[0] * x[1],
    "/": lambda x, k: x[0] / x[1],
    "**": lambda x, k: x[0] ** k,
    "pow": lambda x, k: x[0] ** x[1],
    "rpow": lambda x, c: c ** x[0],
    "relu": lambda x, k: np.maximum(x[0], 0.0),
    "sigmoid": lambda x, k: _sigmoid(x[0]),
    "softplus": lambda x, k: _softplus(x[0]),
    "erf": lambda x, k: _erf(x[0]),
    "gelu": lambda x, k: 0.5 * x[0] * _erfc(-x[0] * _SQRT_HALF),
    "silu": lambda x, k: x[0] * _sigmoid(x[0]),
    "%": lambda x, k: np.remainder(x[0], x[1]),
    "maximum": lambda x, k: np.maximum(x[0], x[1]),
    "minimum": lambda x, k: np.minimum(x[0], x[1]),
    "clamp_min": lambda x, k: np.maximum(x[0], k),
    "clamp_max": lambda x, k: np.minimum(x[0], k),
    "step": lambda x, k: np.where(x[0] > x[1], 1.0, np.where(x[0] < x[1], 0.0, k)),
}

ARRAY_RULES: dict[str, Callable[[Sequence[Array], Array, Any], Sequence[Array]]] = {
    "relu": lambda x, out, k: ((x[0] > 0.0) * 1.0,),
    "abs": lambda x, out, k: (np.sign(x[0]),),
    "**": lambda x, out, k: (k * x[0] ** (k - 1) if k != 0.0 else np.zeros_like(x[0]),),
    "pow": lambda x, out, k: (_pow_slope(x[0], x[1]), _pow_log(x[0], out)),
    "maximum": lambda x, out, k: _share(x[0], x[1]),
    "minimum": lambda x, out, k: _share(x[1], x[0]),
    "clamp_min": lambda x, out, k: ((x[0] >= k) * 1.0,),
    "clamp_max": lambda x, out, k: ((x[0] <= k) * 1.0,),
}


def _share(a: Array, b: Array) -> tuple[Array, Array]:
    """``maximum(a, b)``'s local derivatives: 1 for the larger, 0.5 each at a tie."""
    to_a = (a > b) + 0.5 * (a == b)
    return to_a, 1.0 - to_a


def _pow_slope(x: Array, y: Array) -> Array:
    """``y x^(y-1)``, and 0 where ``x = y = 0`` (where ``0 ** -1`` would be inf)."""
    at_origin = (x == 0.0) & (y == 0.0)
    return np.where(at_origin, 0.0, y * np.where(at_origin, 1.0, x) ** (y - 1.0))


def _pow_log(x: Array, out: Array) -> Array:
    """``x^y log x``, and 0 where ``x = 0``."""
    return np.where(x > 0.0, out * np.log(np.where(x > 0.0, x, 1.0)), 0.0)


#: Ops with a structure of their own (n-ary): handled by dedicated kernels.
NARY = {"dot", "logsumexp"}


def compilable_ops() -> set[str]:
    """Every op name the compiler can replay (the rest are refused)."""
    return set(LINEAR) | set(FORWARD) | NARY


# User-defined ops given a NumPy form (chainrule.custom) join FORWARD and ARRAY_RULES.
custom.attach_array_tables(FORWARD, ARRAY_RULES)
