"""One sweep over every op: value, gradient and second derivatives.

Against PyTorch float64 (the reference) and central finite differences.
"""

from __future__ import annotations

import math

import pytest
import torch
from optable import OPS, OpCase

from chainrule import Value, grad, gradcheck, numerical_grad, value_and_grad

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
    from chainrule.engine import _RULES

    seen: set[str] = set()
    for op in OPS:
        xs = [Value(v) for v in op.samples[0]]
        stack = [op.ours(*xs)]
        while stack:
            node = stack.pop()
            seen.add(node._op)
            stack.extend(node._prev)
    assert set(_RULES) - {"id"} <= seen  # "id" is internal to grad(); tested there


def test_third_derivative_of_tanh() -> None:
    t = math.tanh(0.5)
    expected = (1 - t * t) * (6 * t * t - 2)
    assert grad(grad(grad(Value.tanh)))(0.5) == pytest.approx(expected, rel=1e-12)
