"""grad, value_and_grad, numerical_grad and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch

from chainrule import GradcheckError, Value, grad, gradcheck, no_grad, numerical_grad
from chainrule import value_and_grad as vg


def poly(x):
    return 3 * x**2 - 4 * x + 5


def test_lecture_polynomial_derivatives() -> None:
    assert grad(poly)(3.0) == 14.0
    assert grad(grad(poly))(3.0) == 6.0
    assert grad(grad(grad(poly)))(3.0) == 0.0
    assert numerical_grad(poly, 3.0)[0] == pytest.approx(14.0, abs=1e-6)


def test_plain_numbers_in_plain_floats_out() -> None:
    value, slope = vg(poly)(3)
    assert (value, slope) == (20.0, 14.0)
    assert type(value) is float and type(slope) is float


def test_values_in_values_out_with_a_graph() -> None:
    x = Value(3.0)
    slope = grad(poly)(x)
    assert isinstance(slope, Value) and slope.data == 14.0
    slope.backward()  # the derivative is itself differentiable
    assert x.grad == 6.0


def test_argnums_tuple_and_negative() -> None:
    def f(x, y, z):
        return x * y.exp() + z

    gx, gy = grad(f, argnums=(0, 1))(2.0, 0.5, 1.0)
    assert gx == pytest.approx(math.exp(0.5)) and gy == pytest.approx(2 * math.exp(0.5))
    assert grad(f, argnums=-1)(2.0, 0.5, 1.0) == 1.0


def test_argnums_errors() -> None:
    with pytest.raises(ValueError, match="argnums 3 is out of range"):
        grad(poly, argnums=3)(1.0)
    with pytest.raises(TypeError, match="argnums must be"):
        grad(poly, argnums="0")(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"argument 0 must be a real number or a Value.*str"):
        grad(poly)("x")


def test_function_returning_a_constant_has_zero_gradient() -> None:
    assert grad(lambda x: 4.0)(1.0) == 0.0
    with pytest.raises(TypeError, match="must return a Value or a number, got list"):
        grad(lambda x: [x])(1.0)


def test_no_perturbation_confusion() -> None:
    """d/dx [x * d/dy (x + y)] = 1: the inner derivative must not see the outer x."""
    assert grad(lambda x: x * grad(lambda y: x + y)(x))(1.0) == 1.0


def test_mixed_partials_match_torch() -> None:
    def f(x, y):
        return (x * y).tanh() * x.exp() / (1 + y * y)

    for i in range(2):
        for j in range(2):

            def first(x, y, i=i):
                return grad(f, argnums=i)(x, y)

            ours = grad(first, argnums=j)(0.3, -0.7)
            tx = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
            ty = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
            out = torch.tanh(tx * ty) * torch.exp(tx) / (1 + ty * ty)
            g = torch.autograd.grad(out, (tx, ty), create_graph=True)[i]
            expected = torch.autograd.grad(g, (tx, ty))[j].item()
            assert ours == pytest.approx(expected, rel=1e-12)


def test_grad_works_inside_no_grad() -> None:
    with no_grad():
        assert grad(poly)(3.0) == 14.0


def test_grad_leaves_grad_attributes_alone() -> None:
    x = Value(2.0)
    grad(poly)(x)
    assert x.grad == 0.0


def test_numerical_grad_per_input_and_values_accepted() -> None:
    slopes = numerical_grad(lambda x, y: x * y.tanh(), Value(2.0), 0.5)
    assert slopes == pytest.approx([math.tanh(0.5), 2 * (1 - math.tanh(0.5) ** 2)], rel=1e-8)
    with pytest.raises(ValueError, match="step h must be positive"):
        numerical_grad(poly, 1.0, h=0.0)


def test_gradcheck_passes_and_reports_mismatches() -> None:
    assert gradcheck(lambda x, y: (x / y).sigmoid() * y.log(), 0.3, 2.0)

    def wrong(x):  # a derivative the engine gets "wrong": relu's kink sampled at the kink
        return x.relu()

    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong, 0.0)
    message = str(info.value)
    assert "input 0 at 0.0: analytic 0.0, numerical 0.5" in message
    assert "MISMATCH" in message
    with pytest.raises(ValueError, match="at least one input"):
        gradcheck(poly)
