"""Training end to end: the reference demo, the lecture's set, spiral, lr-find."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from chainrule import nn, no_grad, training
from chainrule.data import lecture
from chainrule.errors import ChainruleError, DivergedError
from chainrule.losses import mse
from chainrule.nn import MLP, ModelFileError
from chainrule.optim import SGD
from chainrule.training import (
    ConfigError,
    Task,
    TrainConfig,
    demo_config,
    lr_find,
    lr_sweep,
    run,
    train,
)
from chainrule.training.run import Run, measure


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
    result = train(config)
    metrics = result.metrics()
    assert len(metrics["history"]["loss"]) == 30
    assert (len(result.X), len(result.X_test)) == (60, 20)  # a quarter held out
    with no_grad():  # the held-out accuracy is the model's, computed independently
        right = sum(
            result.task.predict(result.model(x))[0] == c
            for x, c in zip(result.X_test, result.y_test, strict=True)
        )
    assert metrics["test_accuracy"] == right / 20
    assert metrics["test_accuracy"] >= 0.7 and metrics["accuracy"] > 0.75


def test_the_demo_holds_nothing_out_and_records_no_evaluations() -> None:
    assert demo_config().test_fraction == 0.0
    result = train(TrainConfig(steps=5, samples=30, hidden=(4,)))
    assert result.X_test == [] and len(result.X) == 30
    metrics = result.metrics()
    assert "evaluations" not in metrics and "test_accuracy" not in metrics


HELD_OUT = {"samples": 50, "hidden": (8,), "test_fraction": 0.2, "lr": 0.5}


def test_held_out_evaluations_every_k_steps_and_the_last() -> None:
    result = train(TrainConfig(**HELD_OUT, steps=25, eval_every=10))
    metrics = result.metrics()
    ev = metrics["evaluations"]
    assert ev["step"] == [10, 20, 25]
    assert all(len(ev[key]) == 3 for key in ev)
    assert metrics["stopped_early"] is False and metrics["best_step"] in ev["step"]
    # the last evaluation is the final model's, computed here independently (no L2 term),
    # eagerly: the compiled run's evaluation equals it to rounding (it adds in another order)
    task, model = result.task, result.model
    for X, y, kind in ((result.X, result.y, "train"), (result.X_test, result.y_test, "test")):
        with no_grad():
            outputs = [model(x) for x in X]
            loss = task.loss_value(outputs, task.targets(y)).data
        right = sum(task.predict(o)[0] == c for o, c in zip(outputs, y, strict=True))
        assert ev[f"{kind}_loss"][-1] == pytest.approx(loss, rel=1e-12)
        assert ev[f"{kind}_accuracy"][-1] == right / len(y)
    assert (metrics["test_loss"], metrics["test_accuracy"]) == (
        ev["test_loss"][-1],
        ev["test_accuracy"][-1],
    )
    assert metrics["accuracy"] == ev["train_accuracy"][-1]


@pytest.mark.parametrize("compiled", [True, False])
def test_evaluating_does_not_change_the_training(compiled: bool) -> None:
    every = train(TrainConfig(**HELD_OUT, steps=12, eval_every=1, compiled=compiled))
    never = train(TrainConfig(**HELD_OUT, steps=12, eval_every=100, compiled=compiled))
    assert len(every.evaluations.step) == 12 and never.evaluations.step == [12]
    assert every.history.loss == never.history.loss
    assert [p.data for p in every.model.parameters()] == [p.data for p in never.model.parameters()]


def test_patience_stops_early_and_keeps_the_best_weights() -> None:
    config = TrainConfig(samples=40, hidden=(32, 32), steps=300, test_fraction=0.2, eval_every=5)
    config.patience = 3
    result = train(config)
    metrics = result.metrics()
    ev = metrics["evaluations"]
    assert metrics["stopped_early"] is True and metrics["steps"] < 300
    assert metrics["steps"] == ev["step"][-1] == len(result.history.loss)
    best = ev["test_loss"].index(min(ev["test_loss"]))
    assert metrics["best_step"] == ev["step"][best]
    assert len(ev["step"]) - 1 - best == 3  # three evaluations without improvement
    assert metrics["test_loss"] == ev["test_loss"][best]  # the best weights were put back
    assert metrics["test_loss"] < ev["test_loss"][0]


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
    X, y = X[:30], to_signed(labels)[:30]  # the demo's model and first 30 points: same math

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

    # micrograd's network is ReLU (nn's default is the lecture's tanh)
    ours = run(Value, lambda nin, nouts: MLP(nin, nouts, activation="relu"))
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
        TrainConfig(samples=40, hidden=(8, 8), steps=20, batch_size=9, test_fraction=0.2),
    ],
    ids=["spiral-softmax-minibatch", "bce-held-out", "mse-tanh", "hinge-minibatch-held-out"],
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


def test_a_compiled_run_traces_one_example_for_every_batch_and_evaluation() -> None:
    """The step's loss is written for one example and vmapped: one program serves the
    mini-batches, and one the evaluations of the training and test sets (two sizes)."""
    run = Run(TrainConfig(samples=50, hidden=(8, 8), steps=6, batch_size=7, test_fraction=0.2))
    for _ in range(6):
        run.step()
    assert run.evaluate() is False
    assert len(run.compiled._programs) == 1 and len(run._measure._programs) == 1
    assert "traced 1 example:" in run.compiled.explain()
    eager = Run(replace(run.config, compiled=False))
    for p, q in zip(eager.params, run.params, strict=True):
        p.data = q.data
    train_loss, _ = measure(eager.model, eager.task, eager.X, eager.y)
    assert run.evaluations.train_loss[-1] == pytest.approx(train_loss, rel=1e-12)


def test_a_generated_dataset_larger_than_max_samples_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"10,000,001 samples are more than chainrule generates"):
        TrainConfig(samples=training.MAX_SAMPLES + 1).validate()


# -- divergence, bad configurations, tasks from model files -------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
@pytest.mark.parametrize(
    ("config", "words"),
    [
        # The loss explodes (to ~1e8 at step 3) without ever overflowing.
        (TrainConfig(samples=20, hidden=(8, 8), steps=30, lr=100.0), "the loss grew from"),
        # The loss overflows: the engine (or the compiled step's eager rerun) raises.
        (TrainConfig(samples=20, hidden=(4,), steps=30, lr=1e15, activation="linear"), "step 1"),
    ],
    ids=["explodes", "overflows"],
)
def test_divergence_stops_training_with_a_clear_error(
    config: TrainConfig, words: str, compiled: bool
) -> None:
    config.compiled = compiled
    with pytest.raises(DivergedError, match="training diverged at step") as info:
        train(config)
    message = str(info.value)
    assert words in message and "lower the learning rate" in message and "lr-find" in message
    assert isinstance(info.value, ChainruleError) and isinstance(info.value, ArithmeticError)


def test_a_run_that_trains_is_not_called_divergent() -> None:
    result = train(TrainConfig(samples=20, hidden=(4,), steps=10, lr=0.5))
    assert len(result.history.loss) == 10 and all(map(math.isfinite, result.history.loss))
    assert result.metrics()["accuracy"] == result.accuracy


def test_lr_find_with_every_rate_diverging_suggests_nothing() -> None:
    config = TrainConfig(samples=20, hidden=(4,), activation="linear")
    found = lr_find(config, lr_min=1e10, lr_max=1e15, num=3, steps=5)
    assert found.losses == [math.inf] * 3
    assert found.suggested is None


def test_lr_find_never_suggests_a_range_holding_a_diverged_rate(monkeypatch) -> None:
    """Rates 0.1, 0.3, 1, 3, 10: 1 diverged and 3 trained best, so a tenth of 3 (0.3 to 3)
    would include 1; the suggestion starts above it."""
    final = {0.1: 0.5, 0.3: 0.4, 1.0: math.inf, 3.0: 0.2, 10.0: math.inf}

    def fake_train(config: TrainConfig) -> object:
        lr = min(final, key=lambda r: abs(r - config.lr))
        if math.isinf(final[lr]):
            raise DivergedError("diverged")
        return type("Result", (), {"history": training.History(loss=[1.0, final[lr]])})()

    monkeypatch.setattr(lr_sweep, "train", fake_train)  # the train() lr_find calls
    found = lr_find(TrainConfig(), lr_min=0.1, lr_max=10.0, num=5, steps=2)
    assert [math.isinf(v) for v in found.losses] == [False, False, True, False, True]
    assert found.suggested == (found.lrs[3], found.lrs[3])  # 3 alone: 1 diverged
    final[1.0] = 0.45  # without the diverged rate, the usual tenth of the best
    found = lr_find(TrainConfig(), lr_min=0.1, lr_max=10.0, num=5, steps=2)
    assert found.suggested == (found.lrs[3] / 10, found.lrs[3])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"classes": 3}, "dataset 'moons' has 2 classes"),
        ({"dataset": "spiral", "classes": 5, "samples": 4}, "4 samples are too few"),
        ({"samples": 3, "test_fraction": 0.9}, "leaves none to train on"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"momentum": -1.0}, "momentum must be"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"optimizer": "adam", "lr": 0.05, "momentum": 0.9}, "momentum applies to SGD only"),
        ({"optimizer": "adam", "lr": 1.0}, "too large for Adam"),
        ({"patience": 3}, "needs a test fraction above 0"),
        ({"patience": 0, "test_fraction": 0.2}, "patience must be at least 1"),
        ({"eval_every": 0}, "eval_every must be at least 1"),
        ({"seed": 2**32}, r"seed must be from 0 to 4294967295 \(a whole .*, got 4294967296"),
        ({"seed": -1}, r"seed must be from 0 to 4294967295 \(a whole .*, got -1"),
        ({"steps": 10**6 + 1}, "steps must be from 1 to 1,000,000"),
        (
            {"hidden": (2000, 2000)},
            r"would have 4,010,001 parameters, more than chainrule loads \(4,000,000",
        ),
    ],
)
def test_bad_configurations_are_config_errors_before_any_work(changes, words) -> None:
    config = TrainConfig(**changes)
    with pytest.raises(ConfigError, match=words) as info:
        train(config)
    assert isinstance(info.value, ChainruleError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("data", "outputs", "expected"),
    [
        (None, 1, Task("hinge", 2)),
        (None, 4, Task("softmax", 4)),
        ({"loss": "bce", "classes": 2}, 1, Task("bce", 2)),
        ({"loss": "softmax", "classes": 3}, 3, Task("softmax", 3)),
    ],
)
def test_task_from_a_model_files_metadata(data, outputs: int, expected: Task) -> None:
    assert Task.from_json(data, outputs) == expected


@pytest.mark.parametrize(
    ("data", "outputs", "words"),
    [
        (5, 1, "must be an object, got 5"),
        ({"loss": "softmax", "classes": 3}, 1, "needs 3 model outputs, but the model has 1"),
        ({"loss": "hinge", "classes": 2}, 3, "needs 1 model output, but the model has 3"),
        ({"loss": "auto", "classes": 2}, 1, "unknown task loss 'auto'"),
        ({"loss": "hinge", "classes": "2"}, 1, "classes must be a whole number"),
    ],
)
def test_a_task_that_does_not_fit_is_a_model_file_error(data, outputs: int, words: str) -> None:
    with pytest.raises(ModelFileError, match=words):
        Task.from_json(data, outputs)


def test_training_saving_and_loading_share_one_parameter_cap(tmp_path, monkeypatch) -> None:
    """A model that trains can be saved and loaded; one over the cap is refused by
    training before it starts, by save and by load alike."""
    config = TrainConfig(samples=20, hidden=(4,), steps=2)
    count = nn.count_parameters(2, [4, 1])
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_PARAMETERS", count)  # at the cap
    model = train(config).model
    path = nn.save(model, tmp_path / "model.json")
    assert nn.load(path).state_dict() == model.state_dict()
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_PARAMETERS", count - 1)
    monkeypatch.setattr(run, "build", lambda config: pytest.fail("training started"))
    cap = rf"{count} parameters, more than chainrule loads \({count - 1},"
    with pytest.raises(ConfigError, match=f"the model would have {cap}"):
        train(config)
    with pytest.raises(ValueError, match=f"save: the model has {cap}"):
        nn.save(model, tmp_path / "other.json")
    with pytest.raises(ModelFileError, match=f"the architecture has {cap}"):
        nn.load(path)


def test_the_engine_reported_is_the_compilers_own_fell_back() -> None:
    """A network too narrow for replay to pay runs eagerly: the metrics say so, from the
    compiled function's ``fell_back``, not from reading its report."""
    narrow = train(TrainConfig(samples=4, hidden=(1,), steps=2, batch_size=1))
    assert narrow.fell_back and narrow.metrics()["engine"] == "compiled (fell back to eager)"
    wide = train(TrainConfig(samples=20, hidden=(16, 16), steps=2))
    assert not wide.fell_back and wide.metrics()["engine"] == "compiled"
    eager = train(TrainConfig(samples=20, hidden=(4,), steps=2, compiled=False))
    assert eager.metrics()["engine"] == "eager"


# -- a run on a data file (TrainConfig.data) ---------------------------------------------


def write_clusters(path, n: int = 90, features: int = 3) -> list[list[float]]:
    """``n`` points, class c (0, 1, 2 in turn) around 2 on axis c; returns the rows."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        c = i % 3
        rows.append([rng.gauss(2.0 * (k == c), 0.3) for k in range(features)] + [float(c)])
    path.write_text("".join(",".join(map(repr, row)) + "\n" for row in rows))
    return rows


def test_a_config_on_a_data_file_takes_its_points_classes_and_features(tmp_path) -> None:
    rows = write_clusters(tmp_path / "clusters.csv")
    config = TrainConfig(
        data=str(tmp_path / "clusters.csv"),
        hidden=(8,),
        optimizer="adam",
        lr=0.05,
        steps=60,
        test_fraction=0.2,
    )
    facts = (config.dataset, config.samples, config.classes, config.features, config.noise)
    assert facts == ("csv", 90, 3, 3, 0.0)
    result = train(config)
    assert result.task.loss == "softmax" and result.model.nin == 3
    assert sorted(result.X + result.X_test) == sorted(row[:-1] for row in rows)
    assert sorted(result.y + result.y_test) == sorted(int(row[-1]) for row in rows)
    assert result.metrics()["test_accuracy"] >= 0.9
    (tmp_path / "clusters.csv").unlink()  # a config read back does not read the file
    assert TrainConfig.from_json(config.to_json()) == config
    assert replace(config, data=tmp_path / "clusters.csv").data == config.data  # a Path: str


def test_a_config_on_a_data_file_refuses_the_settings_of_generated_data(tmp_path) -> None:
    write_clusters(tmp_path / "c.csv", features=2)
    path = str(tmp_path / "c.csv")
    for config, words in [
        (TrainConfig(data=path, dataset="moons"), "a generated dataset or on a data file, not"),
        (TrainConfig(data=path, noise=0.1), "noise 0.1 applies to generated datasets"),
        (TrainConfig(features=3), "the generated datasets have 2 features, not 3"),
    ]:
        with pytest.raises(ConfigError, match=words):
            config.validate()
    wrong = TrainConfig(data=path, classes=4, steps=1)  # the file has 3
    with pytest.raises(ConfigError, match="holds 90 points of 2 features in 3 classes, not the"):
        train(wrong)


def test_100000_rows_of_a_csv_file_are_read_and_trained_in_minibatches(tmp_path) -> None:
    """A big file is read in one pass and trains a few mini-batch steps (no full-batch
    step, no evaluation of 100,000 points: those are the slow parts, not the reading)."""
    import numpy as np

    X = np.random.default_rng(0).normal(size=(100_000, 2))
    labels = (X[:, 0] > X[:, 1]).astype(float)
    np.savetxt(tmp_path / "big.csv", np.column_stack([X, labels]), delimiter=",", fmt="%.17g")
    facts = {"samples": 100_000, "classes": 2, "features": 2}  # given: the run reads it once
    config = TrainConfig(data=str(tmp_path / "big.csv"), **facts, hidden=(4,), batch_size=64)
    config.compiled = False
    run_ = training.Run(config)  # refuses a file without the facts given
    assert run_.X[12_345] == X[12_345].tolist() and run_.y[:5] == labels[:5].tolist()
    steps = [run_.step() for _ in range(3)]
    assert all(math.isfinite(s.loss) and s.batch_size == 64 for s in steps)
