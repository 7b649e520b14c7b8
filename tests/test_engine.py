"""The engine: worked numbers, deep graphs, conversions, accumulation and bad inputs."""

from __future__ import annotations

import base64
import copy
import decimal
import gc
import math
import pickle
import re
import sys

import numpy as np
import pytest
import torch

from chainrule import (
    ChainruleError,
    DivisionByZeroError,
    DomainError,
    NumericOverflowError,
    Value,
    grad,
    is_grad_enabled,
    logsumexp,
    no_grad,
    sum_values,
    topological_order,
)
from chainrule.core import (
    RULES,
    make_node,
    register_rule,
    set_detached_hook,
    unregister_rule,
)


def reference_readme_expression() -> tuple[Value, Value, Value]:
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g


def test_reference_readme_example() -> None:
    a, b, g = reference_readme_expression()
    g.backward()
    assert f"{g.data:.4f}" == "24.7041"
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


def test_lecture_expression_L() -> None:
    a, b, c, f = Value(2.0, "a"), Value(-3.0, "b"), Value(10.0, "c"), Value(-2.0, "f")
    e = a * b
    d = e + c
    L = d * f
    L.backward()
    assert L.data == -8.0
    assert (a.grad, b.grad, c.grad, f.grad, e.grad, d.grad) == (6.0, -4.0, -2.0, 4.0, -2.0, -2.0)


def test_deep_chain_without_recursion() -> None:
    """100,000 levels: a hundred times Python's recursion limit (bench/ runs a million)."""
    limit = sys.getrecursionlimit()
    x = Value(0.5)
    y = x
    for _ in range(99_999):  # x plus 99,999 additions: 100,000 nodes
        y = y + x
    y.backward()
    assert x.grad == 100_000.0
    assert y.data == 50_000.0
    assert sys.getrecursionlimit() == limit


def test_value_used_twice_accumulates() -> None:
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0
    x = Value(-2.0)
    y = Value(3.0)
    z = (x * y) + (x + y) * x  # x reached by three paths
    z.backward()
    assert x.grad == y.data + (x.data + y.data) + x.data
    assert y.grad == x.data + x.data


def test_backward_accumulates_into_leaves_like_pytorch() -> None:
    x = Value(3.0)
    h = x * x  # intermediate
    out = h * 2.0
    out.backward()
    out.backward()
    assert x.grad == 2 * 12.0  # leaves accumulate across calls
    assert h.grad == 2.0  # intermediates hold this pass's gradient
    x.grad = 0.0
    out.backward()
    assert x.grad == 12.0


def test_attributes_and_graph_structure() -> None:
    a = Value(2.0, label="a")
    b = a * a
    assert b._op == "*"
    assert b._prev == (a, a)  # inputs in order, duplicates kept
    assert a._op == "" and a._prev == ()
    c = a + 1
    assert c._prev[0] is a and c._prev[1].data == 1.0
    a.data -= 0.5
    a.grad = 4
    a.label = "alpha"
    assert (a.data, a.grad, a.label) == (1.5, 4, "alpha")


def test_repr() -> None:
    assert repr(Value(2.0)) == "Value(data=2.0, grad=0.0)"
    assert repr(Value(-1, label="w")) == "Value(data=-1.0, grad=0.0, label='w')"


@pytest.mark.parametrize(
    "raw", [3, True, np.float64(2.5), np.float32(0.5), np.int64(7), np.bool_(True)]
)
def test_numbers_become_python_floats(raw: object) -> None:
    v = Value(raw)  # type: ignore[arg-type]
    assert type(v.data) is float
    assert v.data == float(raw)  # type: ignore[arg-type]
    w = v * raw + raw  # type: ignore[operator]
    assert type(w.data) is float
    assert isinstance(raw * v, Value)  # NumPy scalars on the left defer to Value


@pytest.mark.parametrize("bad", ["2.0", None, [1.0], 1 + 2j, object()])
def test_non_numeric_data_is_a_type_error_naming_the_type(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["2", None, [1.0]])
def test_operators_reject_other_types(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(1.0) + bad  # type: ignore[operator]
    with pytest.raises(TypeError, match=type(bad).__name__):
        bad - Value(1.0)  # type: ignore[operator]


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_data_is_refused(bad: float) -> None:
    with pytest.raises(DomainError, match="finite"):
        Value(bad)


def test_label_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="label must be a str"):
        Value(1.0, label=3)  # type: ignore[arg-type]


def test_a_second_positional_string_is_still_the_label() -> None:
    a = Value(2.0, "a")
    assert a.label == "a" and a._prev == () and a._op == ""


def test_micrographs_positional_form_makes_a_real_node() -> None:
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = Value(a.data * b.data, (a, b), "*", label="c")
    d = Value(c.data + a.data, _children=(c, a), _op="+")
    assert c._prev == (a, b) and c._op == "*" and c.label == "c" and d._prev == (c, a)
    d.backward()
    assert (a.grad, b.grad) == (b.data + 1.0, a.data)  # d = a*b + a


def test_micrographs_positional_form_records_nothing_under_no_grad() -> None:
    a = Value(2.0)
    with no_grad():
        c = Value(4.0, (a, a), "+")
    assert c._prev == () and c._op == ""


def _inputs(n: int) -> tuple[Value, ...]:
    return tuple(Value(float(i)) for i in range(n))


@pytest.mark.parametrize(
    ("children", "op", "error", "message"),
    [
        ("ab", "+", TypeError, "_children must be a tuple of Values"),
        ({Value(1.0), Value(2.0)}, "+", TypeError, "_children must be a tuple of Values"),
        ((1.0, 2.0), "+", TypeError, "_children must be a tuple of Values"),
        ((), "+", ChainruleError, "needs its inputs"),
        (_inputs(2), "mystery", ChainruleError, r"no derivative rule.*register_op"),
        (_inputs(2), "", ChainruleError, r"is not a name of chainrule\.RULES"),
        (_inputs(3), "*", ChainruleError, "not made from 3 input"),
        (_inputs(1), "**", ChainruleError, "not made from 1 input"),  # ** keeps its exponent
    ],
)
def test_micrographs_form_refuses_a_node_without_a_rule(children, op, error, message) -> None:
    with pytest.raises(error, match=message):
        Value(1.0, children, op)


def test_backward_step_of_one_node_is_the_lectures_manual_step() -> None:
    x1, w1, x2, w2 = Value(2.0), Value(-3.0), Value(0.0), Value(1.0)
    b = Value(6.8813735870195432)
    x1w1, x2w2 = x1 * w1, x2 * w2
    s = x1w1 + x2w2
    n = s + b
    o = n.tanh()
    o.grad = 1.0
    for node in (o, n, s, x2w2, x1w1):
        node._backward()
    manual = [v.grad for v in (x1, w1, x2, w2, b, n)]
    for v in (x1, w1, x2, w2, b, n, s, x1w1, x2w2, o):
        v.grad = 0.0
    o.backward()
    assert manual == [v.grad for v in (x1, w1, x2, w2, b, n)]
    assert n.grad == pytest.approx(1.0 - o.data**2)


def test_backward_step_accumulates_into_inputs_and_leaves_them_unreset() -> None:
    a = Value(3.0)
    b = a + a
    a.grad, b.grad = 10.0, 2.0
    b._backward()
    b._backward()
    assert a.grad == 10.0 + 4 * 2.0 and b.grad == 2.0
    a._backward()  # a leaf: nothing to do
    assert a.grad == 18.0


def test_backward_step_of_a_non_finite_gradient_is_an_error_and_changes_nothing() -> None:
    a = Value(1e-200)
    y = a.sqrt()
    y.grad = 1e300
    with pytest.raises(DomainError, match="_backward: the gradient is not finite at sqrt"):
        y._backward()
    assert a.grad == 0.0


def test_assigning_a_backward_closure_is_refused_naming_the_rule_table() -> None:
    a = Value(1.0)
    with pytest.raises(AttributeError, match=r"store no closures.*register_op"):
        a._backward = lambda: None


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Value(-2.0).log(), DomainError, r"log: operand must be positive, got log\(-2.0\)"),
        (lambda: Value(0.0).log(), DomainError, r"log\(0.0\)"),
        (lambda: Value(3.0) / 0, DivisionByZeroError, r"/: division by zero: 3.0 / 0.0"),
        (lambda: 1.0 / Value(0.0), DivisionByZeroError, r"1.0 / 0.0"),
        (lambda: Value(0.0) ** -1, DivisionByZeroError, r"0.0 cannot be raised .* -1.0"),
        (lambda: Value(0.0) ** Value(-2.0), DivisionByZeroError, r"negative power -2.0"),
        (lambda: Value(-4.0) ** 0.5, DomainError, r"-4.0 \*\* 0.5 has no real value"),
        (lambda: Value(-4.0) ** Value(2.0), DomainError, r"negative base"),
        (lambda: Value(1000.0).exp(), NumericOverflowError, r"exp: overflow: exp\(1000.0\)"),
        (lambda: Value(1e200) * 1e200, NumericOverflowError, r"\*: overflow: 1e\+200 \* 1e\+200"),
        (lambda: Value(1e308) + 1e308, NumericOverflowError, r"\+: overflow"),
        (lambda: Value(10.0) ** 400, NumericOverflowError, r"\*\*: overflow: 10.0 \*\* 400"),
        (lambda: Value(10**400), NumericOverflowError, r"too large for a float"),
    ],
)
def test_bad_inputs_get_clear_errors(make, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        make()
    assert isinstance(info.value, ChainruleError)
    assert isinstance(info.value, (ValueError, ArithmeticError))


def exact(f, *xs: float) -> float:
    """``f`` of the floats ``xs``, worked out with 400 significant digits (``decimal``)."""
    with decimal.localcontext(decimal.Context(prec=400, Emin=-(10**6), Emax=10**6)):
        return float(f(*[decimal.Decimal(x) for x in xs]))


@pytest.mark.parametrize("x", [-700.0, -30.0, -1.0, 0.0, 2.0, 30.0, 710.0, 1e5])
def test_softplus_keeps_full_precision_on_both_sides(x: float) -> None:
    """Relative accuracy even where the value or the slope is tiny (no 1 - (1 - ε))."""
    v = Value(x)
    out = v.softplus()
    out.backward()
    assert out.data == pytest.approx(exact(lambda d: (1 + d.exp()).ln(), x), rel=1e-15, abs=0.0)
    assert v.grad == pytest.approx(exact(lambda d: 1 / (1 + (-d).exp()), x), rel=1e-13, abs=0.0)
    assert out._op == "softplus" and out._prev == (v,)


def test_softplus_derivatives_of_any_order() -> None:
    s = 1.0 / (1.0 + math.exp(-0.7))
    assert grad(grad(Value.softplus))(0.7) == pytest.approx(s * (1 - s), rel=1e-13)
    third = grad(grad(grad(Value.softplus)))(0.7)
    assert third == pytest.approx(s * (1 - s) * (1 - 2 * s), rel=1e-12)


def test_logsumexp_is_one_stable_node() -> None:
    a, b = Value(1000.0), Value(1000.0)
    out = logsumexp([a, b, a, 3])  # duplicates kept, numbers lifted, nothing overflows
    assert out._op == "logsumexp" and out._prev[:3] == (a, b, a) and len(out._prev) == 4
    assert out.data == pytest.approx(1000.0 + math.log(3.0), rel=1e-15)
    out.backward()
    assert (a.grad, b.grad) == pytest.approx((2 / 3, 1 / 3), rel=1e-13)
    # one term dominates: the others still count, to full relative precision
    expected = exact(lambda a, b: (a.exp() + b.exp()).ln(), 0.0, -40.0)
    assert logsumexp([0.0, -40.0]).data == pytest.approx(expected, rel=1e-15, abs=0.0)
    assert logsumexp([Value(-2.5)]).data == -2.5


def test_logsumexp_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="logsumexp: no values given"):
        logsumexp([])
    with pytest.raises(TypeError, match="logsumexp: expected Values or real numbers, got str"):
        logsumexp([Value(1.0), "2"])  # type: ignore[list-item]
    with pytest.raises(DomainError, match="finite"):
        logsumexp([1.0, math.nan])


@pytest.mark.parametrize(
    ("op", "inputs"),
    [
        ("softplus", [[-800.0, -30.0, 0.0, 0.5, 30.0, 800.0]]),
        ("logsumexp", [[0.5, 800.0, -3.0], [-1.5, -800.0, -3.0], [2.0, 799.0, -3.0]]),
    ],
)
def test_fused_rules_work_on_numpy_arrays_elementwise(op: str, inputs: list[list[float]]) -> None:
    """``chainrule.compile`` calls the rule table with one array per input."""
    columns = list(zip(*inputs, strict=True))  # one example per column
    outs = []
    for column in columns:
        node = Value(column[0]).softplus() if op == "softplus" else logsumexp(list(column))
        outs.append(node.data)
    arrays = RULES[op]([np.array(row) for row in inputs], np.array(outs), None)
    for j, (column, out) in enumerate(zip(columns, outs, strict=True)):
        scalar = RULES[op](list(column), out, None)
        assert [float(d[j]) for d in arrays] == pytest.approx(list(scalar), rel=1e-14, abs=0.0)


def test_undefined_derivative_is_an_error_not_inf() -> None:
    x = Value(0.0)
    y = x**0.5  # defined, but its slope at 0 is infinite
    with pytest.raises(DomainError, match=r"derivative of \*\* at 0.0 \*\* 0.5 is infinite"):
        y.backward()


# -- non-finite gradients: one policy, an error naming the op and operands ---------------


@pytest.mark.parametrize(
    ("f", "x", "error", "message"),
    [
        (lambda x: 1 / x, 1e-200, NumericOverflowError, r"derivative of / at 1.0 / 1e-200 .* -inf"),
        (lambda x: (1 / x) * 0, 1e-200, NumericOverflowError, r"of / at 1.0 / 1e-200"),
        (lambda x: x.log(), 5e-324, NumericOverflowError, r"of log at log\(5e-324\) .* inf"),
        (
            lambda x: x**-1,
            1e-200,
            NumericOverflowError,
            r"of \*\* at 1e-200 \*\* -1.0 is too large",
        ),
        (lambda x: (x * 1e200) * 1e200, 1e-300, NumericOverflowError, r"overflows at \*"),
        (lambda x: x * 1e308 + x * 1e308, 1e-10, NumericOverflowError, r"add up to more"),
    ],
)
def test_non_finite_gradients_are_errors_naming_the_op(f, x, error, message) -> None:
    v = Value(x)
    out = f(v)  # the forward pass is finite
    with pytest.raises(error, match=message) as info:
        out.backward()
    assert "backward: the gradient" in str(info.value)
    assert isinstance(info.value, ChainruleError)


def test_a_lifted_numbers_gradient_is_not_checked() -> None:
    """d/d(1e-300) of (x * 1e-300) * 1e300 overflows, but nobody asked for it."""
    x = Value(1e10)
    ((x * 1e-300) * 1e300).backward()
    assert x.grad == pytest.approx(1.0, rel=1e-12)


def test_nan_set_by_hand_is_reported_as_nan_not_overflow() -> None:
    x = Value(1.0)
    x.data = math.nan
    for make in (lambda: x + 1.0, lambda: x * 2.0, lambda: x.exp(), lambda: x**2):
        with pytest.raises(DomainError, match=r"not a finite number: .*nan.* set to nan"):
            make()


def test_sum_values_overflow_is_a_chainrule_error() -> None:
    with pytest.raises(NumericOverflowError, match=r"sum: overflow: sum\(1e\+308, 1e\+308\)"):
        sum_values([1e308, 1e308])


def test_no_grad_records_no_graph() -> None:
    w = Value(2.0)
    with no_grad():
        assert not is_grad_enabled()
        y = (w * 3.0).tanh()
    assert is_grad_enabled()
    assert y._prev == () and y._op == ""
    assert y.data == math.tanh(6.0)
    y.backward()
    assert w.grad == 0.0


def test_no_grad_as_decorator_and_restored_after_errors() -> None:
    @no_grad()
    def infer(x: Value) -> Value:
        return x * x

    assert infer(Value(3.0))._prev == ()
    with pytest.raises(DomainError), no_grad():
        Value(-1.0).log()
    assert is_grad_enabled()


def test_graphs_are_freed_without_the_cycle_collector() -> None:
    """No closures, no cycles: dropping the output frees every node at once."""

    def live_values() -> int:
        return sum(issubclass(type(o), Value) for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = live_values()
        x = Value(1.0)
        y = (x * 2.0 + 1.0).tanh() * x
        y.backward()
        assert live_values() == before + 7  # x, two constants, four results
        del x, y
        assert live_values() == before  # freed by reference counting alone
    finally:
        gc.enable()


# -- a Value as a number ----------------------------------------------------------------


def test_float_round_and_format_read_the_value() -> None:
    v = Value(2.71828, label="e")
    assert float(v) == 2.71828 and type(float(v)) is float
    assert round(v) == 3 and type(round(v)) is int
    assert round(v, 2) == 2.72 and type(round(v, 2)) is float
    assert format(v, ".3f") == "2.718" and f"{v:+.1e}" == "+2.7e+00"
    assert f"{v}" == str(v) == repr(v)  # an empty spec keeps the Value's own text
    assert math.sqrt(Value(4.0)) == 2.0  # math functions accept it through __float__


@pytest.mark.parametrize("x", [-1.5, -1e-300, 0.0, 2.0])
def test_abs_is_an_op_with_torchs_derivative_even_at_zero(x: float) -> None:
    v = Value(x)
    out = abs(v)
    assert out._op == "abs" and out._prev == (v,)
    out.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch.abs(t).backward()
    assert (out.data, v.grad) == (abs(x), t.grad.item())
    assert grad(grad(abs))(x) == 0.0


@pytest.mark.parametrize(
    ("compare", "op"),
    [
        (lambda a, b: a < b, "<"),
        (lambda a, b: a <= b, "<="),
        (lambda a, b: a > b, ">"),
        (lambda a, b: a >= b, ">="),
        (lambda a, b: a < 2.5, "<"),
        (lambda a, b: 2.5 >= a, "<="),  # noqa: SIM300  reflected: Python asks a <= 2.5
    ],
)
def test_ordering_comparisons_are_refused_with_the_reason(compare, op: str) -> None:
    a, b = Value(1.5), Value(-2.0)
    with pytest.raises(TypeError, match=rf"^{re.escape(op)}: Values cannot be compared") as info:
        compare(a, b)
    message = str(info.value)
    assert "1.5" in message and "branch on their data" in message
    assert f"a.data {op} b.data" in message and "relu()" in message


@pytest.mark.parametrize(("pick", "op", "name"), [(max, ">", "maximum"), (min, "<", "minimum")])
def test_max_of_values_is_refused_with_a_hint_naming_chainrule_maximum(pick, op, name) -> None:
    a, b = Value(1.5), Value(-2.0)
    with pytest.raises(TypeError, match="Values cannot be compared") as info:
        pick(a, b)
    assert f"chainrule.{name}(a, b)" in str(info.value)
    assert f"a.data {op} b.data" in str(info.value)


def test_equality_and_hashing_stay_by_identity() -> None:
    a, b = Value(1.0), Value(1.0)
    assert a == a and a != b and a != 1.0
    assert len({a, b, a}) == 2 and {a: 1}[a] == 1
    with pytest.raises(TypeError, match="Values cannot be compared"):
        sorted([a, b])


# -- copying and pickling ---------------------------------------------------------------


def deep_copy(v):
    return copy.deepcopy(v)


def pickled(v):
    return pickle.loads(pickle.dumps(v))


def structure(root: Value) -> list[tuple]:
    """Every node's fields and its inputs as positions: equal lists, equal graphs."""
    order = topological_order(root)
    at = {id(n): i for i, n in enumerate(order)}
    return [
        (n.data, n.grad, n.label, n._op, n._arg, tuple(at[id(p)] for p in n._prev)) for n in order
    ]


#: ``tanh(x * 3.0 + x)`` at x = 2 after ``backward()``, labels "x" and "y", pickled (protocol
#: 4) by chainrule before the engine moved into ``chainrule.core``.
EARLIER_PICKLE = base64.b64decode(
    "gASVBgEAAAAAAACMEGNoYWlucnVsZS5lbmdpbmWUjA5fcmVzdG9yZV9ncmFwaJSTlF2UKGgAjAhfcmVzdG9yZZSTlChH"
    "QAAAAAAAAABHPr41W0kAAACMAXiUjACUTiloAIwFVmFsdWWUk5R0lFKUaAUoR0AIAAAAAAAARz6uNVtJAAAAaAdoB04p"
    "aACMCV9Db25zdGFudJSTlHSUUpRlXZQoKEdAGAAAAAAAAEc+njVbSQAAAGgHjAEqlE5LAEsBhpR0lChHQCAAAAAAAABH"
    "Pp41W0kAAABoB4wBK5ROSwJLAIaUdJQoRz/v//+HKpH4Rz/wAAAAAAAAjAF5lIwEdGFuaJROSwOFlHSUZYaUUpQu"
)


def test_pickles_of_earlier_versions_load_and_new_pickles_name_the_same_paths() -> None:
    y = pickle.loads(EARLIER_PICKLE)
    s = y._prev[0]
    m, x = s._prev
    assert (y.label, y._op, s._op, m._op, x.label) == ("y", "tanh", "+", "*", "x")
    assert m._prev[0] is x and y.data == math.tanh(8.0)
    assert x.grad == pytest.approx(4.0 * (1.0 - math.tanh(8.0) ** 2), rel=1e-15)
    constant = m._prev[1]
    assert type(constant) is type((x * 3.0)._prev[1])  # still a lifted constant
    assert pickle.dumps(y, protocol=4) == EARLIER_PICKLE  # the same names, the same bytes
    y.backward()  # and it still differentiates
    assert x.grad == pytest.approx(8.0 * (1.0 - math.tanh(8.0) ** 2), rel=1e-15)


def shared_graph() -> tuple[Value, Value, Value]:
    a = Value(2.0, label="a")
    b = a * a  # the same input twice
    b.label = "b"
    c = b + b.tanh() + b**0.5  # b reached by three paths; ** keeps its exponent in _arg
    c.backward()
    return a, b, c


@pytest.mark.parametrize("clone", [deep_copy, pickled], ids=["deepcopy", "pickle"])
def test_a_100k_node_chain_copies_and_pickles_without_recursion(clone) -> None:
    limit = sys.getrecursionlimit()
    x = Value(0.5, label="x")
    y = x
    for _ in range(50_000):  # 50,000 constants and 100,000 results
        y = y * 1.0 + x
    y2 = clone(y)
    assert y2 is not y and sys.getrecursionlimit() == limit
    assert structure(y2) == structure(y)
    x2 = topological_order(y2)[0]
    assert x2.label == "x" and x2 is not x
    y2.backward()
    assert x2.grad == 50_001.0 and x.grad == 0.0  # the copy is its own graph


@pytest.mark.parametrize("clone", [deep_copy, pickled], ids=["deepcopy", "pickle"])
def test_copies_keep_every_field_and_shared_nodes_shared(clone) -> None:
    a, b, c = shared_graph()
    c2 = clone(c)
    assert structure(c2) == structure(c)  # data, grad, label, _op, _arg, inputs
    b2 = c2._prev[0]._prev[0]  # c = (b + tanh(b)) + b ** 0.5
    assert b2.label == "b" and b2 is not b
    assert b2._prev[0] is b2._prev[1]  # a * a: still one a
    assert c2._prev[1]._prev[0] is b2 and c2._prev[0]._prev[1]._prev[0] is b2
    assert b2._prev[0].grad == a.grad != 0.0
    # a leaf alone
    w = clone(Value(-3.0, label="w"))
    assert (w.data, w.grad, w.label, w._op, w._prev, w._arg) == (-3.0, 0.0, "w", "", (), None)


def test_values_copied_together_share_their_common_nodes() -> None:
    a, b, c = shared_graph()
    c2, b2, a2 = copy.deepcopy([c, b, a])  # deepcopy's memo ties the three copies
    assert c2._prev[1]._prev[0] is b2 and b2._prev == (a2, a2)
    cp, ap = pickle.loads(pickle.dumps((c, a)))  # pickle shares the leaves
    assert topological_order(cp)[0] is ap and ap.label == "a"


def test_shallow_copy_shares_the_inputs() -> None:
    a, b, _ = shared_graph()
    b2 = copy.copy(b)
    assert b2 is not b and b2._prev == (a, a) and b2._prev[0] is a
    assert (b2.data, b2.grad, b2.label, b2._op) == (b.data, b.grad, "b", "*")


# -- powers at 0 ----------------------------------------------------------------------


def torch_derivative(f, x: float, order: int) -> float:
    """The ``order``-th derivative of ``f`` at ``x``, from PyTorch (create_graph=True)."""
    import torch

    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = f(t)
    for _ in range(order):
        if not y.requires_grad:  # a constant: every further derivative is 0
            return 0.0
        (y,) = torch.autograd.grad(y, t, create_graph=True)
    return y.item()


@pytest.mark.parametrize(("k", "order"), [(0, 1), (1, 2), (2, 3), (3, 4), (3, 3), (2, 2)])
def test_derivatives_of_integer_powers_at_zero_match_torch(k: int, order: int) -> None:
    f = grad(lambda x: x**k)
    for _ in range(order - 1):
        f = grad(f)
    assert f(0.0) == torch_derivative(lambda t: t**k, 0.0, order)
    x = Value(0.0)
    (x**k).backward()
    assert x.grad == torch_derivative(lambda t: t**k, 0.0, 1)


def test_a_number_exponent_and_a_value_exponent_are_two_ops() -> None:
    """``x ** 2`` keeps the 2 in ``_arg`` (op ``**``, one input); ``x ** y`` is op
    ``pow`` with two inputs; errors show both as ``**``."""
    x, y = Value(2.0), Value(3.0)
    square = x**2
    assert (square._op, square._prev, square._arg) == ("**", (x,), 2.0)
    power = x**y
    assert (power._op, power._prev, power._arg) == ("pow", (x, y), None)
    steep = Value(0.0) ** Value(0.5)  # its slope in x is infinite at 0
    with pytest.raises(DomainError, match=r"derivative of pow at 0\.0 \*\* 0\.5 is infinite"):
        steep.backward()


def test_zero_to_the_power_zero_with_a_value_exponent() -> None:
    a, b = Value(0.0), Value(0.0)
    out = a**b
    out.backward()
    assert (out.data, a.grad, b.grad) == (1.0, 0.0, 0.0)  # PyTorch: 1, 0, 0


@pytest.mark.parametrize("y", [0.5, 2.0, 0.0])
def test_a_number_base_is_no_input_of_the_graph(y: float) -> None:
    """``0.0 ** y``: nobody asked for the derivative with respect to the 0.0 (it is
    infinite for 0 < y < 1), so none is computed: the base is kept in ``_arg``."""
    v = Value(y)
    out = 0.0**v
    assert out._op == "rpow" and out._prev == (v,) and out._arg == 0.0
    out.backward()
    assert v.grad == 0.0
    assert grad(lambda t: 0.0**t)(y) == 0.0
    assert grad(lambda t: 2.0**t)(y) == pytest.approx(2.0**y * math.log(2.0), rel=1e-15)


def test_mixed_second_derivative_of_a_power_with_a_zero_exponent() -> None:
    """d²(x**y)/dx dy = x^(y-1) (1 + y log x), 1/x at y = 0, in either order. (PyTorch
    agrees differentiating d/dy by x; its d/dx, masked where y == 0, gives 0 by y.)"""
    dx_dy = grad(grad(lambda x, y: x**y, argnums=0), argnums=1)(2.0, 0.0)
    dy_dx = grad(grad(lambda x, y: x**y, argnums=1), argnums=0)(2.0, 0.0)
    assert dx_dy == dy_dx == 0.5


@pytest.mark.parametrize(
    "clone", [deep_copy, pickled, copy.copy], ids=["deepcopy", "pickle", "copy"]
)
def test_copies_keep_lifted_constants_constants(clone) -> None:
    """A constant's gradient is never checked; a copy must not start checking it."""
    x = Value(1e-300)
    y = (x * 1e-300) * 1e300  # the constant 1e-300's gradient overflows; nobody asked for it
    y.backward()
    y2 = clone(y)
    constant = y2._prev[0]._prev[1]
    assert type(constant) is type(y._prev[0]._prev[1])
    leaf = y2._prev[0]._prev[0]
    before = leaf.grad
    y2.backward()  # no error, as for the original
    assert leaf.grad == before + 1.0  # dy/dx = 1e-300 * 1e300


# -- the public extension points: the rule table, Value.arg, the tracing hook ----------


def test_the_rule_table_is_read_only_and_changed_through_register_rule() -> None:
    with pytest.raises(TypeError):
        RULES["tanh"] = RULES["exp"]  # type: ignore[index]
    with pytest.raises(ValueError, match="already has a rule; pass replace=True"):
        register_rule("tanh", RULES["exp"])
    with pytest.raises(ValueError, match="built-in"):
        unregister_rule("tanh")
    with pytest.raises(TypeError, match="callable"):
        register_rule("half", 0.5)  # type: ignore[arg-type]
    register_rule("half", lambda x, out, k: (0.5,))
    try:
        x = Value(3.0)
        y = make_node(0.5 * x.data, (x,), "half") * x  # d(x²/2)/dx = x
        y.backward()
        assert (y.data, x.grad, RULES["half"]((3.0,), 1.5, None)) == (4.5, 3.0, (0.5,))
    finally:
        unregister_rule("half")
    assert "half" not in RULES
    with pytest.raises(ChainruleError, match="'half': it has no derivative rule"):
        y.backward()
    with pytest.raises(ValueError, match="has no rule"):
        unregister_rule("half")


def test_value_arg_is_the_number_an_op_keeps_and_is_read_only() -> None:
    x = Value(2.0)
    assert ((x**3).arg, (3.0**x).arg, x.clamp(min=0.5).arg, (x * x).arg, x.arg) == (
        3.0,
        3.0,
        0.5,
        None,
        None,
    )
    with pytest.raises(AttributeError):
        (x**3).arg = 4.0  # type: ignore[misc]


def test_the_detached_hook_sees_numbers_computed_out_of_the_graphs_sight() -> None:
    seen: list[tuple[tuple[Value, ...], str]] = []
    x = Value(2.0)
    assert set_detached_hook(lambda sources, how: seen.append((sources, how))) is None
    try:
        with no_grad():
            y = x * x
        z = copy.copy(x)
    finally:
        previous = set_detached_hook(None)
    assert previous is not None
    assert seen == [((x, x), "no_grad"), ((x,), "copy")]
    assert (y.data, z.data) == (4.0, 2.0)
    with no_grad():
        x * x  # no hook: nothing recorded
    assert len(seen) == 2
    with pytest.raises(TypeError, match="callable or None"):
        set_detached_hook(3)  # type: ignore[arg-type]
