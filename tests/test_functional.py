"""grad, value_and_grad, numerical_grad and gradcheck."""

from __future__ import annotations

import collections
import math
import threading

import pytest
import sources
import torch

from chainrule import (
    DataReadError,
    GradcheckError,
    Value,
    grad,
    gradcheck,
    gradients,
    no_grad,
    numerical_grad,
    register_op,
    unregister_op,
)
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
    gz, gy = grad(f, argnums=(-1, -2))(2.0, 0.5, 1.0)
    assert gz == 1.0 and gy == pytest.approx(2 * math.exp(0.5))


def test_argnums_is_checked_when_the_transform_is_made() -> None:
    for bad in ("0", 1.0, True, [0, "1"], None):
        with pytest.raises(TypeError, match="argnums must be an int or a non-empty sequence"):
            grad(poly, argnums=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty"):
        vg(poly, argnums=())
    with pytest.raises(ValueError, match="must not repeat a position"):
        grad(poly, argnums=(1, 1))
    with pytest.raises(TypeError, match="expected a function"):
        grad(3.0)  # type: ignore[arg-type]


def test_argnums_range_is_checked_at_each_call() -> None:
    df = grad(lambda x, y, *rest: x * y, argnums=(0, -2))
    with pytest.raises(ValueError, match="name the same argument twice"):
        df(1.0, 2.0)  # 0 and -2 are both the first of two arguments
    assert df(1.0, 2.0, 3.0) == (2.0, 1.0)  # of three, -2 is the second
    with pytest.raises(ValueError, match="argnums 3 is out of range"):
        grad(poly, argnums=3)(1.0)
    with pytest.raises(TypeError, match=r"argument 0 must be a real number or a Value.*str"):
        grad(poly)("x")


def test_other_arguments_pass_through_exactly_as_given() -> None:
    """JAX's rule: only the argnums arguments become Values; a number stays a number."""
    assert grad(lambda x, n: x**n)(-2.0, 3) == 12.0  # n a Value would make (-2) ** n illegal
    seen = []
    model = object()

    def f(x, n, thing, *, scale, label="none"):
        seen.append((n, thing, scale, label))
        return scale * x**n

    assert vg(f)(2.0, 3, model, scale=0.5, label="mine") == (4.0, 6.0)
    n, thing, scale, label = seen[0]
    assert type(n) is int and thing is model and type(scale) is float and label == "mine"
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        grad(poly)(1.0, nope=1)


def test_keyword_arguments_are_never_differentiated_but_can_carry_a_graph() -> None:
    c = Value(3.0)
    slope = grad(lambda x, *, c: c * x * x)(2.0, c=c)  # d/dx = 2 c x = 12
    assert isinstance(slope, Value) and slope.data == 12.0
    slope.backward()  # d/dc (2 c x) = 2 x
    assert c.grad == 4.0


def test_has_aux_returns_the_auxiliary_output_as_jax_does() -> None:
    log = object()

    def loss(w, x):
        pred = (w * x).tanh()
        return (pred - 0.5) ** 2, (pred, log)

    (value, (pred, aux)), (dw, dx) = vg(loss, argnums=(0, 1), has_aux=True)(0.7, -1.3)
    tw = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor(-1.3, dtype=torch.float64, requires_grad=True)
    tpred = torch.tanh(tw * tx)
    tvalue = (tpred - 0.5) ** 2
    tvalue.backward()
    assert value == pytest.approx(tvalue.item(), rel=1e-14)
    assert isinstance(pred, Value) and pred.data == pytest.approx(tpred.item(), rel=1e-14)
    assert aux is log  # aux comes back as f returned it
    assert dw == pytest.approx(tw.grad.item(), rel=1e-12)
    assert dx == pytest.approx(tx.grad.item(), rel=1e-12)
    g, (pred2, _) = grad(loss, has_aux=True)(0.7, -1.3)
    assert g == pytest.approx(dw, rel=1e-15) and pred2.data == pred.data
    with pytest.raises(TypeError, match=r"has_aux=True, <lambda> must return a pair \(out, aux\)"):
        grad(lambda x: x * x, has_aux=True)(1.0)
    with pytest.raises(TypeError, match="first of its pair"):
        grad(lambda x: ("out", x), has_aux=True)(1.0)


def test_grad_of_grad_with_aux() -> None:
    def inner(x):
        return grad(lambda y: (y**3, "inner aux"), has_aux=True)(x)[0]  # 3 x**2

    assert grad(inner)(2.0) == 12.0
    slope, aux = grad(lambda x: (inner(x), x), has_aux=True)(2.0)
    assert slope == 12.0 and aux.data == 2.0  # x itself as aux: its number read after


def test_has_aux_passes_a_namedtuple_back_as_it_is() -> None:
    Aux = collections.namedtuple("Aux", "pred label")
    (value, aux), slope = vg(lambda x: (x * x, Aux(x * 2.0, "two x")), has_aux=True)(3.0)
    assert (value, slope) == (9.0, 6.0)
    assert type(aux) is Aux and aux.pred.data == 6.0 and aux.label == "two x"


def test_function_returning_a_constant_has_zero_gradient() -> None:
    assert grad(lambda x: 4.0)(1.0) == 0.0
    with pytest.raises(TypeError, match="must return a Value or a number, got list"):
        grad(lambda x: [x])(1.0)


def test_no_perturbation_confusion() -> None:
    """d/dx [x * d/dy (x + y)] = 1: the inner derivative must not see the outer x."""
    assert grad(lambda x: x * grad(lambda y: x + y)(x))(1.0) == 1.0


def test_inner_transforms_over_a_closure_keep_the_outer_graph() -> None:
    """d/dx [d/dy (x y) at y = 2] = 1, though the inner call is given a plain number."""
    assert grad(lambda x: grad(lambda y: x * y)(2.0))(3.0) == 1.0

    def outer(x):  # d/dy tanh(x y) at y = 0.5 is x (1 - tanh(x y)**2)
        return grad(lambda y: (x * y).tanh())(0.5)

    tx = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch.tanh(tx * ty), ty, create_graph=True)
    (expected,) = torch.autograd.grad(g, tx)
    assert grad(outer)(0.3) == pytest.approx(expected.item(), rel=1e-12)


def test_top_level_calls_in_another_thread_still_return_floats() -> None:
    inside, done = threading.Event(), threading.Event()
    results = []

    def waits(x):
        inside.set()  # this thread is now inside a transformed function
        assert done.wait(timeout=30)
        return x * x

    worker = threading.Thread(target=lambda: results.append(grad(waits)(3.0)))
    worker.start()
    assert inside.wait(timeout=30)
    try:
        value, slope = vg(poly)(3.0)
        assert type(value) is float and type(slope) is float
    finally:
        done.set()
        worker.join()
    assert results == [6.0]


def test_mixed_partials_match_torch() -> None:
    def f(x, y):
        return (x * y).tanh() * x.exp() / (1 + y * y)

    for i in range(2):
        for j in range(2):

            def first(x, y, i=i):
                return grad(f, argnums=i)(x, y)

            # Values in, Values out: f calls methods on the argument it does not differentiate
            ours = grad(first, argnums=j)(Value(0.3), Value(-0.7)).data
            tx = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
            ty = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
            out = torch.tanh(tx * ty) * torch.exp(tx) / (1 + ty * ty)
            g = torch.autograd.grad(out, (tx, ty), create_graph=True)[i]
            expected = torch.autograd.grad(g, (tx, ty))[j].item()
            assert ours == pytest.approx(expected, rel=1e-12)


def test_gradients_match_torch_and_differentiate_again() -> None:
    x, y, unused = Value(0.3), Value(-0.7), Value(5.0)
    out = (x * y).tanh() * x.exp() / (1 + y * y)
    dx, dy, du = gradients(out, [x, y, unused])
    tx = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    t_out = torch.tanh(tx * ty) * torch.exp(tx) / (1 + ty * ty)
    tdx, tdy = torch.autograd.grad(t_out, (tx, ty), create_graph=True)
    assert (dx.data, dy.data) == pytest.approx((tdx.item(), tdy.item()), rel=1e-13)
    assert du.data == 0.0  # out does not depend on it
    assert (x.grad, y.grad) == (0.0, 0.0)  # grad attributes untouched
    dxy, dyy = gradients(dy, [x, y])  # the gradients are graphs: differentiate again
    txy, tyy = torch.autograd.grad(tdy, (tx, ty))
    assert (dxy.data, dyy.data) == pytest.approx((txy.item(), tyy.item()), rel=1e-12)


def test_gradients_visit_only_nodes_between_root_and_wrt() -> None:
    from chainrule.core import RULES, register_rule

    called: list[str] = []

    def recording(op, rule):
        return lambda x, out, k: called.append(op) or rule(x, out, k)

    originals = dict(RULES)
    for op, rule in originals.items():  # instrument every rule, through the public registrar
        register_rule(op, recording(op, rule), replace=True)
    try:
        w, c = Value(0.5), Value(2.0)
        out = (w * 3.0).tanh() + (c.exp() - 1.0).log()  # the log/exp branch has no w in it
        (dw,) = gradients(out, [w])
    finally:
        for op, rule in originals.items():
            register_rule(op, rule, replace=True)
    assert dict(RULES) == originals
    assert dw.data == pytest.approx(3.0 * (1.0 - math.tanh(1.5) ** 2), rel=1e-14)
    assert sorted(called) == ["*", "+", "tanh"]


def test_a_branch_without_the_input_is_not_differentiated() -> None:
    """sqrt's slope at 0 is infinite, but d(w * sqrt(0))/dw = sqrt(0) = 0 (as PyTorch says)."""
    c = Value(0.0)
    tw = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(tw * torch.tensor(0.0, dtype=torch.float64) ** 0.5, tw)
    assert grad(lambda w: w * c**0.5)(2.0) == expected.item() == 0.0


def test_gradients_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match="gradients: root must be a Value, got float"):
        gradients(1.0, [Value(1.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"gradients: wrt\[1\] must be a Value, got int"):
        gradients(Value(1.0), [Value(1.0), 2])  # type: ignore[list-item]


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


# -- reading the number of a differentiated Value ---------------------------------------

HERE = __file__


def line_of(marker: str) -> int:
    return sources.line_of(HERE, marker)


@pytest.mark.parametrize(
    "reads",
    [
        lambda x: math.sin(x),  # marker: math-read
        lambda x: round(x, 2) * x,  # marker: round-read
        lambda x: x * float(x),  # marker: float-read
        lambda x: x * x.data,  # marker: data-read
        lambda x: (x * 2.0).tanh() if (x * 2.0).data > 0 else x,  # marker: branch-read
        lambda x: x * float(f"{x:.3f}"),  # marker: format-read
    ],
    ids=["math", "round", "float", "data", "branch", "format"],
)
def test_reading_a_differentiated_number_is_refused_with_the_line_and_the_fix(reads) -> None:
    """Silently 0 (math.sin) or half the derivative (round) before; JAX raises too."""
    line = reads.__code__.co_firstlineno
    for transform in (grad, vg, lambda f: grad(grad(f))):
        with pytest.raises(DataReadError, match=rf"{HERE}:{line}\b.*x\.sin\(\)"):
            transform(reads)(0.5)
    with pytest.raises(DataReadError, match=rf"{HERE}:{line}\b"):
        grad(reads)(Value(0.5))  # a Value argument too


def test_reading_an_outer_differentiated_number_inside_an_inner_grad_is_refused() -> None:
    def outer(x):
        return grad(lambda y: y * math.sin(x))(1.0)  # marker: outer-read

    with pytest.raises(DataReadError, match=rf"{HERE}:{line_of('marker: outer-read')}"):
        grad(outer)(0.5)
    assert grad(lambda x: grad(lambda y: y * x.sin())(1.0))(0.5) == math.cos(0.5)


def test_numbers_that_are_not_differentiated_may_be_read() -> None:
    w, seen = Value(2.0), []

    def f(x, scale):
        seen.append((w.data, float(w), round(scale.data, 1), repr(x)))  # not differentiated
        return x * w.data * scale

    assert grad(f)(0.5, Value(3.0)).data == 6.0  # a Value argument: a Value result
    assert seen == [(2.0, 2.0, 3.0, "Value(data=0.5, grad=0.0)")]
    slope = grad(lambda x: x * x)(Value(3.0))
    assert slope.data == 6.0 and float(slope) == 6.0  # the results, after the call
    assert grad(grad(lambda x: x.relu() * x))(0.5) == 2.0  # engine's own reads: fine


def test_the_watch_is_off_outside_the_call_and_after_an_error() -> None:
    """Plain eager code reads data through the slot itself: it pays nothing."""
    slot = Value.__dict__["data"]
    assert type(slot).__name__ == "member_descriptor"
    grad(poly)(1.0)
    assert Value.__dict__["data"] is slot
    with pytest.raises(DataReadError):
        grad(lambda x: x * x.data)(1.0)
    assert Value.__dict__["data"] is slot


def test_a_user_op_whose_derivative_reads_its_input_has_first_derivatives_only() -> None:
    """Its derivative is a plain number: right once, refused when differentiated again."""
    my_sin = register_op("read_sin", math.sin, lambda x, out: math.cos(x))  # marker: op-read
    try:
        assert grad(my_sin)(0.5) == math.cos(0.5)
        with pytest.raises(DataReadError, match=rf"{HERE}:{line_of('marker: op-read')}"):
            grad(grad(my_sin))(0.5)
    finally:
        unregister_op("read_sin")
