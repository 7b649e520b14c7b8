"""``chainrule.compile``: the replayed program equals the eager engine, or refuses.

Every op (and fused op) is compiled and replayed at points other than the ones it was
traced at; random graphs with reused nodes likewise; the demo trains identically for
100 steps; each kind of code the compiler cannot replay faithfully is refused with the
file and line responsible.
"""

from __future__ import annotations

import collections
import copy
import math
import pickle
import random
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import sources
from hypothesis import given
from hypothesis import strategies as st
from optable import OPS, OpCase
from test_random_graphs import apply as apply_common

import chainrule
from chainrule import (
    CompileError,
    CompileWarning,
    Value,
    clamp,
    dot,
    gradients,
    logsumexp,
    maximum,
    minimum,
    no_grad,
    sum_values,
)
from chainrule import losses as L
from chainrule.compiler import compilable_ops
from chainrule.core import RULES, make_node
from chainrule.data import moons
from chainrule.nn import MLP

HERE = __file__


def line_of(marker: str) -> int:
    return sources.line_of(HERE, marker)


def close(a: float, b: float, rel: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel * 1e-3)


def eager_value_and_grads(fn, params, *inputs):
    """The eager engine's loss and gradients: the reference for every replay."""
    for p in params:
        p.grad = 0.0
    as_values = [_values(x) for x in inputs]
    out = fn(*as_values)
    out.backward()
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return out.data, grads


def _values(x):
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_values(v) for v in x]
    return Value(float(x))


def jitter(sample: tuple[float, ...], rng: random.Random) -> list[float]:
    """A point near ``sample`` (inside the same domain), not equal to it."""
    return [v * (1.0 + rng.uniform(0.01, 0.05)) + rng.uniform(0.001, 0.01) for v in sample]


# -- every op --------------------------------------------------------------------------


def test_every_rule_in_the_engine_compiles() -> None:
    assert set(RULES) <= compilable_ops()


@pytest.mark.parametrize(
    ("points", "k"),
    [
        ([(0.0, None), (2.0, None), (-1.5, None)], 0.0),  # x ** 0: 0 everywhere, at 0 too
        ([(0.0, None), (1.5, None)], 1.0),
        ([(0.0, None), (-1.5, None)], 3.0),
        ([(0.0, 0.0), (0.0, 1.0), (0.0, 2.5), (2.0, 0.0), (1.5, -1.3)], None),  # x ** y
    ],
)
def test_array_form_of_power_matches_the_scalar_rule(points, k) -> None:
    """The branch-free ``**`` and ``pow`` (``ARRAY_RULES``) agree with the engine's rules,
    at 0 too."""
    from chainrule.compiler.ops import ARRAY_RULES, FORWARD

    arrays = [np.array([p[0] for p in points])]
    if k is None:
        arrays.append(np.array([p[1] for p in points]))
    op = "**" if k is not None else "pow"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy division or overflow warnings either
        out = FORWARD[op](arrays, k)
        local = ARRAY_RULES[op](arrays, out, k)
    for j, p in enumerate(points):
        xs = list(p) if k is None else [p[0]]
        scalar = RULES[op](xs, float(out[j]), k)
        assert [float(np.broadcast_to(d, out.shape)[j]) for d in local] == list(scalar)


CASES = [
    pytest.param(op, sample, id=f"{op.name}-{i}")
    for op in OPS
    for i, sample in enumerate(op.samples)
]


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_every_op_replayed_at_other_points_equals_eager(op: OpCase, sample) -> None:
    rng = random.Random(op.name)
    params = [Value(v) for v in sample]
    step = chainrule.compile(lambda: op.ours(*params), params, fallback=False)
    for point in (list(sample), jitter(sample, rng), jitter(sample, rng)):
        for p, v in zip(params, point, strict=True):
            p.data = v
        try:
            expected, expected_grads = eager_value_and_grads(lambda: op.ours(*params), params)
        except (ArithmeticError, ValueError) as exc:  # the jittered point left the domain
            with pytest.raises(type(exc)):
                step().backward()
            continue
        value, grads = step.value_and_grad()
        assert close(value, expected), (point, value, expected)
        for g, e in zip(grads, expected_grads, strict=True):
            assert close(g, e), (point, list(grads), expected_grads)
        loss = step()
        loss.backward()
        assert loss.data == value
        assert [p.grad for p in params] == pytest.approx(expected_grads, rel=1e-12, abs=1e-15)
        for p in params:
            p.grad = 0.0
    assert "fallback" not in step.explain()


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_every_op_over_a_batch_is_one_kernel_and_equals_eager(op: OpCase) -> None:
    """A batch of the same op on 40 points: one vectorised group, not 40 nodes."""
    rng = random.Random(op.name)
    points = [jitter(op.samples[i % len(op.samples)], rng) for i in range(40)]
    params = [Value(v) for point in points for v in point]
    rows = [params[i * op.arity : (i + 1) * op.arity] for i in range(40)]

    def loss():
        return sum_values([op.ours(*row) for row in rows])

    expected, expected_grads = eager_value_and_grads(loss, params)
    step = chainrule.compile(loss, params, fallback=False)
    value, grads = step.value_and_grad()
    assert close(value, expected)
    assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-14)
    for p in params:  # and again at other values: the program is reused
        p.data *= 1.001
    expected, expected_grads = eager_value_and_grads(loss, params)
    value, grads = step.value_and_grad()
    assert close(value, expected)
    assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-14)


# -- derivatives inside the loss ---------------------------------------------------------

#: Ops whose derivative jumps, and points on both sides of each jump and on it: relu and
#: abs at 0, a tie of maximum and minimum (half each), clamp's bounds (included).
KINKED = {
    "relu": (lambda x: x.relu(), [3.0, -2.0, 0.0, 1.0, -0.5, 0.0]),
    "abs": (abs, [3.0, -2.0, 0.0, 1.0, 0.0]),
    "maximum": (lambda x: maximum(x, 1.0), [3.0, -2.0, 1.0, 0.5, 1.0]),
    "minimum": (lambda x: minimum(2.0 * x, x + 1.0), [3.0, -2.0, 1.0, 0.5, 1.0]),
    "clamp": (lambda x: clamp(x, -1.0, 1.0), [3.0, -1.0, 0.0, 1.0, -2.0, 1.0]),
}


@pytest.mark.parametrize("name", list(KINKED))
def test_a_gradient_inside_the_loss_through_a_kink_equals_eager_at_every_call(name) -> None:
    """A gradient penalty: the derivative is recomputed at every call, on both sides of
    the kink and on it, never frozen at the side taken when tracing."""
    f, points = KINKED[name]
    p = Value(points[0])

    def loss():
        (slope,) = gradients(f(p), [p])
        return p * chainrule.grad(f)(p) + slope * slope

    step = chainrule.compile(loss, [p], fallback=False)
    for x in points:
        p.data = x
        expected, expected_grads = eager_value_and_grads(loss, [p])
        slope = chainrule.grad(f)(x)
        assert expected == x * slope + slope * slope  # eager is the derivative at x
        value, grads = step.value_and_grad()
        assert (value, list(grads)) == (expected, expected_grads), x
        loss_now = step()
        loss_now.backward()
        assert (loss_now.data, p.grad) == (expected, expected_grads[0]), x
        p.grad = 0.0


def test_a_derivative_given_case_by_case_inside_the_loss_is_refused() -> None:
    """``%``'s derivative in y (the floor of x / y) and ``x ** y``'s at x = 0 are plain
    numbers: a compiled gradient through them would be frozen, so it is refused."""
    x, y = Value(7.5), Value(2.0)
    step = chainrule.compile(lambda: chainrule.grad(lambda b: x % b)(y) * y, [x, y])
    with pytest.raises(CompileError, match=r"x % y with respect to y"):
        step()
    base, e = Value(0.0), Value(2.0)
    step = chainrule.compile(lambda: chainrule.grad(lambda b: base**b)(e) + e, [base, e])
    with pytest.raises(CompileError, match=r"x \*\* y at x = 0"):
        step()
    base.data = 1.5  # away from 0 the derivative is a graph: compiled, equal to eager
    step = chainrule.compile(lambda: chainrule.grad(lambda b: base**b)(e) + e, [base, e])
    for value in (1.5, 2.5):
        base.data = value
        expected, expected_grads = eager_value_and_grads(step.fn, [base, e])
        value_now, grads = step.value_and_grad()
        assert close(value_now, expected) and list(grads) == pytest.approx(expected_grads)


# -- random graphs ---------------------------------------------------------------------

BINARY = ("add", "sub", "mul", "div", "pow", "rpow", "dot", "logsumexp", "sum")
UNARY = (
    "neg",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "exp",
    "log",
    "square",
    "sqrt",
    "softplus",
    "cube",
)


def in_domain(op: str, a: float, b: float) -> bool:
    return {
        "mul": abs(a * b) < 1e4,
        "div": abs(b) > 0.2 and abs(a / b) < 1e4,
        "pow": 0.2 < a < 5 and abs(b) < 2,
        "rpow": abs(a) < 5,
        "relu": abs(a) > 0.05,
        "abs": abs(a) > 0.05,
        "exp": a < 5,
        "log": a > 0.2,
        "square": abs(a) < 100,
        "cube": abs(a) < 20,
        "sqrt": a > 0.2,
        "dot": abs(a * b) < 1e4,
    }.get(op, True)


def apply(op: str, a: Value, b: Value) -> Value:
    """The ops of ``test_random_graphs`` plus the fused ones."""
    match op:
        case "rpow":
            return 1.5**a
        case "dot":
            return dot([a, b], [b, 0.5], a)
        case "logsumexp":
            return logsumexp([a, b, a])
        case "sum":
            return sum_values([a, b, 1.0, a])
        case "abs":
            return abs(a)
        case "cube":
            return a**3
        case "softplus":
            return a.softplus()
        case _:
            return apply_common(op, a, b)


instruction = st.tuples(
    st.sampled_from(BINARY + UNARY), st.integers(0, 10_000), st.integers(0, 10_000)
)
leaf_values = st.lists(
    st.floats(-2, 2, allow_nan=False).filter(lambda v: abs(v) > 0.05), min_size=1, max_size=5
)


@given(leaf_values, st.lists(instruction, min_size=1, max_size=25), st.integers(0, 2**32))
def test_random_graph_traced_at_one_point_replays_at_another(values, program, seed) -> None:
    params = [Value(v) for v in values]
    # Choose each op where it is well defined at the tracing point, once, outside the
    # function: the function itself must not branch on data.
    chosen = []
    nodes = list(params)
    for op, i, j in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        op = op if in_domain(op, a.data, b.data) else "add"
        chosen.append((op, i % len(nodes), j % len(nodes)))
        nodes.append(apply(op, a, b))

    def loss():
        made = list(params)
        for op, i, j in chosen:
            made.append(apply(op, made[i], made[j]))
        return made[-1] + made[len(made) // 2] * made[-1]  # paths meet at the output

    step = chainrule.compile(loss, params, fallback=False)
    rng = random.Random(seed)
    for p in params:  # another point, near enough to stay in every op's domain mostly
        p.data *= 1.0 + rng.uniform(-0.02, 0.02)
    try:
        expected, expected_grads = eager_value_and_grads(loss, params)
    except (ArithmeticError, ValueError) as exc:
        with pytest.raises(type(exc)):  # the engine's own error, never a wrong number
            step.value_and_grad()
        return
    value, grads = step.value_and_grad()
    assert math.isclose(value, expected, rel_tol=1e-11, abs_tol=1e-12)
    for g, e in zip(grads, expected_grads, strict=True):
        assert math.isclose(g, e, rel_tol=1e-10, abs_tol=1e-11 * (1 + abs(e)))


# -- the demo, mini-batches, aux --------------------------------------------------------


def demo_setup():
    X, y = moons(100, noise=0.1, seed=1337)
    ys = [2.0 * c - 1.0 for c in y]
    model = MLP(2, [16, 16, 1], rng=random.Random(1337))

    def loss():
        inputs = [list(map(Value, row)) for row in X]
        scores = list(map(model, inputs))
        data_loss = sum((1 + -yi * si).relu() for yi, si in zip(ys, scores, strict=True))
        reg_loss = 1e-4 * sum(p * p for p in model.parameters())
        return data_loss * (1.0 / len(X)) + reg_loss

    return model, loss


def train(model, loss_fn, steps: int) -> list[float]:
    history = []
    for k in range(steps):
        loss = loss_fn()
        model.zero_grad()
        loss.backward()
        lr = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= lr * p.grad
        history.append(loss.data)
    return history


def test_demo_100_steps_compiled_equal_eager_within_1e_9() -> None:
    model, loss = demo_setup()
    eager = train(model, loss, 100)
    model2, loss2 = demo_setup()
    step = chainrule.compile(loss2, model2.parameters())
    compiled = train(model2, step, 100)
    assert len(compiled) == 100
    for k, (a, b) in enumerate(zip(eager, compiled, strict=True)):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (k, a, b)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert abs(p.data - q.data) <= 1e-9 * max(1.0, abs(p.data))
    report = step.explain()
    assert "matrix products" in report and "fallback" not in report
    assert eager[-1] < 0.05  # it trained


def test_mini_batches_as_inputs_equal_eager_and_a_new_batch_size_traces_again() -> None:
    X, y = moons(60, noise=0.1, seed=3)
    model = MLP(2, [8, 1], rng=random.Random(0))

    def loss(xb, yb):
        scores = [model(row) for row in xb]
        return L.hinge(scores, yb) + 1e-4 * L.l2(model.parameters())

    step = chainrule.compile(loss, model.parameters())
    params = model.parameters()
    rng = random.Random(1)
    for size in (16, 16, 16, 10, 16):
        idx = rng.sample(range(60), size)
        xb = np.array([X[i] for i in idx])
        yb = [2.0 * y[i] - 1.0 for i in idx]
        expected, expected_grads = eager_value_and_grads(loss, params, xb, yb)
        compiled = step(xb, yb)
        model.zero_grad()
        compiled.backward()
        assert close(compiled.data, expected)
        assert [p.grad for p in params] == pytest.approx(expected_grads, rel=1e-12, abs=1e-15)
    assert step.explain().count("- inputs") == 2  # batch sizes 16 and 10


def test_changing_the_structure_every_call_warns_once() -> None:
    w = Value(0.5)
    step = chainrule.compile(lambda xs: sum_values([w * x for x in xs]), [w])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 12):
            assert close(step(list(range(n))).data, 0.5 * n * (n - 1) / 2)
    retrace = [w for w in caught if "traced for" in str(w.message)]
    assert len(retrace) == 1
    assert issubclass(retrace[0].category, CompileWarning)


def test_softmax_labels_as_one_hot_inputs_and_every_library_loss_compiles() -> None:
    model = MLP(2, [6, 3], rng=random.Random(2))
    params = model.parameters()
    X = np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.9], [1.1, 1.2]])
    onehot = np.eye(3)[[0, 2, 1, 2]]
    y01 = np.array([0.0, 1.0, 1.0, 0.0])

    def softmax_loss(xb, tb):
        return L.softmax_cross_entropy([model(r) for r in xb], tb)

    single = MLP(2, [5, 1], rng=random.Random(3))

    def bce(xb, yb):
        return L.binary_cross_entropy_with_logits([single(r) for r in xb], yb)

    def mse(xb, yb):
        return L.mse([single(r) for r in xb], yb)

    def hinge(xb, yb):
        return L.hinge([single(r) for r in xb], [2 * t - 1 for t in yb])  # Values, from inputs

    cases = [(softmax_loss, params, onehot), (bce, single.parameters(), y01)]
    cases += [(mse, single.parameters(), y01), (hinge, single.parameters(), y01)]
    for fn, ps, labels in cases:
        step = chainrule.compile(fn, ps, fallback=False)
        expected, expected_grads = eager_value_and_grads(fn, ps, X, labels)
        value, grads = step.value_and_grad(X, labels)
        assert close(value, expected), fn.__name__
        assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-15)


def test_has_aux_returns_the_outputs_as_floats() -> None:
    model = MLP(2, [4, 1], rng=random.Random(5))
    X = np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 0.5]])

    def loss(xb):
        scores = [model(r) for r in xb]
        return L.mse(scores, [1.0, -1.0, 1.0]), scores

    step = chainrule.compile(loss, model.parameters(), has_aux=True)
    result, scores = step(X)
    with no_grad():
        expected = [model(list(r)).data for r in X]
    assert scores == pytest.approx(expected, rel=1e-12)
    (value, scores2), grads = step.value_and_grad(X)
    assert value == result.data and scores2 == scores and len(grads) == model.num_parameters()


def test_has_aux_rebuilds_namedtuples_as_their_own_type() -> None:
    Outputs = collections.namedtuple("Outputs", "score square")
    w = Value(2.0)
    step = chainrule.compile(
        lambda x: (w * x, [Outputs(w * x, w * w * x), (w,)]), [w], has_aux=True, fallback=False
    )
    for _ in range(3):  # every call, not only the first
        loss, aux = step(3.0)
        assert loss.data == 6.0 and aux == [Outputs(6.0, 12.0), (2.0,)]
        assert type(aux[0]) is Outputs
    eager = chainrule.compile(lambda x: (w * x, Outputs(w, w * x)), [w], has_aux=True)
    assert eager(3.0)[1] == Outputs(2.0, 6.0)  # the eager fallback too


def test_value_and_grad_touches_no_grad_and_backward_adds() -> None:
    w, b = Value(0.3), Value(-0.2)
    step = chainrule.compile(lambda x: (w * x + b).tanh() ** 2, [w, b], fallback=False)
    w.grad, b.grad = 10.0, 20.0
    _, grads = step.value_and_grad(1.5)
    assert (w.grad, b.grad) == (10.0, 20.0)
    step(1.5).backward()
    assert w.grad == pytest.approx(10.0 + grads[0]) and b.grad == pytest.approx(20.0 + grads[1])


def test_backward_after_another_call_uses_its_own_call() -> None:
    w = Value(2.0)
    step = chainrule.compile(lambda x: w * w * x, [w], fallback=False)
    first = step(1.0)
    second = step(5.0)
    first.backward()
    assert w.grad == 4.0  # d(w²·1)/dw at w = 2, not d(w²·5)/dw
    w.grad = 0.0
    second.backward()
    assert w.grad == 20.0


def test_threads_sharing_one_compiled_function_get_their_own_results() -> None:
    w = Value(1.5)
    step = chainrule.compile(lambda x: (w * x).tanh(), [w], fallback=False)
    errors = []

    def worker(x: float) -> None:
        for _ in range(200):
            value, grads = step.value_and_grad(x)
            if not (
                close(value, math.tanh(1.5 * x)) and close(grads[0], x / math.cosh(1.5 * x) ** 2)
            ):
                errors.append((x, value, grads[0]))

    threads = [threading.Thread(target=worker, args=(x,)) for x in (0.1, 0.7, -0.4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- long chains fall back to eager -----------------------------------------------------


def test_a_long_chain_runs_eagerly_and_says_so() -> None:
    w = Value(0.9)

    def chain():
        y = w
        for _ in range(2000):
            y = (y * w + 0.1).tanh()
        return y

    step = chainrule.compile(chain, [w])
    loss = step()
    assert isinstance(loss, Value)  # the eager result itself
    assert "fallback: runs eagerly" in step.explain()
    expected, grads = eager_value_and_grads(chain, [w])
    loss.backward()
    assert loss.data == expected and w.grad == grads[0]


def test_sum_chains_are_folded_into_one_kernel() -> None:
    w = Value(0.5)
    step = chainrule.compile(lambda: sum(w * float(i) for i in range(500)), [w])
    assert step().data == pytest.approx(0.5 * sum(range(500)))
    report = step.explain()
    assert "fallback" not in report
    levels = int(report.split(" levels")[0].split()[-1])
    assert levels <= 3  # not 500 levels of "+"


@pytest.mark.parametrize("bias", ["trainable", "zeros per layer"])
def test_dot_grid_with_a_bias_per_node_is_one_matrix_product(bias: str) -> None:
    """Weight rows that all meet the same input rows form a matrix product even when
    the bias follows neither: one trainable bias per pair, or the zero bias each
    bias-free layer makes per call (several layers applied to the same rows)."""
    rng = random.Random(bias)
    W = [[Value(rng.uniform(-1, 1)) for _ in range(3)] for _ in range(4)]
    B = [[Value(rng.uniform(-1, 1)) for _ in range(4)] for _ in range(5)]
    params = [p for row in W for p in row]
    if bias == "trainable":
        params += [b for row in B for b in row]

    def loss(x):
        if bias == "trainable":
            outs = [dot(w, r, B[j][i]) for j, r in enumerate(x) for i, w in enumerate(W)]
        else:  # two "layers" of two weight rows, each with its own zero per row
            outs = [
                dot(w, r, z)
                for r in x
                for pair in (W[:2], W[2:])
                for z in [Value(0.0)]
                for w in pair
            ]
        return sum_values([o.tanh() for o in outs])

    x = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(5)]
    expected, expected_grads = eager_value_and_grads(loss, params, x)
    step = chainrule.compile(loss, params, fallback=False)
    value, grads = step.value_and_grad(x)
    assert close(value, expected)
    assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-14)
    assert "(1 matrix products)" in step.explain()


# -- refusals ------------------------------------------------------------------------


def test_reading_data_of_a_traced_value_is_refused_with_the_line() -> None:
    w = Value(0.5)

    def loss(x):
        s = w * x
        return s if s.data > 0 else -s  # marker: data-branch

    step = chainrule.compile(loss, [w])
    with pytest.raises(CompileError, match=rf"{HERE}:{line_of('marker: data-branch')}"):
        step(1.2)


@pytest.mark.parametrize(
    ("read", "marker"),
    [
        (lambda s: s * float(s), "marker: float-read"),
        (lambda s: s * round(s, 3), "marker: round-read"),
        (lambda s: s * float(f"{s:.6f}"), "marker: format-read"),
    ],
    ids=["float", "round", "format"],
)
def test_float_round_and_format_of_a_traced_value_are_refused_with_the_line(read, marker) -> None:
    """They read data, as ``.data`` does: the replay would keep the traced number."""
    w = Value(0.5)
    step = chainrule.compile(lambda x: read(w * x), [w])
    line = read.__code__.co_firstlineno  # the lambda's own line, where the read is
    assert line == line_of(marker)
    with pytest.raises(CompileError, match=rf"{HERE}:{line}\b.*reads \.data of a traced Value"):
        step(1.2)


def test_the_engines_own_reads_of_data_pass_in_every_core_module() -> None:
    """The core modules that read ``.data`` for the engine are known to the watch:
    ``value`` (the ops, ``dot``), ``rules`` (``pow``'s rule tests its inputs' numbers,
    called by ``gradients``) and ``custom`` (a user-defined op's forward). A loss using
    all of them compiles and equals eager; the user's own read next to them is refused."""
    cube = chainrule.register_op(
        "cube_in_compile", lambda x: x**3, lambda x, out: 3 * x * x, numpy_forward=lambda x: x**3
    )
    try:
        w, e = Value(0.5), Value(1.5)

        def loss(x):
            y = cube(w * x) + dot([w], [x]) + (w * x) ** e
            (slope,) = gradients(y, [w])  # rules called on Values: pow's reads their data
            return y + slope * slope

        def peeking(x):
            y = loss(x)
            return y * 2.0 if y.data > 0 else y  # marker: user-read-beside-the-engine

        step = chainrule.compile(loss, [w, e], fallback=False)
        value, grads = step.value_and_grad(1.3)
        expected, expected_grads = eager_value_and_grads(loss, [w, e], 1.3)
        assert value == pytest.approx(expected, rel=1e-12)
        assert list(grads) == pytest.approx(expected_grads, rel=1e-12)
        refused = chainrule.compile(peeking, [w, e], fallback=False)
        line = line_of("marker: user-read-beside-the-engine")
        with pytest.raises(CompileError, match=rf"{HERE}:{line}\b.*reads \.data"):
            refused(1.3)
    finally:
        chainrule.unregister_op("cube_in_compile")


def test_float_of_a_constant_inside_the_loss_is_fine() -> None:
    w, c = Value(0.5), Value(4.0)
    step = chainrule.compile(lambda x: w * x * float(c), [w], fallback=False)
    assert step(2.0).data == 4.0


def test_no_grad_inside_the_loss_is_refused_with_the_line() -> None:
    w = Value(0.5)

    def loss(x):
        with no_grad():
            frozen = w * 2.0  # marker: frozen
        return frozen * w * x

    step = chainrule.compile(loss, [w])
    with pytest.raises(CompileError, match=rf"{HERE}:{line_of('marker: frozen')}.*no_grad"):
        step(1.0)


def test_no_grad_on_constants_only_is_fine() -> None:
    w = Value(0.5)

    def loss(x):
        with no_grad():
            c = Value(3.0) * 2.0
        return c * w * x

    step = chainrule.compile(loss, [w], fallback=False)
    assert step(2.0).data == 6.0


@pytest.mark.parametrize(
    "copies",
    [
        lambda w, x: copy.copy(w) * x,  # marker: copy-leaf
        lambda w, x: copy.deepcopy([w, x])[0] * x,  # marker: deepcopy-leaf
        lambda w, x: pickle.loads(pickle.dumps(w)) * x,  # marker: pickle-leaf
    ],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copying_a_parameter_inside_the_loss_is_refused_with_the_line(copies) -> None:
    """A copy of a leaf is a new leaf holding the traced number: the replay would keep it."""
    w = Value(3.0)
    step = chainrule.compile(lambda x: copies(w, x) + w * 0.0, [w], fallback=False)
    line = copies.__code__.co_firstlineno
    with pytest.raises(CompileError, match=rf"{HERE}:{line}\b.*(copies|reads \.data)"):
        step(10.0)


def test_deep_copying_the_model_inside_the_loss_is_refused() -> None:
    model = MLP(2, [3, 1], rng=random.Random(0))

    def loss():
        twin = copy.deepcopy(model)  # marker: deepcopy-model
        return sum_values([p * p for p in twin.parameters()]) + model.parameters()[0] * 0.0

    step = chainrule.compile(loss, model.parameters(), fallback=False)
    with pytest.raises(CompileError, match=rf"{HERE}:{line_of('marker: deepcopy-model')}.*cop"):
        step()


def test_copying_a_computed_node_or_a_constant_inside_the_loss_is_fine() -> None:
    """A copy of a computed node shares its inputs (it is recomputed), and a constant's
    copy is a constant: both replay equal to eager after the parameters change."""
    w, c = Value(3.0), Value(2.0)

    def loss(x):
        return copy.copy(w * x) * copy.copy(c) + w * w

    step = chainrule.compile(loss, [w], fallback=False)
    for value in (3.0, 7.5, -1.0):
        w.data = value
        expected, expected_grads = eager_value_and_grads(loss, [w], 10.0)
        assert (step(10.0).data, list(step.value_and_grad(10.0)[1])) == (expected, expected_grads)


def test_a_graph_that_changes_between_calls_is_refused() -> None:
    w = [Value(0.1 * i) for i in range(10)]
    rng = random.Random(0)
    counter = [0]

    def sampled():
        return sum_values([w[i] * w[i] for i in rng.sample(range(10), 3)])

    def counted():
        counter[0] += 1
        return sum_values(w[: counter[0]])

    for fn in (sampled, counted):
        step = chainrule.compile(fn, w)
        with pytest.raises(CompileError, match=r"test_compile\.py:\d+\) built a different graph"):
            step()


def test_bad_parameter_lists_are_refused() -> None:
    a, b = Value(1.0), Value(2.0)
    with pytest.raises(CompileError, match="not a leaf"):
        chainrule.compile(lambda: a * b, [a * b])
    with pytest.raises(CompileError, match=r"params\[2\] is the same Value as params\[0\]"):
        chainrule.compile(lambda: a * b, [a, b, a])
    with pytest.raises(TypeError, match="params"):
        chainrule.compile(lambda: a * b, [a, 2.0])
    with pytest.raises(TypeError, match="function"):
        chainrule.compile(3.0, [a])


def test_an_unknown_op_is_refused() -> None:
    w = Value(0.5)

    def loss():
        return make_node(1.0, (w,), "mystery") + w  # an op with no array form

    step = chainrule.compile(loss, [w])
    with pytest.raises(CompileError, match=r"test_compile\.py:\d+\) uses the operation 'mystery'"):
        step()


def test_bad_inputs_are_refused() -> None:
    w = Value(0.5)
    step = chainrule.compile(lambda x: w * x[0], [w])
    with pytest.raises(TypeError, match="input 0"):
        step([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match="is a Value"):
        step(Value(1.0))
    with pytest.raises(ValueError, match="non-finite"):
        step([math.nan])


def test_a_softmax_that_subtracts_a_maximum_read_from_values_names_the_rewrite() -> None:
    """The small scalar GPTs' softmax (microgpt's among them) subtracts
    ``max(val.data for val in logits)``: refused with its line and the exact rewrite,
    which then compiles and equals eager."""
    w = [Value(0.3 * i - 0.2) for i in range(4)]

    def scalar_gpt_softmax(logits):
        max_val = max(val.data for val in logits)  # marker: max-read
        exps = [(val - max_val).exp() for val in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def loss(softmax):
        return lambda: -softmax([wi * 2.0 + wi * wi for wi in w])[2].log()

    at = rf"{HERE}:{line_of('marker: max-read')}"
    with pytest.raises(CompileError, match=rf"{at}.*chainrule\.losses\.softmax.*maximum"):
        chainrule.compile(loss(scalar_gpt_softmax), w, fallback=False)()
    step = chainrule.compile(loss(L.softmax), w, fallback=False)
    for shift in (0.0, 1.5, -3.0):
        for p in w:
            p.data += shift
        assert step().data == pytest.approx(loss(scalar_gpt_softmax)().data, abs=1e-12)


def test_captured_values_are_reported_as_constants() -> None:
    w, outside = Value(0.5), Value(3.0, label="outside")
    with pytest.warns(CompileWarning, match=r"'outside'.*baked in as constants") as said:
        step = chainrule.compile(lambda: w * outside, [w], fallback=False)
        step()
    assert "baked in as constants: 1 Value" in step.explain()
    assert said[0].filename == __file__  # the warning points at the user's own line


def test_a_non_finite_replay_reruns_eagerly_for_the_engines_error() -> None:
    w = Value(1.0)
    step = chainrule.compile(lambda x: (w * x).log(), [w], fallback=False)
    assert step(2.0).data == pytest.approx(math.log(2.0))
    with pytest.raises(chainrule.DomainError, match=r"log: operand must be positive"):
        step(-2.0)  # log of a negative number: NumPy gives nan, the engine raises
    w.data = 800.0
    step2 = chainrule.compile(lambda x: (w * x).exp(), [w], fallback=False)
    with pytest.raises(chainrule.NumericOverflowError, match="exp"):
        step2(1.0)


def test_import_chainrule_imports_no_numpy() -> None:
    code = "import sys, chainrule; chainrule.Value(1.0).exp(); print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = "import sys, chainrule; chainrule.compile; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"  # compile is there, loaded on first use


def test_tracing_in_one_thread_changes_nothing_for_another() -> None:
    """The trace watches Value.data; another thread's eager work must not notice."""
    stop = threading.Event()
    results: list[tuple[float, float]] = []

    def eager_worker() -> None:
        x = Value(0.7)
        while not stop.is_set():
            y = (x * x).tanh() * x
            x.grad = 0.0
            y.backward()
            results.append((y.data, x.grad))

    worker = threading.Thread(target=eager_worker)
    worker.start()
    try:
        for _ in range(2):
            model, loss = demo_setup()
            chainrule.compile(loss, model.parameters())()
    finally:
        stop.set()
        worker.join()
    assert len(results) > 10 and len(set(results)) == 1
    x = Value(0.7)
    y = (x * x).tanh() * x
    y.backward()
    assert results[0] == (y.data, x.grad)


def test_value_and_grad_at_parameters_given_as_an_array() -> None:
    model = MLP(2, [5, 1], rng=random.Random(4))
    params = model.parameters()
    X = np.array([[0.3, -0.2], [1.0, 0.4], [-0.6, 0.8]])

    def loss(xb):
        return L.mse([model(r) for r in xb], [1.0, -1.0, 0.5])

    step = chainrule.compile(loss, params)
    before = [p.data for p in params]
    theta = np.array(before) * 0.9 + 0.01
    value, grads = step.value_and_grad(X, params=theta)
    assert [p.data for p in params] == before  # the Values are untouched
    for p, t in zip(params, theta, strict=True):
        p.data = float(t)
    expected, expected_grads = eager_value_and_grads(loss, params, X)
    assert close(value, expected)
    assert list(grads) == pytest.approx(expected_grads, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match=f"needs {len(params)} numbers"):
        step.value_and_grad(X, params=theta[:-1])
    with pytest.raises(ValueError, match="non-finite"):
        step.value_and_grad(X, params=np.full(len(params), np.inf))


def test_the_first_shape_traces_twice_and_later_shapes_once() -> None:
    w, outside = Value(0.5), Value(2.0, label="outside")
    calls = []

    def loss(xs):
        calls.append(len(xs))
        return sum_values([w * x * outside for x in xs])

    with pytest.warns(CompileWarning, match="outside"):
        step = chainrule.compile(loss, [w], fallback=False)
        step([1.0, 2.0])
    assert calls == [2, 2]  # traced twice: the graph is checked to be the same
    assert step([1.0, 2.0, 3.0]).data == pytest.approx(0.5 * 2.0 * 6.0)
    assert calls == [2, 2, 3]  # a new shape: traced once
    assert step.explain().count("baked in as constants") == 2  # still found at the new shape
