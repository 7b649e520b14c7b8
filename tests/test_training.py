"""Training end to end: the reference demo, the lecture's set, spiral, lr-find."""

from __future__ import annotations

import math
import random

import pytest

from chainrule.data import lecture
from chainrule.losses import mse
from chainrule.nn import MLP
from chainrule.optim import SGD
from chainrule.training import TrainConfig, demo_config, lr_find, train


def test_reference_demo_reaches_full_training_accuracy() -> None:
    result = train(demo_config())
    metrics = result.metrics()
    assert metrics["accuracy"] == 1.0
    assert metrics["steps"] == 100
    assert result.history.lr[0] == 1.0 and math.isclose(result.history.lr[-1], 1.0 - 0.9 * 0.99)
    assert result.history.loss[-1] < 0.05 < result.history.loss[0]


def test_lecture_set_mse_below_001_within_200_steps_at_lr_005() -> None:
    X, y = lecture()
    model = MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh", rng=random.Random(0))
    opt = SGD(model.parameters(), lr=0.05)
    history = []
    for _ in range(200):
        loss = mse([model(x) for x in X], y)
        history.append(loss.data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert min(history) < 0.01
    assert history[-1] < 0.01
    assert history[0] > 0.5  # it really learned


def test_spiral_three_classes_with_softmax_and_adam() -> None:
    config = TrainConfig(
        dataset="spiral",
        classes=3,
        samples=120,
        noise=0.2,
        hidden=(16, 16),
        optimizer="adam",
        lr=0.05,
        schedule="cosine",
        steps=250,
        l2=0.0,
    )
    result = train(config)
    assert result.task.loss == "softmax" and result.model.nouts[-1] == 3
    assert result.metrics()["accuracy"] >= 0.95


def test_minibatches_and_held_out_data() -> None:
    config = TrainConfig(steps=30, batch_size=16, test_fraction=0.25, lr=0.5, samples=80)
    metrics = train(config).metrics()
    assert len(metrics["history"]["loss"]) == 30
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["accuracy"] > 0.75


def test_lr_find_shows_divergence_at_large_learning_rates() -> None:
    found = lr_find(demo_config(), lr_min=1e-2, lr_max=1e4, num=7, steps=10)
    assert found.lrs[0] == 1e-2 and math.isclose(found.lrs[-1], 1e4)
    assert math.isinf(found.losses[-1])  # the largest rate blows up
    finite = [v for v in found.losses if math.isfinite(v)]
    assert finite and min(finite) < found.losses[0] + 1e-12
    low, high = found.suggested
    assert low < high <= 1e4 and math.isfinite(found.losses[found.lrs.index(high)])


def test_fused_engine_matches_the_reference_implementation_on_the_demo() -> None:
    """Same mathematics: micrograd's own demo step and chainrule's agree to 1e-12."""
    import micrograd.engine
    import micrograd.nn

    from chainrule import Value
    from chainrule.data import moons, to_signed

    X, labels = moons(100, noise=0.1, seed=1337)
    y = to_signed(labels)

    def run(value_cls, model_cls, steps=3):
        random.seed(1337)
        model = model_cls(2, [16, 16, 1])
        history = []
        for k in range(steps):
            scores = [model([value_cls(v) for v in row]) for row in X]
            losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
            total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(
                p * p for p in model.parameters()
            )
            model.zero_grad()
            total.backward()
            history.append((total.data, [p.grad for p in model.parameters()]))
            for p in model.parameters():
                p.data -= (1.0 - 0.9 * k / 100) * p.grad
        return history

    ours = run(Value, MLP)
    theirs = run(micrograd.engine.Value, micrograd.nn.MLP)
    for (loss, grads), (ref_loss, ref_grads) in zip(ours, theirs, strict=True):
        assert math.isclose(loss, ref_loss, rel_tol=1e-12)
        assert all(
            math.isclose(g, r, rel_tol=1e-12, abs_tol=1e-12)
            for g, r in zip(grads, ref_grads, strict=True)
        )


@pytest.mark.parametrize(
    "config",
    [
        demo_config(),
        TrainConfig(
            dataset="spiral",
            classes=3,
            samples=60,
            hidden=(8,),
            optimizer="adam",
            lr=0.05,
            steps=30,
            batch_size=16,
            schedule="cosine",
        ),
        TrainConfig(loss="bce", samples=60, hidden=(8, 8), steps=30, test_fraction=0.25),
        TrainConfig(loss="mse", activation="tanh", samples=50, hidden=(6,), steps=30, lr=0.1),
    ],
    ids=["demo", "spiral-softmax-minibatch", "bce-held-out", "mse-tanh"],
)
def test_compiled_training_equals_eager_within_1e_9(config: TrainConfig) -> None:
    compiled = train(config)
    config.compiled = False
    eager = train(config)
    assert compiled.metrics()["engine"] == "compiled"
    assert eager.metrics()["engine"] == "eager"
    assert len(compiled.history.loss) == config.steps
    for a, b in zip(compiled.history.loss, eager.history.loss, strict=True):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b))
    assert compiled.history.accuracy == eager.history.accuracy
    for p, q in zip(compiled.model.parameters(), eager.model.parameters(), strict=True):
        assert abs(p.data - q.data) <= 1e-9 * max(1.0, abs(q.data))
