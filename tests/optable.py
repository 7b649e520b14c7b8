"""Every operation of the engine, once, with its PyTorch twin and inputs in its domain.

The OpInfo-style table that ``test_ops.py`` sweeps: adding an op to the engine means
adding one row here, and every check runs on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from chainrule import Value, clamp, dot, grad, logsumexp, maximum, minimum, sum_values


def torch_slope(f: Callable[..., Any], argnum: int = 0) -> Callable[..., Any]:
    """``∂f/∂x[argnum]`` as a function, by PyTorch's own derivative of ``f``; ``0 * x``
    added so that it is a function of every input even where that derivative is flat."""

    def slope(*xs: Any) -> Any:
        (d,) = torch.autograd.grad(f(*xs), xs[argnum], create_graph=True)
        return d + 0.0 * sum(xs)

    return slope


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
    OpCase(
        "abs",  # its derivative at 0 is taken as 0, as in PyTorch
        lambda a: abs(a),
        torch.abs,
        ((1.5,), (-0.7,), (0.0,)),
        kinks=((0.0,),),
    ),
    OpCase("sigmoid", lambda a: a.sigmoid(), torch.sigmoid, ((0.5,), (-3.0,), (40.0,), (0.0,))),
    OpCase(
        "softplus",  # far out on both sides: no overflow, and no precision lost at -30
        lambda a: a.softplus(),
        torch.nn.functional.softplus,
        ((0.5,), (-2.0,), (0.0,), (30.0,), (-30.0,), (800.0,), (-800.0,)),
    ),
    # Trigonometric and hyperbolic functions. Samples stay a few percent inside the
    # domain limits (the compile sweep moves them by up to 5%); the limits themselves,
    # where a derivative is infinite, are tested in test_ops.py.
    OpCase("sin", lambda a: a.sin(), torch.sin, ((0.5,), (-2.0,), (0.0,), (math.pi / 2,))),
    OpCase("cos", lambda a: a.cos(), torch.cos, ((0.5,), (-2.0,), (0.0,), (math.pi,))),
    OpCase("tan", lambda a: a.tan(), torch.tan, ((0.5,), (-1.2,), (0.0,), (1.5,))),
    OpCase("asin", lambda a: a.asin(), torch.asin, ((0.5,), (-0.9,), (0.0,), (0.9,))),
    OpCase("acos", lambda a: a.acos(), torch.acos, ((0.5,), (-0.9,), (0.0,), (0.9,))),
    OpCase("atan", lambda a: a.atan(), torch.atan, ((0.5,), (-3.0,), (0.0,), (1e8,))),
    OpCase("sinh", lambda a: a.sinh(), torch.sinh, ((0.5,), (-3.0,), (0.0,), (650.0,))),
    OpCase("cosh", lambda a: a.cosh(), torch.cosh, ((0.5,), (-3.0,), (0.0,), (-650.0,))),
    OpCase("asinh", lambda a: a.asinh(), torch.asinh, ((0.5,), (-3.0,), (0.0,), (1e6,))),
    OpCase("acosh", lambda a: a.acosh(), torch.acosh, ((1.1,), (3.0,), (1e6,))),
    OpCase("atanh", lambda a: a.atanh(), torch.atanh, ((0.5,), (-0.9,), (0.0,), (0.9,))),
    # Roots, logarithms and exponentials
    OpCase(  # at 1e-6, x - h is the domain's edge: PyTorch checks the slope there
        "sqrt",
        lambda a: a.sqrt(),
        torch.sqrt,
        ((0.5,), (4.0,), (1e4,), (1e-6,)),
        kinks=((1e-6,),),
    ),
    OpCase(
        "log2", lambda a: a.log2(), torch.log2, ((0.5,), (8.0,), (1.0,), (1e-6,)), kinks=((1e-6,),)
    ),
    OpCase(
        "log10",
        lambda a: a.log10(),
        torch.log10,
        ((0.5,), (100.0,), (1.0,), (1e-6,)),
        kinks=((1e-6,),),
    ),
    OpCase("log1p", lambda a: a.log1p(), torch.log1p, ((0.5,), (-0.9,), (0.0,), (1e-10,))),
    OpCase("expm1", lambda a: a.expm1(), torch.expm1, ((0.5,), (-3.0,), (0.0,), (1e-10,))),
    OpCase("exp2", lambda a: a.exp2(), torch.exp2, ((0.5,), (-3.0,), (0.0,), (10.0,))),
    OpCase("square", lambda a: a.square(), torch.square, ((1.5,), (-0.7,), (0.0,))),
    OpCase("reciprocal", lambda a: a.reciprocal(), torch.reciprocal, ((2.0,), (-0.3,), (1e-3,))),
    OpCase("erf", lambda a: a.erf(), torch.erf, ((0.5,), (-1.5,), (0.0,), (5.0,))),
    # Activations: far out on both sides as well as at 0
    OpCase(
        "gelu",
        lambda a: a.gelu(),
        torch.nn.functional.gelu,
        ((0.5,), (-2.0,), (0.0,), (6.0,), (-6.0,), (-30.0,)),
    ),
    OpCase(
        "silu",
        lambda a: a.silu(),
        torch.nn.functional.silu,
        ((0.5,), (-2.0,), (0.0,), (40.0,), (-40.0,), (-800.0,)),
    ),
    # x % y: the sign of y (torch.remainder); it jumps where x / y is an integer
    OpCase(
        "remainder",
        lambda a, b: a % b,
        torch.remainder,
        ((5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (-5.5, -2.0), (0.3, 7.0), (4.0, 2.0)),
        kinks=((4.0, 2.0),),
    ),
    OpCase("remainder_number", lambda a: a % 1.5, lambda a: torch.remainder(a, 1.5), ((4.0,),)),
    OpCase(
        "rremainder",
        lambda b: 7.0 % b,
        lambda b: torch.remainder(torch.full_like(b, 7.0), b),
        ((2.5,), (-3.0,)),
    ),
    # maximum, minimum: the gradient split half and half at a tie, as in PyTorch
    OpCase(
        "maximum",
        maximum,
        torch.maximum,
        ((1.0, 2.0), (2.0, -1.0), (0.7, 0.7)),
        kinks=((0.7, 0.7),),
    ),
    OpCase(
        "minimum",
        minimum,
        torch.minimum,
        ((1.0, 2.0), (2.0, -1.0), (0.7, 0.7)),
        kinks=((0.7, 0.7),),
    ),
    OpCase(
        "maximum_number",
        lambda a: maximum(a, 0.5),
        lambda a: torch.clamp(a, min=0.5),
        ((1.5,), (-2.0,)),
    ),
    # clamp: derivative 1 on [min, max], bounds included (PyTorch), 0 outside
    OpCase(
        "clamp",
        lambda a: clamp(a, -1.0, 2.0),
        lambda a: torch.clamp(a, -1.0, 2.0),
        ((0.5,), (-3.0,), (3.0,), (-1.0,), (2.0,)),
        kinks=((-1.0,), (2.0,)),
    ),
    OpCase(
        "clamp_min",
        lambda a: a.clamp(min=0.0),
        lambda a: torch.clamp(a, min=0.0),
        ((0.5,), (-3.0,), (0.0,)),
        kinks=((0.0,),),
    ),
    OpCase(
        "clamp_max",
        lambda a: clamp(a, max=1.0),
        lambda a: torch.clamp(a, max=1.0),
        ((0.5,), (3.0,), (1.0,)),
        kinks=((1.0,),),
    ),
    OpCase(
        "clamp_empty",  # min > max: max everywhere, derivative 0 (PyTorch)
        lambda a: clamp(a, 2.0, 1.0),
        lambda a: torch.clamp(a, 2.0, 1.0),
        ((0.5,), (1.5,), (3.0,)),
    ),
    # Derivatives that jump, as functions: grad() builds them of ``step`` nodes (1 above,
    # 0 below, the tie's value between), so that they are right at every point they are
    # evaluated at again (compiled too); PyTorch's own derivatives are the reference.
    OpCase(
        "relu_slope",
        grad(Value.relu),
        torch_slope(torch.relu),
        ((0.5,), (-2.0,), (0.0,)),
        kinks=((0.0,),),
    ),
    OpCase(
        "abs_slope",
        grad(abs),
        torch_slope(torch.abs),
        ((1.5,), (-0.7,), (0.0,)),
        kinks=((0.0,),),
    ),
    OpCase(
        "maximum_slope",
        grad(maximum),
        torch_slope(torch.maximum),
        ((1.0, 2.0), (2.0, -1.0), (0.7, 0.7)),
        kinks=((0.7, 0.7),),
    ),
    OpCase(
        "minimum_slope",
        grad(minimum, argnums=1),
        torch_slope(torch.minimum, 1),
        ((1.0, 2.0), (2.0, -1.0), (0.7, 0.7)),
        kinks=((0.7, 0.7),),
    ),
    OpCase(
        "clamp_slope",
        grad(lambda a: clamp(a, -1.0, 2.0)),
        torch_slope(lambda a: torch.clamp(a, -1.0, 2.0)),
        ((0.5,), (-3.0,), (3.0,), (-1.0,), (2.0,)),
        kinks=((-1.0,), (2.0,)),
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
