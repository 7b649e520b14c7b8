"""Every operation of the engine, once, with its PyTorch twin and inputs in its domain.

The OpInfo-style table that ``test_ops.py`` sweeps: adding an op to the engine means
adding one row here, and every check runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from chainrule import dot, logsumexp, sum_values


@dataclass(frozen=True)
class OpCase:
    name: str
    ours: Callable[..., Any]  # takes and returns chainrule Values
    torch: Callable[..., Any]  # the same function on float64 tensors
    samples: tuple[tuple[float, ...], ...]  # points in the domain, edges and kinks included
    #: Samples where central finite differences mean nothing (a kink, or a neighbour
    #: outside the domain): the gradient is checked against PyTorch only.
    kinks: tuple[tuple[float, ...], ...] = ()
    #: Samples where PyTorch's second derivatives include NaN (undefined there): only
    #: its finite entries are compared, and the NaN is checked to be there.
    nan_hessian: tuple[tuple[float, ...], ...] = ()

    @property
    def arity(self) -> int:
        return len(self.samples[0])


OPS: tuple[OpCase, ...] = (
    OpCase("add", lambda a, b: a + b, lambda a, b: a + b, ((2.0, -3.0), (0.5, 0.25))),
    OpCase("radd", lambda a: 2.5 + a, lambda a: 2.5 + a, ((-1.5,), (3.0,))),
    OpCase("sub", lambda a, b: a - b, lambda a, b: a - b, ((2.0, -3.0), (-0.5, 4.0))),
    OpCase("rsub", lambda a: 2.5 - a, lambda a: 2.5 - a, ((-1.5,), (3.0,))),
    OpCase("mul", lambda a, b: a * b, lambda a, b: a * b, ((2.0, -3.0), (0.7, 0.7), (0.0, 0.0))),
    OpCase("rmul", lambda a: -1.5 * a, lambda a: -1.5 * a, ((2.0,),)),
    OpCase("square_by_reuse", lambda a: a * a, lambda a: a * a, ((-1.3,), (2.0,))),
    OpCase("div", lambda a, b: a / b, lambda a, b: a / b, ((2.0, -3.0), (-0.5, 0.8), (0.0, 2.0))),
    OpCase("rdiv", lambda a: 3.0 / a, lambda a: 3.0 / a, ((-1.5,), (0.4,))),
    OpCase("neg", lambda a: -a, lambda a: -a, ((2.0,), (-0.1,))),
    OpCase("pow_int", lambda a: a**3, lambda a: a**3, ((-1.2,), (0.9,), (0.0,))),
    OpCase("pow_square", lambda a: a**2, lambda a: a**2, ((-1.5,), (0.0,))),
    OpCase("pow_one", lambda a: a**1, lambda a: a**1, ((2.0,), (0.0,))),
    OpCase("pow_negative", lambda a: a**-2, lambda a: a**-2, ((-1.2,), (0.9,))),
    OpCase("pow_half", lambda a: a**0.5, lambda a: a**0.5, ((2.0,), (0.3,))),
    OpCase("pow_zero", lambda a: a**0, lambda a: a**0, ((2.0,), (-0.3,), (0.0,))),
    OpCase(
        "pow_value",  # at x = 0 a negative neighbour has no value with a Value exponent
        lambda a, b: a**b,
        lambda a, b: a**b,
        ((1.5, 2.5), (0.6, -1.3), (0.0, 0.0), (0.0, 1.0), (0.0, 2.0)),
        kinks=((0.0, 0.0), (0.0, 1.0), (0.0, 2.0)),
        nan_hessian=((0.0, 0.0), (0.0, 1.0), (0.0, 2.0)),
    ),
    OpCase("rpow", lambda a: 2.0**a, lambda a: 2.0**a, ((1.5,), (-0.7,), (0.0,))),
    OpCase(
        "rpow_zero_base",  # 0 ** y: 0 for y > 0, 1 at y = 0; d/dy is 0 (PyTorch)
        lambda a: 0.0**a,
        lambda a: 0.0**a,
        ((0.5,), (2.0,), (0.0,)),
        kinks=((0.0,),),  # 0 ** -h is a division by zero
        nan_hessian=((0.5,), (2.0,), (0.0,)),
    ),
    OpCase("exp", lambda a: a.exp(), torch.exp, ((0.5,), (-2.0,), (3.0,))),
    OpCase("log", lambda a: a.log(), torch.log, ((0.5,), (3.0,))),
    OpCase("tanh", lambda a: a.tanh(), torch.tanh, ((0.5,), (-2.0,), (0.8814,), (0.0,))),
    OpCase(
        "relu",  # its derivative at 0 is taken as 0, as in PyTorch
        lambda a: a.relu(),
        torch.relu,
        ((0.5,), (-2.0,), (0.0,)),
        kinks=((0.0,),),
    ),
    OpCase("abs", lambda a: abs(a), torch.abs, ((1.5,), (-0.7,))),
    OpCase("sigmoid", lambda a: a.sigmoid(), torch.sigmoid, ((0.5,), (-3.0,), (40.0,), (0.0,))),
    OpCase(
        "softplus",  # far out on both sides: no overflow, and no precision lost at -30
        lambda a: a.softplus(),
        torch.nn.functional.softplus,
        ((0.5,), (-2.0,), (0.0,), (30.0,), (-30.0,), (800.0,), (-800.0,)),
    ),
    OpCase(
        "dot",
        lambda w0, w1, x0, x1, b: dot([w0, w1], [x0, x1], b),
        lambda w0, w1, x0, x1, b: w0 * x0 + w1 * x1 + b,
        ((0.5, -1.5, 2.0, 3.0, 0.1), (1.0, 1.0, -1.0, 0.25, -2.0)),
    ),
    OpCase(
        "dot_reused",  # the same Value as weight and input: Σ p² (the L2 penalty)
        lambda p, q: dot([p, q], [p, q]),
        lambda p, q: p * p + q * q,
        ((0.5, -1.5),),
    ),
    OpCase(
        "sum",
        lambda a, b, c: sum_values([a, b, c, a]),
        lambda a, b, c: a + b + c + a,
        ((0.5, -1.5, 2.0),),
    ),
    OpCase(
        "logsumexp",  # the last sample is spread out: exp(800) alone would overflow
        lambda a, b, c: logsumexp([a, b, c]),
        lambda a, b, c: torch.logsumexp(torch.stack([a, b, c]), 0),
        ((0.5, -1.5, 2.0), (0.0, 0.0, 0.0), (800.0, -800.0, 799.0)),
    ),
    OpCase(
        "logsumexp_reused",
        lambda a, b: logsumexp([a, b, a]),
        lambda a, b: torch.logsumexp(torch.stack([a, b, a]), 0),
        ((0.3, -1.2), (-40.0, 25.0)),
    ),
    OpCase(
        "composite_neuron",
        lambda x, w, b: (x * w + b).tanh(),
        lambda x, w, b: torch.tanh(x * w + b),
        ((2.0, -3.0, 6.8813735870195432),),
    ),
)
