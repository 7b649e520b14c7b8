"""One sweep over every op: value, gradient and second derivatives.

Against PyTorch float64 (the reference) and central finite differences.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from optable import OPS, OpCase

from chainrule import (
    DivisionByZeroError,
    DomainError,
    NumericOverflowError,
    Value,
    clamp,
    grad,
    gradcheck,
    maximum,
    minimum,
    numerical_grad,
    value_and_grad,
)

CASES = [
    pytest.param(op, sample, id=f"{op.name}-{i}")
    for op in OPS
    for i, sample in enumerate(op.samples)
]


def torch_first_and_second(op: OpCase, sample: tuple[float, ...]):
    """Value, gradient and Hessian of the op at ``sample``, from PyTorch autograd."""
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in sample]
    out = op.torch(*xs)
    firsts = torch.autograd.grad(out, xs, create_graph=True, allow_unused=True)
    firsts = [g if g is not None else torch.zeros((), dtype=torch.float64) for g in firsts]
    hessian = []
    for g in firsts:
        if g.requires_grad:
            row = torch.autograd.grad(g, xs, retain_graph=True, allow_unused=True)
            hessian.append([0.0 if r is None else r.item() for r in row])
        else:  # a constant first derivative: every second derivative is zero
            hessian.append([0.0] * len(xs))
    return out.item(), [g.item() for g in firsts], hessian


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_value_and_backward_match_torch(op: OpCase, sample: tuple[float, ...]) -> None:
    expected_value, expected_grads, _ = torch_first_and_second(op, sample)
    xs = [Value(v) for v in sample]
    out = op.ours(*xs)
    out.backward()
    assert out.data == pytest.approx(expected_value, rel=1e-12, abs=1e-15)
    for x, g in zip(xs, expected_grads, strict=True):
        assert x.grad == pytest.approx(g, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_grad_transform_matches_backward(op: OpCase, sample: tuple[float, ...]) -> None:
    argnums = tuple(range(op.arity))
    value, grads = value_and_grad(op.ours, argnums)(*sample)
    xs = [Value(v) for v in sample]
    out = op.ours(*xs)
    out.backward()
    assert value == out.data
    assert list(grads) == pytest.approx([x.grad for x in xs], rel=1e-14, abs=1e-15)


#: Finite differences are meaningless at an op's listed kinks; PyTorch checks those.
SMOOTH_CASES = [
    pytest.param(op, sample, id=f"{op.name}-{i}")
    for op in OPS
    for i, sample in enumerate(op.samples)
    if sample not in op.kinks
]


def test_every_kink_and_nan_hessian_point_is_a_sample() -> None:
    for op in OPS:
        assert set(op.kinks) <= set(op.samples), op.name
        assert set(op.nan_hessian) <= set(op.samples), op.name


@pytest.mark.parametrize(("op", "sample"), SMOOTH_CASES)
def test_gradient_matches_finite_differences(op: OpCase, sample: tuple[float, ...]) -> None:
    assert gradcheck(op.ours, *sample)
    xs = [Value(v) for v in sample]
    op.ours(*xs).backward()
    for x, n in zip(xs, numerical_grad(op.ours, *sample), strict=True):
        assert math.isclose(x.grad, n, rel_tol=1e-6, abs_tol=1e-7)


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_second_derivatives_match_torch(op: OpCase, sample: tuple[float, ...]) -> None:
    _, _, hessian = torch_first_and_second(op, sample)
    undefined = [(i, j) for i, row in enumerate(hessian) for j, h in enumerate(row) if h != h]
    # NaN in PyTorch's Hessian exactly at the points listed for it (and compared elsewhere)
    assert bool(undefined) == (sample in op.nan_hessian)
    for i in range(op.arity):
        for j in range(op.arity):
            if (i, j) in undefined:
                continue

            def first(*xs: Value, i: int = i) -> Value:
                return grad(op.ours, argnums=i)(*xs)

            ours = grad(first, argnums=j)(*sample)
            assert ours == pytest.approx(hessian[i][j], rel=1e-10, abs=1e-12), (i, j)


def test_sweep_covers_every_engine_op() -> None:
    """Every rule in the engine's table is exercised by some row of the sweep."""
    from chainrule.core import RULES

    seen: set[str] = set()
    for op in OPS:
        xs = [Value(v) for v in op.samples[0]]
        stack = [op.ours(*xs)]
        while stack:
            node = stack.pop()
            seen.add(node._op)
            stack.extend(node._prev)
    assert set(RULES) - {"id"} <= seen  # "id" is internal to grad(); tested there


def test_third_derivative_of_tanh() -> None:
    t = math.tanh(0.5)
    expected = (1 - t * t) * (6 * t * t - 2)
    assert grad(grad(grad(Value.tanh)))(0.5) == pytest.approx(expected, rel=1e-12)


# -- domain limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: Value(2.0).asin(), DomainError, "asin: operand must be in [-1, 1], got asin(2.0)"),
        (
            lambda: Value(-1.5).acos(),
            DomainError,
            "acos: operand must be in [-1, 1], got acos(-1.5)",
        ),
        (
            lambda: Value(-1.0).sqrt(),
            DomainError,
            "sqrt: operand must not be negative, got sqrt(-1.0)",
        ),
        (
            lambda: Value(0.5).acosh(),
            DomainError,
            "acosh: operand must be at least 1, got acosh(0.5)",
        ),
        (
            lambda: Value(1.0).atanh(),
            DomainError,
            "atanh: operand must be in (-1, 1), got atanh(1.0)",
        ),
        (lambda: Value(0.0).log2(), DomainError, "log2: operand must be positive, got log2(0.0)"),
        (
            lambda: Value(-3.0).log10(),
            DomainError,
            "log10: operand must be positive, got log10(-3.0)",
        ),
        (
            lambda: Value(-1.0).log1p(),
            DomainError,
            "log1p: operand must be greater than -1, got log1p(-1.0)",
        ),
        (
            lambda: Value(0.0).reciprocal(),
            DivisionByZeroError,
            "reciprocal: division by zero: 1 / 0.0",
        ),
        (lambda: Value(3.0) % 0.0, DivisionByZeroError, "%: division by zero: 3.0 % 0.0"),
        (lambda: 3.0 % Value(0.0), DivisionByZeroError, "%: division by zero: 3.0 % 0.0"),
        (
            lambda: Value(711.0).sinh(),
            NumericOverflowError,
            "sinh: overflow: sinh(711.0) is too large",
        ),
        (
            lambda: Value(-711.0).cosh(),
            NumericOverflowError,
            "cosh: overflow: cosh(-711.0) is too large",
        ),
        (
            lambda: Value(710.0).expm1(),
            NumericOverflowError,
            "expm1: overflow: expm1(710.0) is too",
        ),
        (lambda: Value(1024.0).exp2(), NumericOverflowError, "exp2: overflow: exp2(1024.0) is too"),
        (lambda: Value(1e200).square(), NumericOverflowError, "square: overflow: square(1e+200)"),
    ],
)
def test_domain_errors_name_the_op_and_the_operand(call, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize(
    ("name", "x"),
    [("asin", 1.0), ("asin", -1.0), ("acos", 1.0), ("acos", -1.0), ("acosh", 1.0), ("sqrt", 0.0)],
)
def test_at_a_domain_limit_the_value_is_torchs_and_the_infinite_slope_an_error(
    name: str, x: float
) -> None:
    """The value at the limit is defined (and PyTorch's); the slope there is infinite
    (PyTorch: ±inf), which ``backward()`` reports rather than returning."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    expected = getattr(torch, name)(t)
    expected.backward()
    assert math.isinf(t.grad.item())
    v = Value(x)
    out = getattr(v, name)()
    assert out.data == expected.item()
    with pytest.raises(DomainError, match=f"derivative of {name} at {name}\\({x}\\) is infinite"):
        out.backward()


def test_clamp_takes_number_bounds() -> None:
    x = Value(0.5)
    with pytest.raises(ValueError, match="clamp: give min, max or both"):
        clamp(x)
    with pytest.raises(TypeError, match=r"clamp: max must be a number, got a Value; .* minimum"):
        clamp(x, 0.0, Value(1.0))
    with pytest.raises(DomainError, match="clamp"):
        clamp(x, math.nan)
    assert [n._op for n in (clamp(x, 0.0, 1.0), clamp(x, 0.0)._prev[0])] == ["clamp_max", ""]
    both = clamp(x, -1, 2)
    assert (both._op, both._arg, both._prev[0]._op, both._prev[0]._arg) == (
        "clamp_max",
        2.0,
        "clamp_min",
        -1.0,
    )


def test_maximum_and_minimum_take_numbers_and_refuse_other_things() -> None:
    assert maximum(2, Value(1.0)).data == 2.0
    assert minimum(Value(1.0), 0.5).data == 0.5
    with pytest.raises(TypeError, match="maximum: expected Values or real numbers, got str"):
        maximum(Value(1.0), "2")


def test_second_derivatives_of_gelu_and_silu_match_torch_on_a_grid() -> None:
    """grad(grad(f)) over a grid, beyond the sweep's samples."""
    for name, fn in (("gelu", torch.nn.functional.gelu), ("silu", torch.nn.functional.silu)):
        for x in [i / 4 for i in range(-24, 25)]:
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(fn(t), t, create_graph=True)
            (h,) = torch.autograd.grad(g, t)
            ours = grad(grad(getattr(Value, name)))(x)
            assert ours == pytest.approx(h.item(), rel=1e-10, abs=1e-13), (name, x)
