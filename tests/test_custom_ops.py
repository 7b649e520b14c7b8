"""User-defined operations (``chainrule.custom``): value, gradients of every order
against PyTorch float64, ``gradcheck``, drawing, ``compile`` with and without a NumPy
form, and every bad registration's error.

Registration is global to the process: every op registered here is removed again by
the ``clean_registry`` fixture, so that the engine's rule table is as the other tests
expect it (the op sweep checks that every rule is swept).
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import chainrule
from chainrule import (
    CompileError,
    DomainError,
    GradcheckError,
    NumericOverflowError,
    Value,
    grad,
    gradcheck,
    sum_values,
)
from chainrule.core import RULES
from chainrule.custom import Op, op, register_op, registered_ops, unregister_op
from chainrule.graph import draw_dot

POINTS = [-2.5, -1.0, -0.3, 0.0, 0.4, 1.2, 3.0]


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    before = set(RULES)
    yield
    for name in list(registered_ops()):
        unregister_op(name)
    assert set(RULES) == before


def sine_pair(numpy: bool = False) -> tuple[Op, Op]:
    """``my_sin`` and ``my_cos``, whose derivatives are each other (sin' = cos, cos' = -sin)."""
    my_sin = register_op(
        "my_sin",
        math.sin,
        lambda x, out: my_cos(x),
        numpy_forward=np.sin if numpy else None,
    )
    my_cos = register_op(
        "my_cos",
        math.cos,
        lambda x, out: -my_sin(x),
        numpy_forward=np.cos if numpy else None,
    )
    return my_sin, my_cos


def torch_derivatives(f, x: float, order: int) -> list[float]:
    """``f``, f', ..., the ``order``-th derivative of ``f`` at ``x``, by PyTorch."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = f(t)
    out = [y.item()]
    for _ in range(order):
        (y,) = torch.autograd.grad(y, t, create_graph=True)
        out.append(y.item())
    return out


# -- value and derivatives -------------------------------------------------------------


@pytest.mark.parametrize("x", POINTS)
def test_value_and_derivatives_of_every_order_match_torch(x: float) -> None:
    my_sin, _ = sine_pair()
    expected = torch_derivatives(torch.sin, x, 3)
    y = my_sin(Value(x))
    assert y.data == expected[0]
    assert y._op == "my_sin"
    assert grad(my_sin)(x) == pytest.approx(expected[1], rel=1e-14, abs=1e-15)
    assert grad(grad(my_sin))(x) == pytest.approx(expected[2], rel=1e-14, abs=1e-15)
    assert grad(grad(grad(my_sin)))(x) == pytest.approx(expected[3], rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("x", POINTS)
def test_backward_through_an_expression_matches_torch(x: float) -> None:
    my_sin, my_cos = sine_pair()
    a, b = Value(x), Value(0.7)
    out = my_sin(a * b) * my_cos(a).exp() + my_sin(a) / (2.0 + my_cos(b))
    out.backward()
    ta = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    tout = torch.sin(ta * tb) * torch.cos(ta).exp() + torch.sin(ta) / (2.0 + torch.cos(tb))
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-14)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-13, abs=1e-15)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize(("x", "y"), [(3.0, 4.0), (-1.5, 0.2), (0.3, -2.0)])
def test_a_two_input_op_its_gradient_and_hessian_match_torch(x: float, y: float) -> None:
    @op(derivative=lambda x, y, out: (x / out, y / out))
    def my_hypot(x: float, y: float) -> float:
        return math.hypot(x, y)

    assert my_hypot.arity == 2
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    tout = torch.hypot(tx, ty)
    first = torch.autograd.grad(tout, (tx, ty), create_graph=True)
    hessian = [
        [h.item() for h in torch.autograd.grad(g, (tx, ty), retain_graph=True)] for g in first
    ]
    assert my_hypot(Value(x), y).data == pytest.approx(tout.item(), rel=1e-15)
    assert grad(my_hypot, argnums=(0, 1))(x, y) == pytest.approx(
        [g.item() for g in first], rel=1e-14
    )
    for i in range(2):
        for j in range(2):

            def partial(a: Value, b: Value, i: int = i) -> Value:
                return grad(my_hypot, argnums=i)(a, b)

            ours = grad(partial, argnums=j)(x, y)
            assert ours == pytest.approx(hessian[i][j], rel=1e-12), (i, j)


def test_gradcheck_passes_and_catches_a_wrong_derivative() -> None:
    my_sin, _ = sine_pair()
    for x in POINTS:
        assert gradcheck(my_sin, x)
        assert gradcheck(grad(my_sin), x)  # the second derivative too
    wrong = register_op("wrong_sin", math.sin, lambda x, out: out)  # sin' is not sin
    with pytest.raises(GradcheckError, match="wrong_sin"):
        gradcheck(wrong, 0.5)


def test_a_derivative_written_with_value_methods_and_the_output() -> None:
    """``d/dx e^(-x²) = -2x · out``, and ``out`` is the graph's own node under grad()."""
    bell = register_op("bell", lambda x: math.exp(-x * x), lambda x, out: -2.0 * x * out)
    for x in POINTS:
        t = torch_derivatives(lambda t: torch.exp(-t * t), x, 3)
        assert grad(bell)(x) == pytest.approx(t[1], rel=1e-13, abs=1e-15)
        assert grad(grad(bell))(x) == pytest.approx(t[2], rel=1e-13, abs=1e-15)
        assert grad(grad(grad(bell)))(x) == pytest.approx(t[3], rel=1e-12, abs=1e-14)


def test_numbers_are_lifted_and_no_grad_records_nothing() -> None:
    my_sin, _ = sine_pair()
    y = my_sin(0.5)
    assert isinstance(y, Value) and y.data == math.sin(0.5) and y._op == "my_sin"
    with chainrule.no_grad():
        z = my_sin(Value(0.5))
    assert z._op == "" and z._prev == ()


# -- drawing ---------------------------------------------------------------------------


def test_draw_dot_shows_the_op_by_name() -> None:
    my_sin, my_cos = sine_pair()
    x = Value(0.5, label="x")
    y = my_sin(x) * my_cos(x)
    y.backward()
    source = draw_dot(y).source
    assert "label=my_sin" in source and "label=my_cos" in source
    assert f"grad {math.cos(1.0):.4f}" in source  # d/dx sin x cos x = cos 2x, at x = 0.5


# -- compile ---------------------------------------------------------------------------


def batch_loss(my_sin: Op, my_cos: Op, params: list[Value]):
    rows = [params[2 * i : 2 * i + 2] for i in range(40)]
    return lambda: sum_values([my_sin(a) * my_cos(a * b) + my_sin(b) for a, b in rows])


def eager(loss, params: list[Value]) -> tuple[float, list[float]]:
    for p in params:
        p.grad = 0.0
    out = loss()
    out.backward()
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return out.data, grads


def forty_points() -> list[Value]:
    rng = random.Random(10)
    return [Value(rng.uniform(-3.0, 3.0)) for _ in range(80)]


@pytest.mark.parametrize("numpy_derivative", [False, True])
def test_compiled_with_a_numpy_form_equals_eager(numpy_derivative: bool) -> None:
    """40 points. The derivatives call the ops themselves, which run on arrays through
    ``numpy_forward``; or, with ``numpy_derivative``, are written with NumPy."""
    my_sin, my_cos = sine_pair(numpy=True)
    if numpy_derivative:
        my_sin = register_op(
            "my_sin",
            math.sin,
            lambda x, out: my_cos(x),
            numpy_forward=np.sin,
            numpy_derivative=lambda x, out: np.cos(x),
            replace=True,
        )
    params = forty_points()
    loss = batch_loss(my_sin, my_cos, params)
    step = chainrule.compile(loss, params, fallback=False)
    for _ in range(2):  # and again at other values: the program is replayed
        expected, expected_grads = eager(loss, params)
        value, grads = step.value_and_grad()
        assert value == pytest.approx(expected, rel=1e-12)
        assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-13)
        for p in params:
            p.data *= 1.01
    assert "my_sin" in chainrule.compiler.compilable_ops()


def test_a_compiled_two_input_op_with_a_constant_input_equals_eager() -> None:
    """The derivative runs on an array and a number: it calls another op on both."""
    my_hypot = register_op(
        "my_hypot",
        lambda x, y: math.hypot(x, y),  # math.hypot(*coordinates) has no fixed arity
        lambda x, y, out: (x * inverse(out), y * inverse(out)),
        numpy_forward=np.hypot,
    )
    inverse = register_op(
        "inverse", lambda x: 1.0 / x, lambda x, out: -out * out, numpy_forward=lambda x: 1.0 / x
    )
    params = forty_points()[:40]

    def loss() -> Value:
        return sum_values([my_hypot(p, 4.0) * my_hypot(3.0, p) + inverse(p) for p in params])

    step = chainrule.compile(loss, params, fallback=False)
    expected, expected_grads = eager(loss, params)
    value, grads = step.value_and_grad()
    assert value == pytest.approx(expected, rel=1e-12)
    assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-13)
    assert inverse(
        np.array([2.0, 4.0]),
    ).tolist() == [0.5, 0.25]
    assert my_hypot(np.array([3.0, 6.0]), 4.0).tolist() == [5.0, pytest.approx(math.hypot(6, 4))]


def test_an_op_registered_before_the_compiler_is_loaded_compiles_and_numpy_waits() -> None:
    code = (
        "import math, sys, chainrule\n"
        "sq = chainrule.register_op('sq', lambda x: x * x, lambda x, out: 2 * x,"
        " numpy_forward=lambda x: x * x)\n"
        "assert 'numpy' not in sys.modules\n"
        "w = chainrule.Value(3.0)\n"
        "step = chainrule.compile(lambda: sq(w) + sq(w * 2.0), [w], fallback=False)\n"
        "value, grads = step.value_and_grad()\n"
        "print(value, float(grads[0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["45.0", "30.0"]  # 5 w², 10 w


def test_compile_without_a_numpy_form_is_refused_naming_the_op() -> None:
    my_sin, _ = sine_pair()
    w = Value(0.5)
    step = chainrule.compile(lambda: my_sin(w) * w, [w])
    with pytest.raises(CompileError, match=r"operation 'my_sin' has no NumPy form.*numpy_forward"):
        step()


def test_a_derivative_that_needs_values_is_refused_in_a_compiled_backward() -> None:
    bell = register_op(
        "bell",
        lambda x: math.exp(-x * x),
        lambda x, out: (-x * x).exp() * -2.0 * x,  # exp() is a Value method: no arrays
        numpy_forward=lambda x: np.exp(-x * x),
    )
    params = forty_points()[:40]
    step = chainrule.compile(lambda: sum_values([bell(p) for p in params]), params)
    loss = step()
    assert loss.data == pytest.approx(sum(math.exp(-(p.data**2)) for p in params), rel=1e-12)
    with pytest.raises(CompileError, match=r"derivative of .*'bell'.*numpy_derivative"):
        loss.backward()


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "tanh", "dot", "+", "lin"])
def test_built_in_names_are_refused(name: str) -> None:
    match = "built-in" if name.isidentifier() else "identifier"
    with pytest.raises(ValueError, match=match):
        register_op(name, math.sin, lambda x, out: 1.0)
    assert name not in registered_ops()


@pytest.mark.parametrize("name", ["", "2x", "my-op", "my op", "class", 3, None])
def test_names_must_be_identifiers(name: object) -> None:
    with pytest.raises(ValueError, match="must be a Python identifier"):
        register_op(name, math.sin, lambda x, out: 1.0)  # type: ignore[arg-type]


def test_bad_functions_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="forward of 'f' must be callable"):
        register_op("f", 3.0, lambda x, out: 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="derivative of 'f' must be callable"):
        register_op("f", math.sin, "cos")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numpy_forward of 'f' must be callable"):
        register_op("f", math.sin, lambda x, out: 1.0, numpy_forward=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"derivative of 'f' must take 2 argument\(s\)"):
        register_op("f", math.sin, lambda x: 1.0)
    with pytest.raises(TypeError, match="fixed number of inputs"):
        register_op("f", lambda *xs: 1.0, lambda x, out: 1.0)
    with pytest.raises(TypeError, match="must take an input"):
        register_op("f", lambda: 1.0, lambda out: 1.0)
    with pytest.raises(TypeError, match="cannot tell how many inputs"):
        register_op("f", math.log, lambda x, out: 1.0 / x)  # log(x, [base]): no signature
    with pytest.raises(ValueError, match="numpy_derivative but no numpy_forward"):
        register_op("f", math.sin, lambda x, out: 1.0, numpy_derivative=lambda x, out: 1.0)
    assert registered_ops() == {}


def test_registering_twice_needs_replace_and_unregister_refuses_others() -> None:
    first = register_op("twice", lambda x: 2.0 * x, lambda x, out: 2.0)
    with pytest.raises(ValueError, match=r"already registered.*replace=True"):
        register_op("twice", lambda x: 3.0 * x, lambda x, out: 3.0)
    assert first(Value(1.0)).data == 2.0
    second = register_op("twice", lambda x: 3.0 * x, lambda x, out: 3.0, replace=True)
    assert grad(second)(1.0) == 3.0
    unregister_op("twice")
    assert "twice" not in RULES
    with pytest.raises(ValueError, match="not a registered op"):
        unregister_op("twice")
    with pytest.raises(ValueError, match="built-in"):
        unregister_op("exp")
    assert "exp" in RULES


def test_a_compiled_function_follows_a_replaced_op_and_refuses_an_unregistered_one() -> None:
    """The compiled program re-traces after the registry changes: never the old forward
    and derivative, never an op that is gone. The loss holds the first Op object."""
    square = register_op(
        "scaled_square", lambda x: x * x, lambda x, out: 2.0 * x, numpy_forward=np.square
    )
    params = [Value(3.0 + 0.1 * i) for i in range(30)]

    def loss() -> Value:
        return sum_values([square(p) for p in params])

    step = chainrule.compile(loss, params, fallback=False)
    for scale in (1.0, 1.5):
        if scale != 1.0:
            register_op(
                "scaled_square",
                lambda x: 1.5 * x * x,
                lambda x, out: 3.0 * x,
                numpy_forward=lambda x: 1.5 * np.square(x),
                replace=True,
            )
        expected, expected_grads = eager(loss, params)
        assert expected_grads[0] == 2.0 * scale * 3.0  # 6.0, then 9.0 (at p = 3)
        value, grads = step.value_and_grad()
        assert value == pytest.approx(expected, rel=1e-14)
        assert list(grads) == pytest.approx(expected_grads, rel=1e-14)
    unregister_op("scaled_square")
    with pytest.raises(chainrule.ChainruleError, match=r"scaled_square.*unregistered"):
        step.value_and_grad()
    with pytest.raises(chainrule.ChainruleError, match="scaled_square: this op has been unreg"):
        square(Value(1.0))


def test_backward_through_an_unregistered_op_says_so() -> None:
    cube = register_op("cube", lambda x: x**3, lambda x, out: 3.0 * x * x)
    x = Value(2.0)
    y = cube(x) * 2.0
    unregister_op("cube")
    message = r"operation 'cube'.*unregistered"
    with pytest.raises(chainrule.ChainruleError, match=message):
        y.backward()
    with pytest.raises(chainrule.ChainruleError, match=message):
        chainrule.gradients(y, [x])
    with pytest.raises(chainrule.ChainruleError, match=message):
        list(chainrule.backward_steps(y))


def test_forward_failures_are_the_engines_errors_naming_the_op() -> None:
    my_asin = register_op("my_asin", math.asin, lambda x, out: (1.0 - x * x) ** -0.5)
    with pytest.raises(DomainError, match=r"my_asin: my_asin\(2\.0\) failed: math domain error"):
        my_asin(Value(2.0))
    nan = register_op("nan_op", lambda x: math.nan, lambda x, out: 1.0)
    with pytest.raises(DomainError, match=r"nan_op: nan_op\(1\.0\) is undefined \(nan\)"):
        nan(Value(1.0))
    big = register_op("big", lambda x: 10.0**x, lambda x, out: out * math.log(10.0))
    with pytest.raises(NumericOverflowError, match=r"big: .*big\(400\.0\)"):
        big(Value(400.0))
    wrong = register_op("wrong", lambda x: Value(x), lambda x, out: 1.0)
    with pytest.raises(TypeError, match="must return a float"):
        wrong(Value(1.0))
    with pytest.raises(TypeError, match="takes 1 input"):
        my_asin(Value(0.1), Value(0.2))
    with pytest.raises(TypeError, match="got str"):
        my_asin("0.5")


def test_derivative_failures_name_the_op() -> None:
    two = register_op("two", lambda x: x, lambda x, out: (1.0, 2.0))
    with pytest.raises(TypeError, match=r"derivative of two must return 1 local"):
        two(Value(0.5)).backward()
    inv = register_op("inv_sqrt", lambda x: x**-0.5, lambda x, out: -0.5 * x**-1.5 / (x - x))
    with pytest.raises(chainrule.DivisionByZeroError, match=r"derivative of inv_sqrt at"):
        inv(Value(4.0)).backward()
    with pytest.raises(chainrule.DivisionByZeroError, match=r"derivative of inv_sqrt at"):
        grad(inv)(4.0)


def test_import_chainrule_and_registering_import_no_numpy() -> None:
    code = (
        "import math, sys, chainrule\n"
        "s = chainrule.register_op('s', math.sin, lambda x, out: 1.0)\n"
        "s(chainrule.Value(1.0)).backward()\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
