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
