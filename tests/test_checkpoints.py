"""Checkpoints: a run stopped and resumed is the run that never stopped, bit for bit."""

from __future__ import annotations

import json
import math
import random
import re
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chainrule.nn import MAX_MODEL_PARAMETERS, MLP
from chainrule.optim import SGD, Adam, LinearDecay
from chainrule.training import (
    CHECKPOINT_BYTES_PER_PARAMETER,
    CHECKPOINT_BYTES_PER_STEP,
    MAX_CHECKPOINT_BYTES,
    MAX_STEPS,
    Checkpoint,
    CheckpointError,
    ConfigError,
    Evaluations,
    History,
    ResumeConflict,
    Run,
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
    load_checkpoint,
    resume_config,
    train,
)

SMALL = {"samples": 40, "hidden": (8,), "steps": 100}

ADAM_MINIBATCH: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 0.05,
    "batch_size": 8,
    "test_fraction": 0.2,
    "eval_every": 5,
}
CONFIGS = {
    "sgd-full-batch-compiled": TrainConfig(**SMALL),
    "sgd-full-batch-eager": TrainConfig(**SMALL, compiled=False),
    "adam-minibatch-held-out-compiled": TrainConfig(**SMALL, **ADAM_MINIBATCH),
    "adam-minibatch-held-out-eager": TrainConfig(**SMALL, **ADAM_MINIBATCH, compiled=False),
    "sgd-momentum-minibatch-softmax-cosine": TrainConfig(
        **{**SMALL, "samples": 60},
        dataset="blobs",
        classes=3,
        momentum=0.9,
        lr=0.1,
        batch_size=16,
        schedule="cosine",
    ),
}


def weights(result: TrainResult) -> list[float]:
    return [p.data for p in result.model.parameters()]


def assert_same_run(a: TrainResult, b: TrainResult) -> None:
    """Every loss, accuracy, lr, evaluation and weight equal (==, not close)."""
    assert a.history.loss == b.history.loss
    assert a.history.accuracy == b.history.accuracy
    assert a.history.lr == b.history.lr
    assert a.evaluations == b.evaluations
    assert (a.stopped_early, a.best_step) == (b.stopped_early, b.best_step)
    assert weights(a) == weights(b)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_100_steps_equal_50_then_50_more_from_the_checkpoint_file(
    config: TrainConfig, tmp_path: Path
) -> None:
    straight = train(config)
    path = tmp_path / "checkpoint.json"
    first = train(config, checkpoint_path=path, stop_after=50)
    assert not first.finished and load_checkpoint(path).step == 50
    assert len(first.history.loss) == 50
    resumed = train(resume_from=path, checkpoint_path=path)  # new model, optimiser, sampler
    assert resumed.finished and resumed.resumed_at == [50]
    assert len(resumed.history.loss) == 100
    assert_same_run(straight, resumed)
    assert resumed.history.loss[:50] == first.history.loss
    assert load_checkpoint(path).step == 100  # the final state was saved too


def test_every_periodic_checkpoint_resumes_to_the_same_end() -> None:
    config = CONFIGS["adam-minibatch-held-out-compiled"]
    saved: list[Checkpoint] = []
    straight = train(config, checkpoint_every=30, on_checkpoint=saved.append)
    assert [c.step for c in saved] == [30, 60, 90, 100]  # every 30 steps, and the end
    assert saved[0].optimizer["steps"] == 30 and len(saved[0].history.loss) == 30
    for checkpoint in saved[:3]:
        assert_same_run(straight, train(resume_from=checkpoint))


def test_a_checkpoint_file_holds_every_float_exactly(tmp_path: Path) -> None:
    config = CONFIGS["adam-minibatch-held-out-compiled"]
    result = train(replace(config, steps=20))
    checkpoint = result.checkpoint
    assert checkpoint is not None
    loaded = load_checkpoint(checkpoint.save(tmp_path / "c.json"))
    assert loaded.to_json() == checkpoint.to_json()
    assert loaded.weights == checkpoint.weights and loaded.optimizer == checkpoint.optimizer
    assert loaded.batch_rng == checkpoint.batch_rng
    assert loaded.optimizer["type"] == "Adam" and len(loaded.optimizer["m"]) == len(loaded.weights)
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["format"] == "chainrule.checkpoint" and doc["step"] == 20
    assert doc["schedule"] == {"name": "linear", "position": 20, "steps": 20}


def test_training_longer_follows_the_schedule_of_the_new_total(tmp_path: Path) -> None:
    constant = TrainConfig(**{**SMALL, "steps": 50}, schedule="constant", momentum=0.9, lr=0.1)
    short = train(constant, checkpoint_path=tmp_path / "c.json")
    longer = train(replace(constant, steps=100), resume_from=tmp_path / "c.json")
    assert_same_run(train(replace(constant, steps=100)), longer)  # constant lr: identical
    assert longer.history.loss[:50] == short.history.loss
    linear = TrainConfig(**{**SMALL, "steps": 50})
    train(linear, checkpoint_path=tmp_path / "l.json")
    extended = train(replace(linear, steps=100), resume_from=tmp_path / "l.json")
    schedule = LinearDecay(1.0, 0.1, 100)
    assert extended.history.lr[50:] == [schedule(k) for k in range(50, 100)]


def test_sigint_between_steps_saves_the_last_whole_step_and_resumes(tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    config = CONFIGS["adam-minibatch-held-out-compiled"]

    def press_ctrl_c(checkpoint: Checkpoint) -> None:
        if checkpoint.step == 20:
            signal.raise_signal(signal.SIGINT)  # as if from the keyboard, during step 21

    path = tmp_path / "c.json"
    with pytest.raises(TrainingInterrupted) as caught:
        train(config, checkpoint_every=20, checkpoint_path=path, on_checkpoint=press_ctrl_c)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.checkpoint.step == 21  # the step under way was finished first
    assert load_checkpoint(path).to_json() == caught.value.checkpoint.to_json()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert_same_run(train(config), train(resume_from=path))


def test_optimizer_state_dicts_continue_step_for_step() -> None:
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.01)):
        runs = []
        for stop in (None, 3):
            model = MLP(2, [4, 1], rng=random.Random(0))
            opt = make(model.parameters())
            for k in range(6):
                if k == stop:  # a new optimiser from the old one's state
                    state = json.loads(json.dumps(opt.state_dict()))
                    opt = make(model.parameters())
                    opt.load_state_dict(state)
                model.zero_grad()
                loss = model([0.5, -1.0 + k]) ** 2
                loss.backward()
                opt.step()
            runs.append([p.data for p in model.parameters()])
        assert runs[0] == runs[1]


# -- what cannot be resumed is refused, naming the file and the entry ---------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ckpt") / "c.json"
    train(
        TrainConfig(samples=20, hidden=(4,), steps=6, optimizer="adam", lr=0.05),
        checkpoint_path=path,
    )
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def tamper(doc: dict[str, Any], change: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(format="chainrule.model"), "not a chainrule checkpoint"),
        (lambda d: d.update(version=2), "unknown checkpoint version 2"),
        (lambda d: d["config"].update(steps="6"), "config steps must be a whole number"),
        (lambda d: d["config"].update(colour="red"), "unknown config entries: colour"),
        (lambda d: d["config"].update(hidden=[5]), "is not the config's"),
        (lambda d: d["model"]["layers"][0]["biases"].pop(), "its model: layer 0"),
        (lambda d: d["optimizer"]["m"].pop(), "its optimizer state: Adam.load_state_dict: m"),
        (lambda d: d["optimizer"].update(type="SGD"), "the state is of 'SGD', not Adam"),
        (lambda d: d["history"]["loss"].pop(), "history loss must be a list of 6 numbers"),
        (lambda d: d["random"]["batches"][1].pop(), "random state of the mini-batches"),
        (lambda d: d.update(step=7), "step 7 is past the config's 6 steps"),
        (lambda d: d["schedule"].update(position=3), "its schedule"),
        (lambda d: d["best"].update(weights=[1.0]), "best weights must be a list of"),
        (lambda d: d.pop("seconds"), "the checkpoint lacks 'seconds'"),
        (lambda d: d["config"].update(features=3), "the generated datasets have 2 features"),
        (lambda d: d["config"].update(data="p.csv"), "its config: the config lacks features"),
        (
            lambda d: d["config"].update(data="p.csv", features=2),
            "dataset 'moons' and data 'p.csv': a run trains on a generated dataset or on a",
        ),
    ],
)
def test_a_tampered_checkpoint_is_refused_naming_the_file_and_entry(
    good: dict[str, Any], change: Any, words: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tamper(good, change)))
    with pytest.raises(CheckpointError, match=r"c\.json: ") as caught:
        load_checkpoint(path)
    assert words in str(caught.value)
    with pytest.raises(CheckpointError, match=r"c\.json: "):
        train(resume_from=path)


#: The config entries of a checkpoint of a generated dataset, as they have been since
#: the first checkpoints: a run on a data file adds ``data`` and ``features``, this not.
FIRST_CONFIG_ENTRIES = [
    "dataset", "samples", "noise", "classes", "hidden", "activation", "init", "loss", "l2",
    "optimizer", "lr", "momentum", "schedule", "steps", "batch_size", "seed",
    "test_fraction", "eval_every", "patience", "compiled",
]  # fmt: skip


def test_a_generated_datasets_checkpoint_keeps_the_entries_it_always_had(
    good: dict[str, Any], tmp_path: Path
) -> None:
    """Its config is written as before data files came, and read back from that form
    or with the data file's entries named as a generated dataset has them."""
    assert list(good["config"]) == FIRST_CONFIG_ENTRIES
    (tmp_path / "old.json").write_text(json.dumps(good))
    named = tamper(good, lambda d: d["config"].update(data=None, features=2))
    (tmp_path / "named.json").write_text(json.dumps(named))
    config = load_checkpoint(tmp_path / "old.json").config
    assert load_checkpoint(tmp_path / "named.json").config == config
    assert (config.data, config.features) == (None, 2)
    assert load_checkpoint(tmp_path / "old.json").dumps() == json.dumps(good, separators=(",", ":"))


def test_missing_truncated_and_non_finite_checkpoints(good: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere\.json: no such checkpoint"):
        train(resume_from=tmp_path / "nowhere.json")
    text = json.dumps(good)
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.json: not a valid checkpoint \(truncated"):
        load_checkpoint(tmp_path / "cut.json")
    (tmp_path / "nan.json").write_text(text.replace('"seconds":', '"seconds":NaN,"x":', 1))
    with pytest.raises(CheckpointError, match="non-finite number NaN in the checkpoint"):
        load_checkpoint(tmp_path / "nan.json")


def test_other_data_than_the_checkpoints_is_refused(good: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tamper(good, lambda d: d.update(data_sha256="0" * 64))))
    with pytest.raises(CheckpointError, match="differ from the data it was trained on"):
        train(resume_from=path)


def test_sessions_that_cannot_run_are_config_errors(good: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(good))
    saved = load_checkpoint(path).config
    with pytest.raises(ConfigError, match=r"differs from the checkpoint's in lr 0\.5"):
        train(replace(saved, lr=0.5), resume_from=path)
    with pytest.raises(ConfigError, match="at step 6, past 4 steps"):
        train(replace(saved, steps=4), resume_from=path)
    with pytest.raises(ConfigError, match="already at step 6"):
        train(replace(saved, steps=10), resume_from=path, stop_after=6)
    with pytest.raises(ConfigError, match="needs somewhere to save"):
        train(saved, checkpoint_every=2)
    with pytest.raises(TypeError, match="give a TrainConfig"):
        train()
    assert math.isinf(load_checkpoint(path).best_loss)  # no held-out data: no evaluation


def set_entry(doc: dict[str, Any], entry: str, value: Any) -> None:
    """``set_entry(doc, "optimizer.m[2]", v)``: doc["optimizer"]["m"][2] = v."""
    keys: list[Any] = [int(k) if k.isdigit() else k for k in re.findall(r"\w+", entry)]
    for key in keys[:-1]:
        doc = doc[key]
    doc[keys[-1]] = value


ENTRIES = [
    "seconds",
    "config.lr",
    "config.noise",
    "config.seed",
    "history.loss[0]",
    "optimizer.lr",
    "optimizer.m[2]",
    "best.loss",
    "model.layers[0].weights[1][0]",
    "random.batches[1][5]",
]
NUMBERS = {"10**400": str(10**400), "5000-digits": "9" * 5000, "1e400": "1e400"}


@pytest.mark.parametrize("number", NUMBERS.values(), ids=NUMBERS.keys())
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_number_no_float_can_hold_is_refused_naming_the_file_and_entry(
    good: dict[str, Any], entry: str, number: str, tmp_path: Path
) -> None:
    doc = tamper(good, lambda d: set_entry(d, entry, "NUMBER"))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc).replace('"NUMBER"', number))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: the entry {entry} holds ")
    assert str(caught.value).endswith(
        "too large for a float; not a checkpoint written by chainrule"
    )


def test_a_checkpoint_document_with_a_huge_integer_is_a_checkpoint_error(good) -> None:
    doc = tamper(good, lambda d: set_entry(d, "history.lr[3]", -(10**5000)))
    with pytest.raises(CheckpointError, match=r"entry history\.lr\[3\] holds an integer of"):
        Checkpoint.from_json(doc)


@pytest.mark.parametrize("seed", [2**32, -1])
def test_a_seed_the_data_cannot_take_is_refused(good, seed: int, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tamper(good, lambda d: set_entry(d, "config.seed", seed))))
    with pytest.raises(CheckpointError, match=f"its config: seed must be from 0 to {2**32 - 1}"):
        train(resume_from=path)


# -- the cap: every run that can be trained can be resumed ---------------------------------

LONGEST_FLOAT = -2.2250738585072014e-308  # nn.MAX_FLOAT_CHARS characters


def worst_checkpoint(hidden: tuple[int, ...], steps: int) -> tuple[int, int]:
    """(bytes, parameters) of the checkpoint of an Adam run evaluated after every step,
    with every float in it the longest one."""
    config = TrainConfig(
        samples=20, hidden=hidden, steps=steps, optimizer="adam", lr=0.05, test_fraction=0.25,
        eval_every=1, compiled=False,
    )  # fmt: skip
    saved = train(config).checkpoint
    assert saved is not None and len(saved.evaluations.step) == steps
    n, x = len(saved.weights), LONGEST_FLOAT
    worst = replace(
        saved,
        weights=[x] * n,
        best_weights=[x] * n,
        optimizer={**saved.optimizer, "m": [x] * n, "v": [x] * n},
        history=History([x] * steps, [x] * steps, [x] * steps),
        evaluations=Evaluations(saved.evaluations.step, *([x] * steps for _ in range(4))),
    )
    return len(worst.dumps()), n


def test_a_checkpoint_at_the_parameter_and_step_caps_fits_the_checkpoint_cap() -> None:
    """Measured with the real encoder: what a parameter (in one-neuron layers, the worst)
    and a step (with an evaluation) more cost, times the caps, plus a whole small
    checkpoint for the rest, is within the cap: every run can be resumed."""
    small, n_small = worst_checkpoint((1,) * 4, 3)
    more_layers, n_more = worst_checkpoint((1,) * 8, 3)
    more_steps, _ = worst_checkpoint((1,) * 4, 9)
    per_parameter = (more_layers - small) / (n_more - n_small)
    per_step = (more_steps - small) / 6
    assert per_parameter <= CHECKPOINT_BYTES_PER_PARAMETER
    assert per_step <= CHECKPOINT_BYTES_PER_STEP
    needed = MAX_MODEL_PARAMETERS * per_parameter + MAX_STEPS * per_step + small
    assert needed <= MAX_CHECKPOINT_BYTES < 1.2 * needed


def test_runs_over_the_step_cap_are_refused_before_they_start() -> None:
    with pytest.raises(ConfigError, match=f"steps must be from 1 to {MAX_STEPS:,}"):
        train(TrainConfig(steps=MAX_STEPS + 1))


def drive(run: Run, until: int) -> None:
    """Step ``run`` by hand to step ``until`` as train() does: evaluating when due,
    stopping early when patience says so."""
    while run.done < until and not run.finished:
        run.step()
        if run.evaluation_due():
            run.evaluate()


def same_checkpoint(a: Checkpoint, b: Checkpoint) -> bool:
    """Equal in every entry but the time taken."""
    return replace(a, seconds=0.0) == replace(b, seconds=0.0)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_run_stepped_by_hand_is_the_run_train_makes(config: TrainConfig) -> None:
    """train() drives a Run: stepping one by hand gives the very losses, evaluations,
    weights and checkpoint; a Run resumed from a snapshot goes on to the same end."""
    straight = train(config)
    run = Run(config)
    drive(run, 40)
    halfway = run.snapshot()
    assert halfway.step == 40 and halfway.history.loss == straight.history.loss[:40]
    drive(run, config.steps)
    assert straight.checkpoint is not None and same_checkpoint(run.snapshot(), straight.checkpoint)
    resumed = Run.resume(halfway)
    assert resumed.resumed_at == [40]
    drive(resumed, config.steps)
    assert [p.data for p in resumed.params] == [p.data for p in run.params]
    assert resumed.history == run.history and resumed.evaluations == run.evaluations


def test_resume_config_is_the_one_check_of_what_a_resumed_run_may_change() -> None:
    """Only steps may change, given as a whole config or as the settings given (a
    command line's flags); each conflict is named with the saved value."""
    config = TrainConfig(**SMALL)
    saved = train(config, stop_after=30, on_checkpoint=lambda c: None).checkpoint
    assert saved is not None and saved.step == 30
    assert resume_config(saved) == config
    assert resume_config(saved, {"steps": 200}) == replace(config, steps=200)
    assert resume_config(saved, replace(config, steps=50)).steps == 50
    with pytest.raises(ResumeConflict, match=r"lr 0\.5 \(saved: 1\.0\)") as info:
        resume_config(saved, {"lr": 0.5, "seed": 1337, "steps": 200})
    assert info.value.conflicts == [("lr", 0.5, 1.0)]
    with pytest.raises(ResumeConflict, match="hidden"):
        resume_config(saved, replace(config, hidden=(4,)))
    with pytest.raises(ConfigError, match="unknown config entries: width"):
        resume_config(saved, {"width": 3})
    with pytest.raises(ConfigError, match="give at least 30 steps"):
        resume_config(saved, {"steps": 29})
    with pytest.raises(ResumeConflict, match="seed 7"):  # a Run checks its config too
        Run(replace(config, seed=7), saved)
