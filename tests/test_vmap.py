"""``chainrule.vmap``: the lecture's loop as a transform; compiled, one example traced
and replayed over the batch, equal to the loop, or refused.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sources
import test_compile as compile_tests
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import CompileError, Value, dot, logsumexp, vmap
from chainrule.compiler import program as program_module
from chainrule.core.vmap import VmapError
from chainrule.data import moons
from chainrule.errors import BatchTooLargeError
from chainrule.nn import MLP

HERE = __file__


def line_of(marker: str) -> int:
    return sources.line_of(HERE, marker)


def moons_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = moons(max(n, 2), 0.1, seed)
    return np.array(X)[:n], (np.array(y, dtype=float) * 2 - 1)[:n]


def model_and_loss(width: int = 16, seed: int = 1):
    """The issue's code: a per-example hinge, vmapped, plus an L2 term over the weights."""
    random.seed(seed)
    model = MLP(2, [width, width, 1], activation="relu")
    params = model.parameters()
    per_example = vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")

    def loss(X, y):
        return per_example(X, y) + 1e-4 * sum(p * p for p in params)

    return model, params, loss


def eager(loss, params, *inputs):
    """The loss and gradients of the eager engine (the loop, Value by Value)."""
    for p in params:
        p.grad = 0.0
    out = loss(*[np.asarray(a).tolist() for a in inputs])
    out.backward()
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return out.data, grads


def compiled(step, params, *inputs):
    for p in params:
        p.grad = 0.0
    out = step(*inputs)
    out.backward()
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return out.data, grads


def assert_equal(a, b, tol: float = 1e-9) -> None:
    (la, ga), (lb, gb) = a, b
    assert math.isclose(la, lb, rel_tol=tol, abs_tol=tol)
    assert len(ga) == len(gb)
    worst = max(abs(x - y) for x, y in zip(ga, gb, strict=True))
    assert worst <= tol * max(1.0, max(map(abs, gb))), worst


# -- eagerly: the loop ---------------------------------------------------------------


def test_eagerly_it_is_the_loop_written_by_hand() -> None:
    model, params, _ = model_and_loss(width=4)
    X, y = moons_batch(12)
    hand = [(1 - t * model(x)).relu() for x, t in zip(X.tolist(), y.tolist(), strict=True)]
    mapped = vmap(lambda x, t: (1 - t * model(x)).relu())(X, y)
    assert [v.data for v in mapped] == [v.data for v in hand]
    total = vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="sum")(X, y)
    mean = vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")(X.tolist(), y)
    assert total.data == math.fsum(v.data for v in hand)
    assert mean.data == total.data * (1.0 / 12)
    mean.backward()
    by_hand = chainrule.sum_values(hand) * (1.0 / 12)
    grads = [p.grad for p in params]
    model.zero_grad()
    by_hand.backward()
    assert grads == [p.grad for p in params]


def test_in_axes_passes_arguments_whole_to_every_example() -> None:
    w = Value(2.0)
    out = vmap(lambda x, scale, t: scale * (w * x - t) ** 2, in_axes=(0, None, 0))(
        [1.0, 2.0], 3.0, [1.0, 3.0]
    )
    assert [v.data for v in out] == [3.0, 3.0]
    rows = vmap(lambda row, k: row[k], in_axes=(0, None))([[1.0, 2.0], [3.0, 4.0]], 1)
    assert rows == [2.0, 4.0]


# -- compiled: one example traced, replayed over the batch ---------------------------


def test_the_issues_code_compiles_and_equals_eager_and_pytorch() -> None:
    model, params, loss = model_and_loss(width=64)
    X, y = moons_batch(100)
    step = chainrule.compile(loss, params)
    total = step(X, y)
    model.zero_grad()
    total.backward()
    got = (total.data, [p.grad for p in params])
    assert_equal(got, eager(loss, params, X, y))
    # PyTorch, from the same weights
    layers = [
        (
            torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64),
            torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64),
        )
        for layer in model.layers
    ]
    for W, b in layers:
        W.requires_grad_(True)
        b.requires_grad_(True)
    h = torch.tensor(X)
    for k, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if k < len(layers) - 1:
            h = torch.relu(h)
    hinge = torch.relu(1 - torch.tensor(y) * h[:, 0]).mean()
    reference = hinge + 1e-4 * sum((W**2).sum() + (b**2).sum() for W, b in layers)
    reference.backward()
    torch_grads = [
        g
        for W, b in layers
        for i in range(W.shape[0])
        for g in [*W.grad[i].tolist(), float(b.grad[i])]
    ]
    assert_equal(got, (reference.item(), torch_grads))


def test_one_trace_serves_every_batch_size() -> None:
    _, params, loss = model_and_loss()
    step = chainrule.compile(loss, params)
    for n in (40, 7, 1, 40, 123):
        X, y = moons_batch(n, seed=n)
        assert_equal(compiled(step, params, X, y), eager(loss, params, X, y))
    assert len(step._programs) == 1
    report = step.explain()
    assert "traced 1 example:" in report and "replayed over N" in report


def test_value_and_grad_and_the_parameters_changing_between_calls() -> None:
    _, params, loss = model_and_loss()
    step = chainrule.compile(loss, params)
    X, y = moons_batch(30)
    for _ in range(3):
        value, grads = step.value_and_grad(X, y)
        assert_equal((value, grads.tolist()), eager(loss, params, X, y))
        for p, g in zip(params, grads.tolist(), strict=True):
            p.data -= 0.5 * g


def test_a_forward_over_a_batch_returns_an_array_of_per_example_outputs() -> None:
    model, params, _ = model_and_loss()
    predict = chainrule.compile(lambda X: vmap(model)(X), params)
    X, _ = moons_batch(500)
    out = predict(X)
    assert isinstance(out, np.ndarray) and out.shape == (500,)
    assert out.tolist() == pytest.approx([model(x).data for x in X.tolist()], rel=1e-12)
    both = chainrule.compile(lambda X: vmap(lambda x: [model(x), x[0] * 2.0])(X), params)
    pairs = both(X[:3])
    assert pairs.shape == (3, 2)
    assert pairs[:, 1].tolist() == (X[:3, 0] * 2.0).tolist()
    with pytest.raises(TypeError, match="no gradient"):
        predict.value_and_grad(X)


def test_aux_returns_the_batch_as_an_array_beside_the_loss() -> None:
    model, params, _ = model_and_loss()

    def loss(X, y):
        outputs = vmap(model)(X)
        per_example = vmap(lambda z, t: (1 - t * z).relu(), reduce="mean")(outputs, y)
        return per_example, outputs

    step = chainrule.compile(loss, params, has_aux=True)
    X, y = moons_batch(25)
    total, outputs = step(X, y)
    assert outputs.shape == (25,)
    assert outputs.tolist() == pytest.approx([model(x).data for x in X.tolist()], rel=1e-12)
    total.backward()
    grads = [p.grad for p in params]
    model.zero_grad()
    eager_loss = vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")(X, y)
    eager_loss.backward()
    assert math.isclose(total.data, eager_loss.data, rel_tol=1e-12)
    assert grads == pytest.approx([p.grad for p in params], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "per_example",
    [
        pytest.param(lambda w, x, t: logsumexp([w[0] * x[0], w[1] * x[1], t]) - t, id="logsumexp"),
        pytest.param(lambda w, x, t: dot(x, x) * w[0] + dot(w, x).tanh(), id="dots"),
        pytest.param(lambda w, x, t: (x[0] * w[0]).exp() / (1 + x[1] ** 2) + t * w[1], id="ops"),
        pytest.param(lambda w, x, t: w[0] * w[1] + 0 * t, id="same-per-example"),
        pytest.param(lambda w, x, t: (w[0] + t) * (x[0] - w[1]) + x[1] * t, id="mixed"),
    ],
)
def test_other_per_example_graphs_equal_eager(per_example) -> None:
    w = [Value(0.3), Value(-0.7)]
    loss = lambda X, y: vmap(lambda x, t: per_example(w, x, t), reduce="sum")(X, y)  # noqa: E731
    step = chainrule.compile(loss, w)
    for n in (5, 11):
        X, y = moons_batch(n, seed=n)
        assert_equal(compiled(step, w, X, y), eager(loss, w, X, y))


def test_results_that_do_not_depend_on_the_example_follow_the_batch_size() -> None:
    w = Value(1.5)

    def f(X):
        return vmap(lambda x: w * 2.0, reduce="sum")(X) + vmap(lambda x: 3.0, reduce="mean")(X)

    step = chainrule.compile(f, [w])
    for n in (4, 9):
        assert_equal(compiled(step, [w], np.ones((n, 2))), eager(f, [w], np.ones((n, 2))))
    pairs = chainrule.compile(lambda X: vmap(lambda x: [w * 1.0, x[0]])(X), [w])
    assert pairs(np.arange(6.0).reshape(3, 2)).tolist() == [[1.5, 0.0], [1.5, 2.0], [1.5, 4.0]]


def test_a_function_that_uses_the_batch_size_is_traced_per_shape() -> None:
    _, params, _ = model_and_loss(width=4)
    per_example = vmap(lambda x: x[0] * params[0], reduce="sum")
    loss = lambda X: per_example(X) * (1.0 / len(X))  # noqa: E731
    step = chainrule.compile(loss, params)
    for n in (10, 20):
        X, _ = moons_batch(n)
        assert_equal(compiled(step, params, X), eager(loss, params, X))
    assert len(step._programs) == 2  # N is baked into each: not served across sizes
    assert "traced batch size only" in step.explain()


# -- refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones((3, 2)), np.ones(4)), r"argument 0 \(x\) holds 3 examples but argument 1 \(t\)"),
        ((np.ones((0, 2)), np.ones(0)), r"argument 0 \(x\) holds no examples"),
        (([[1.0, 2.0], [3.0]], [1.0, 1.0]), r"argument 0 \(x\) is ragged"),
        (([[1.0, "a"], [3.0, 4.0]], [1.0, 1.0]), r"argument 0 \(x\) holds a str"),
        ((np.array([[1.0, np.nan]]), np.ones(1)), r"argument 0 \(x\) holds a non-finite"),
        (([[1.0, 2.0]], [math.inf]), r"argument 1 \(t\) holds a non-finite number"),
        ((np.array([["a", "b"]]), np.ones(1)), r"argument 0 \(x\) holds <U1 entries"),
        ((3.0, np.ones(1)), r"argument 0 \(x\) is a float"),
    ],
)
def test_bad_batches_are_one_line_errors_naming_the_argument(args, match) -> None:
    w = Value(1.0)
    with pytest.raises(VmapError, match=match) as info:
        vmap(lambda x, t: w * t)(*args)
    assert "\n" not in str(info.value)


def test_bad_uses_of_vmap_are_refused() -> None:
    with pytest.raises(TypeError, match="vmap: expected a function, got int"):
        vmap(3)
    with pytest.raises(ValueError, match="reduce must be None, 'sum' or 'mean'"):
        vmap(abs, reduce="max")
    with pytest.raises(ValueError, match="in_axes entry must be 0"):
        vmap(abs, in_axes=1)
    with pytest.raises(ValueError, match="maps no argument"):
        vmap(abs, in_axes=(None, None))
    with pytest.raises(TypeError, match="in_axes has 2 entries but"):
        vmap(abs, in_axes=(0, None))([1.0])


def test_compiled_batches_with_different_lengths_are_refused_and_change_nothing() -> None:
    _, params, loss = model_and_loss(width=4)
    step = chainrule.compile(loss, params)
    X, y = moons_batch(10)
    step(X, y)
    before = [(p.data, p.grad) for p in params]
    with pytest.raises(VmapError, match=r"holds 10 examples but argument 1 \(t\) holds 9"):
        step(X, y[:9])
    with pytest.raises(VmapError, match="holds no examples"):
        step(X[:0], y[:0])
    assert [(p.data, p.grad) for p in params] == before


def test_reading_a_per_example_number_is_refused_with_the_line() -> None:
    w = Value(0.5)

    def branchy(x):
        z = w * x[0]
        return z if z.data > 0 else -z  # marker: vmap-branch

    step = chainrule.compile(lambda X: vmap(branchy, reduce="sum")(X), [w])
    with pytest.raises(CompileError, match=rf"{HERE}:{line_of('marker: vmap-branch')}\b"):
        step(np.ones((4, 2)))


def test_a_per_example_value_used_unreduced_is_refused() -> None:
    w = Value(0.5)
    escaped: list[Value] = []

    def leak(X):
        vmap(lambda x: escaped.append(w * x[0]) or w * x[1], reduce="sum")(X)
        return escaped[-1] * 2.0

    with pytest.raises(CompileError, match="per-example values of a vmapped call that were not"):
        chainrule.compile(leak, [w])(np.ones((4, 2)))
    listed = chainrule.compile(lambda X: sum(vmap(lambda x: w * x[0])(X)), [w])
    with pytest.raises(CompileError, match="is a batch, not a list"):
        listed(np.ones((4, 2)))


def test_a_batch_too_large_for_memory_is_refused_before_allocating(monkeypatch) -> None:
    _, params, loss = model_and_loss(width=4)
    step = chainrule.compile(loss, params)
    X, y = moons_batch(50)
    step(X, y)
    monkeypatch.setattr(program_module, "_available_memory", lambda: 10_000)
    with pytest.raises(BatchTooLargeError, match=r"a batch of 60 examples needs .* use smaller"):
        step(*moons_batch(60))
    assert math.isfinite(step(X, y).data)  # the traced size still works


# -- random per-example graphs -------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.3, 1.5), min_size=1, max_size=3),
    st.lists(compile_tests.instruction, min_size=1, max_size=20),
    st.integers(2, 9),
    st.integers(0, 2**32),
)
def test_random_per_example_graphs_replayed_over_a_batch_equal_the_loop(
    values, program, n, seed
) -> None:
    """Each example's graph mixes parameters and the example's numbers, reusing nodes; the
    compiled vmap over batches of two sizes equals the eager loop, or the engine's own
    error is raised."""
    params = [Value(v) for v in values]
    rng = random.Random(seed)
    X = np.array([[rng.uniform(0.5, 1.5), rng.uniform(-1.5, -0.5)] for _ in range(n)])
    chosen = []
    rows = [list(params) + list(map(Value, row)) for row in X.tolist()]
    for op, i, j in program:  # each op where it is defined at every example, chosen here
        k = len(rows[0])
        ok = all(compile_tests.in_domain(op, r[i % k].data, r[j % k].data) for r in rows)
        op = op if ok else "add"
        chosen.append((op, i % k, j % k))
        for r in rows:
            r.append(compile_tests.apply(op, r[i % k], r[j % k]))

    def per_example(x):
        made = [*params, *(v if isinstance(v, Value) else Value(v) for v in x)]
        for op, i, j in chosen:
            made.append(compile_tests.apply(op, made[i], made[j]))
        return made[-1] * made[len(made) // 2] + made[-1]

    loss = lambda X: vmap(per_example, reduce="sum")(X)  # noqa: E731
    step = chainrule.compile(loss, params, fallback=False)
    for batch in (X, X[: max(1, n // 2)]):
        try:
            expected = eager(loss, params, batch)
        except (ArithmeticError, ValueError) as exc:
            with pytest.raises(type(exc)):  # the engine's own error, never a wrong number
                step.value_and_grad(batch)
            continue
        value, grads = step.value_and_grad(batch)
        assert math.isclose(value, expected[0], rel_tol=1e-10, abs_tol=1e-11)
        for g, e in zip(grads.tolist(), expected[1], strict=True):
            assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-10 * (1 + abs(e)))
    assert len(step._programs) == 1


def test_an_example_outside_an_ops_domain_raises_the_engines_own_error() -> None:
    w = Value(1.0)
    step = chainrule.compile(lambda X: vmap(lambda x: (w * x[0]).log(), reduce="sum")(X), [w])
    assert step(np.array([[1.0, 2.0], [2.0, 3.0]])).data == math.log(2.0)
    with pytest.raises(chainrule.DomainError, match=r"log\(-2.0\)"):
        step(np.array([[1.0, 2.0], [-2.0, 3.0]]))


def test_a_relu_runs_in_place_only_where_nothing_else_reads_its_input() -> None:
    """A layer's relu overwrites the rows of its dots (half the memory), unless another
    node reads them too; both replays equal the loop."""
    model, params, loss = model_and_loss(width=8)
    step = chainrule.compile(loss, params)
    X, y = moons_batch(20)
    assert_equal(compiled(step, params, X, y), eager(loss, params, X, y))
    (program,) = step._programs.values()
    assert program.batch_rows < program.batched_nodes - 16  # two layers' relus in place

    def reread(X, y):  # the first layer's dots are read again, after their relu
        def per_example(x, t):
            xs = [Value(0.0) + x[0], Value(0.0) + x[1]]
            dots = [dot(n.w, xs, n.b) for n in model.layers[0].neurons]
            hidden = model.layers[1].forward([d.relu() for d in dots])
            return (1 - t * hidden[0]).relu() + dots[0] * 0.5

        return vmap(per_example, reduce="mean")(X, y)

    step = chainrule.compile(reread, params)
    assert_equal(compiled(step, params, X, y), eager(reread, params, X, y))
    (program,) = step._programs.values()
    relus = [(k.size, k.in_place) for k in program.kernels if k.kind == "relu"]
    # the first layer's dots are kept; the relus of the output neuron and the hinge not
    assert relus == [(8, False), (1, True), (1, True)]
