"""Code written for the lecture's micrograd runs on chainrule with only the import changed.

The test takes micrograd 0.1.0's own ``nn`` module, swaps its one import line for
chainrule's ``Value``, and trains both versions side by side from the same seed.
"""

from __future__ import annotations

import inspect
import random
import types

import micrograd.nn
import pytest

import chainrule
from chainrule.nn import Neuron

IMPORT_LINE = "from micrograd.engine import Value"


def micrograd_nn_on(value_module: str) -> types.ModuleType:
    source = inspect.getsource(micrograd.nn)
    assert IMPORT_LINE in source
    module = types.ModuleType(f"nn_on_{value_module}")
    exec(
        compile(source.replace(IMPORT_LINE, f"from {value_module} import Value"), "nn", "exec"),
        module.__dict__,
    )
    return module


def train(nn: types.ModuleType, steps: int = 20) -> list[float]:
    random.seed(1234)
    model = nn.MLP(3, [4, 4, 1])
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    losses = []
    for _ in range(steps):
        preds = [model(x) for x in xs]
        loss = sum((p - y) ** 2 for p, y in zip(preds, ys, strict=True))
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data += -0.01 * p.grad
        losses.append(loss.data)
    return losses


def test_micrograd_nn_runs_unchanged_on_chainrule() -> None:
    ours = micrograd_nn_on("chainrule")
    assert ours.Value is chainrule.Value
    reference = train(micrograd.nn)
    result = train(ours)
    assert result == pytest.approx(reference, rel=1e-12)
    assert result[-1] < result[0]  # and it learns


def test_micrograd_style_nodes_made_by_hand_backpropagate_from_the_rule_table() -> None:
    """micrograd's ops write ``Value(data, (self, other), '+')``: with an op of the rule
    table that is a real node, and ``_backward()`` is its local step."""
    a, b = chainrule.Value(2.0), chainrule.Value(-3.0)
    out = chainrule.Value(a.data * b.data, (a, b), "*")
    out.grad = 1.0
    out._backward()
    assert (a.grad, b.grad) == (-3.0, 2.0)
    a.grad = b.grad = 0.0
    total = chainrule.Value(out.data + a.data, (out, a), "+")
    total.backward()
    assert (a.grad, b.grad) == (b.data + 1.0, a.data)
    with pytest.raises(AttributeError, match="register_op"):
        out._backward = lambda: None  # micrograd's closure: chainrule stores none


def test_micrograd_neuron_signature_nonlin() -> None:
    """``Neuron(nin, nonlin=False)`` means what it means in micrograd: same weights from
    the same seed, same output (linear), and ReLU for ``nonlin=True``."""
    x = [0.5, -1.5, 2.0]
    for nonlin in (False, True):
        random.seed(7)
        theirs = micrograd.nn.Neuron(3, nonlin=nonlin)
        random.seed(7)
        ours = Neuron(3, nonlin=nonlin)
        assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
        assert ours(x).data == pytest.approx(theirs(x).data, rel=1e-12)


def test_max_of_two_values_points_to_chainrule_maximum() -> None:
    a, b = chainrule.Value(1.0), chainrule.Value(2.0)
    with pytest.raises(TypeError, match=r"chainrule\.maximum\(a, b\)"):
        max(a, b)
    assert chainrule.maximum(a, b).data == 2.0
