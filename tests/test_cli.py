"""The chainrule command: demo, train, predict, lr-find, and one-line errors."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from chainrule.cli import main


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "chainrule.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def assert_real_plot(path: Path) -> None:
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert np.asarray(image).std() > 0.05  # not a blank canvas


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = run("demo", "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "training accuracy 100.0%" in done.stdout
    return out


def test_demo_writes_metrics_model_and_plots(demo_dir: Path) -> None:
    metrics = json.loads((demo_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["steps"] == 100
    assert metrics["loss"] < 0.05 and metrics["engine"] == "compiled"
    assert_real_plot(demo_dir / "loss.png")
    assert_real_plot(demo_dir / "decision_boundary.png")
    assert sorted(p.name for p in demo_dir.iterdir()) == [
        "decision_boundary.png",
        "loss.png",
        "metrics.json",
        "model.json",
    ]


def test_predict_prints_class_and_score(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(demo_dir / "model.json")
    assert main(["predict", "--model", model, "--input=-1.0,0.5", "--input", "1.5,-0.4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("class 0  score ") and lines[1].startswith("class 1  score ")


def test_train_multiclass_uses_softmax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = "train --dataset blobs --classes 3 --samples 60 --layers 8 --optimizer adam"
    args += " --lr 0.05 --steps 40 --no-progress"
    code = main([*args.split(), "--out", str(tmp_path)])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["dataset"] == "blobs" and metrics["accuracy"] > 0.9
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["metadata"]["task"] == {"loss": "softmax", "classes": 3}
    assert main(["predict", "--model", str(tmp_path / "model.json"), "--input", "2,0"]) == 0
    assert "class 0" in capsys.readouterr().out


def test_lr_find_writes_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = "lr-find --min-lr 0.01 --max-lr 10000 --num 5 --run-steps 5 --samples 40"
    code = main([*args.split(), "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "diverged" in out and "suggested learning rates:" in out
    assert_real_plot(tmp_path / "lr_find.png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--lr", "-1"], "--lr: '-1' must be greater than 0"),
        (["train", "--lr", "nan"], "not a finite number"),
        (["train", "--dataset", "iris"], "invalid choice: 'iris'"),
        (["train", "--layers", "16,x"], "comma-separated list of layer sizes"),
        (["train", "--steps", "0"], "--steps: '0' must be at least 1"),
        (["train", "--classes", "3"], "has 2 classes"),
        (["train", "--optimizer", "adam", "--momentum", "0.9"], "momentum applies to SGD only"),
        (["train", "--optimizer", "adam", "--lr", "1.0"], "too large for Adam"),
        (["train", "--momentum", "1"], "momentum must be in [0, 1)"),
        (["train", "--patience", "3", "--test-fraction", "0"], "needs a test fraction above 0"),
        (["train", "--patience", "0"], "--patience: '0' must be at least 1"),
        (["train", "--loss", "hinge", "--dataset", "spiral", "--classes", "3"], "softmax"),
        (["predict", "--model", "missing.json", "--input", "1,2"], "no such model file"),
        (["predict", "--input", "1,2"], "required: --model"),
        (["predict", "--model", "m.json", "--input", "1,abc"], "comma-separated numbers"),
        (["lr-find", "--min-lr", "10", "--max-lr", "1"], "--min-lr must be below --max-lr"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("chainrule")


@pytest.mark.parametrize("damage", ["truncate", "tamper", "nan"])
def test_predict_on_a_bad_model_file_exits_2_with_one_line(
    demo_dir: Path, tmp_path: Path, damage: str
) -> None:
    text = (demo_dir / "model.json").read_text()
    bad = tmp_path / "model.json"
    if damage == "truncate":
        bad.write_text(text[: len(text) // 3])
    elif damage == "tamper":
        doc = json.loads(text)
        doc["layers"][1]["weights"][0].pop()
        bad.write_text(json.dumps(doc))
    else:
        bad.write_text(text.replace('"biases": [\n  ', '"biases": [\n  NaN, ', 1))
    done = run("predict", "--model", str(bad), "--input", "0.5,0.25")
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("chainrule predict: error: ") and "Traceback" not in done.stderr


def test_help_and_version() -> None:
    done = run("--help")
    assert done.returncode == 0 and "demo" in done.stdout and "lr-find" in done.stdout
    assert run("--version").stdout.startswith("chainrule ")
    train_help = run("train", "--help").stdout
    for flag in ("--dataset", "--layers", "--optimizer", "--schedule", "--batch-size", "--seed"):
        assert flag in train_help


def test_plain_chainrule_prints_the_help() -> None:
    done = run()
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == run("--help").stdout and "usage: chainrule" in done.stdout


def test_train_defaults_per_dataset_and_optimizer_shown_in_help() -> None:
    from chainrule.cli import build_parser, train_config

    def config(*args: str):
        return train_config(build_parser().parse_args(["train", *args]))

    moons, spiral, blobs = config(), config("--dataset", "spiral"), config("--dataset", "blobs")
    assert (moons.samples, moons.classes, moons.test_fraction) == (100, 2, 0.2)
    assert (spiral.samples, spiral.classes, blobs.classes) == (300, 3, 3)
    assert (moons.lr, config("--optimizer", "adam").lr) == (1.0, 0.05)
    given = config("--dataset", "spiral", "--samples", "90", "--classes", "4", "--lr", "0.2")
    assert (given.samples, given.classes, given.lr) == (90, 4, 0.2)
    assert config("--test-fraction", "0").test_fraction == 0.0
    lr_find = train_config(build_parser().parse_args(["lr-find"]))
    assert lr_find.test_fraction == 0.0  # lr-find compares training losses: it keeps all
    text = " ".join(run("train", "--help").stdout.split())
    for shown in ("blobs, spiral 3", "spiral 300", "sgd 1, adam 0.05", "(0.2)", "--patience N"):
        assert shown in text


def test_train_holds_out_a_fifth_and_reports_test_figures(tmp_path: Path, capsys) -> None:
    args = ["train", "--samples", "40", "--layers", "4", "--steps", "3", "--eval-every", "2"]
    args += ["--patience", "50"]
    assert main([*args, "--no-progress", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["test_fraction"] == 0.2 and metrics["config"]["patience"] == 50
    assert metrics["evaluations"]["step"] == [2, 3]
    assert metrics["stopped_early"] is False and metrics["best_step"] in (2, 3)
    line = capsys.readouterr().out.splitlines()[0]
    assert f"test accuracy {metrics['test_accuracy']:.1%}" in line
    assert f"test loss {metrics['test_loss']:.4f}" in line and "stopped early" not in line


def test_train_says_when_it_stopped_early(tmp_path: Path, capsys) -> None:
    args = "train --samples 40 --layers 32,32 --steps 300 --eval-every 5 --patience 3"
    assert main([*args.split(), "--no-progress", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stopped_early"] is True
    line = capsys.readouterr().out.splitlines()[0]
    assert f"for {metrics['steps']} steps" in line
    assert f"stopped early; kept the weights of step {metrics['best_step']}" in line


# -- chainrule graph ----------------------------------------------------------------------


def test_graph_prints_value_and_gradient_and_writes_svg(tmp_path: Path, capsys) -> None:
    out = tmp_path / "poly.svg"
    assert main(["graph", "3*x**2 - 4*x + 5", "--at", "x=3", "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["3*x**2 - 4*x + 5 = 20", "d/dx = 14"]
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "data 3.0000" in svg and "grad 14.0000" in svg and "**2" in svg


def test_graph_default_file_other_formats_and_layout(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "tanh(a*b + c)", "--at", "a=2,b=-3", "--at=c=6.88"]) == 0
    assert (tmp_path / "graph.svg").exists()
    assert main(["graph", "a/b", "--at", "a=1,b=2", "--format", "dot", "--rankdir", "TB"]) == 0
    assert "rankdir=TB" in (tmp_path / "graph.dot").read_text()
    assert main(["graph", "exp(x)", "--at", "x=1", "-o", "e.png"]) == 0
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "d/da = -1.50291" in capsys.readouterr().out  # (1 - tanh²) * b


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "attribute access"),
        ("os.system('id')", "attribute access `os.system`"),
        ("x.real", "attribute access `x.real`"),
        ("open('f')", "unknown function `open`"),
        ("eval('1')", "unknown function `eval`"),
        ("lambda: 1", "lambda"),
        ("[x for x in y]", "not allowed"),
        ("a_b + 1", "underscores"),
        ("x +", "invalid syntax"),
        ("log(0)", "log: operand must be positive"),
        ("y * 2", "no value for `y`"),
    ],
)
def test_graph_refuses_with_one_line_and_runs_nothing(
    expression: str, message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    monkeypatch.setattr("builtins.open", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(tmp_path)
    assert main(["graph", expression, "--at", "x=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule graph: error: ") and err.count("\n") == 1
    assert message in err
    assert calls == [] and not list(tmp_path.iterdir())


def test_graph_bad_assignments(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "x*2", "--at", "x=1,z=2"]) == 2
    assert "no variable `z`" in capsys.readouterr().err
    assert main(["graph", "x*2", "--at", "x=abc"]) == 2
    assert "must be a number" in capsys.readouterr().err
    assert main(["graph", "x*2", "--at", "x=1", "--at", "x=2"]) == 2
    assert "gives `x` twice" in capsys.readouterr().err


def test_graph_without_the_dot_program(tmp_path: Path) -> None:
    """SVG needs Graphviz's `dot`: a clear hint when it is missing; --format dot still works."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    svg = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "graph", "x*x", "--at", "x=2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert svg.returncode == 2 and svg.stderr.count("\n") == 1
    assert "install Graphviz" in svg.stderr and "Traceback" not in svg.stderr
    dot = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "graph", "x*x", "--at", "x=2", "--format", "dot"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert dot.returncode == 0 and (tmp_path / "graph.dot").read_text().startswith("digraph")


def test_train_is_compiled_by_default_and_eager_on_request(tmp_path: Path) -> None:
    base = ["train", "--samples", "40", "--layers", "8", "--steps", "10", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "c")]) == 0
    assert main([*base, "--eager", "--out", str(tmp_path / "e")]) == 0
    compiled = json.loads((tmp_path / "c" / "metrics.json").read_text())
    eager = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert (compiled["engine"], eager["engine"]) == ("compiled", "eager")
    assert (compiled["config"]["compiled"], eager["config"]["compiled"]) == (True, False)
    for a, b in zip(compiled["history"]["loss"], eager["history"]["loss"], strict=True):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b))


# -- one line and exit 2 for bad input; bugs are bugs -----------------------------------

SMALL_NET = ["--samples", "20", "--layers", "4"]  # lr-find sets the steps itself
SMALL = [*SMALL_NET, "--steps", "3"]
TINY = [*SMALL, "--no-progress"]


def one_error_line(err: str, command: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"chainrule {command}: error: "), err
    return err


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    from chainrule.nn import MLP, save

    return save(MLP(2, [3, 1], rng=random.Random(0)), tmp_path / "model.json")


def rewrite(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def nested_lists(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: rewrite(p, lambda d: d.update(metadata={"task": 5})), "must be an object"),
        (
            lambda p: rewrite(p, lambda d: d.update(metadata={"task": {"loss": "softmax"}})),
            "needs 2 model outputs, but the model has 1",
        ),
        (nested_lists, "nested too deeply"),
        (lambda p: Path("/dev/zero"), "larger than 4,096 bytes"),  # not read on and on
    ],
    ids=["task-5", "softmax-on-one-output", "nested-lists", "dev-zero"],
)
def test_predict_on_a_hostile_model_file_is_one_line(
    small_model: Path, damage, words: str, capsys, monkeypatch
) -> None:

    model = damage(small_model)
    if model == Path("/dev/zero"):  # a small cap keeps the test light (64 MiB by default)
        monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_BYTES", 4096)
    assert main(["predict", "--model", str(model), "--input", "0.5,0.25"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and words in one_error_line(captured.err, "predict")


HUGE_NUMBERS = {"10**400": str(10**400), "5000-digits": "9" * 5000}


@pytest.mark.parametrize("number", HUGE_NUMBERS.values(), ids=HUGE_NUMBERS.keys())
def test_a_number_no_float_can_hold_is_a_bad_file_for_every_command(
    small_model: Path, number: str, tmp_path: Path, capsys
) -> None:
    """predict, export and train --resume: exit 2, one line naming the file and entry."""

    def put(path: Path, change) -> None:
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc).replace('"NUMBER"', number))

    put(small_model, lambda d: d["layers"][1]["biases"].__setitem__(0, "NUMBER"))
    run_dir = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run_dir)]) == 0
    checkpoint = run_dir / "checkpoint.json"
    put(checkpoint, lambda d: d.update(seconds="NUMBER"))
    capsys.readouterr()
    commands = {
        "predict": (["--model", str(small_model), "--input", "0.5,0.25"], small_model),
        "export": ([str(small_model), "-o", str(tmp_path / "m.safetensors")], small_model),
        "train": (["--resume", str(run_dir), "--no-progress"], checkpoint),
    }
    for command, (args, path) in commands.items():
        assert main([command, *args]) == 2
        captured = capsys.readouterr()
        err = one_error_line(captured.err, command)
        entry = "seconds" if command == "train" else r"layers\[1\]\.biases\[0\]"
        assert re.search(f"{re.escape(str(path))}: the entry {entry} holds .* too large", err)
        assert captured.out == ""
    assert not (tmp_path / "m.safetensors").exists()


def test_train_refuses_a_model_over_the_parameter_cap_before_it_starts(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    assert main(["train", "--layers", "2000,2000", "--out", str(out)]) == 2
    err = one_error_line(capsys.readouterr().err, "train")
    assert "the model would have 4,010,001 parameters, more than chainrule loads" in err
    assert "(4,000,000, chainrule.nn.MAX_MODEL_PARAMETERS)" in err
    assert os.listdir(tmp_path) == []


def test_predict_without_task_metadata_infers_it(small_model: Path, capsys) -> None:
    rewrite(small_model, lambda d: d.pop("metadata"))
    assert main(["predict", "--model", str(small_model), "--input", "0.5,0.25"]) == 0
    assert capsys.readouterr().out.startswith("class ")


def test_a_library_bug_is_not_reported_as_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    from chainrule import training

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(training, "train", broken)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("chainrule train: internal error: ValueError: an internal inconsistency")
    assert "bug in chainrule" in err and "--debug" in err
    for argv in (["train", *TINY, "--debug"], ["--debug", "train", *TINY]):
        with pytest.raises(ValueError, match="an internal inconsistency"):
            main([*argv, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# -- divergence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "100", "--layers", "8,8"],
        ["--lr", "1e15", "--activation", "linear", "--layers", "4"],
        ["--lr", "1e15", "--activation", "linear", "--layers", "4", "--eager"],
    ],
    ids=["explodes", "overflows", "overflows-eager"],
)
def test_train_stops_on_divergence_and_writes_nothing(args, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", "--samples", "20", "--steps", "30", "--no-progress", *args,
                 "--out", str(out)])  # fmt: skip
    assert code == 2
    err = one_error_line(capsys.readouterr().err, "train")
    assert "training diverged at step" in err and "chainrule lr-find" in err
    assert os.listdir(tmp_path) == []  # no model, no half-written folder


def test_lr_find_when_every_rate_diverges_suggests_nothing(tmp_path: Path, capsys) -> None:
    args = "lr-find --activation linear --min-lr 1e10 --max-lr 1e15 --num 3 --run-steps 5"
    assert main([*args.split(), *SMALL_NET, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("diverged") == 3 and "suggested" not in captured.out
    assert "every learning rate from 1e+10 to 1e+15 diverged" in one_error_line(
        captured.err, "lr-find"
    )
    assert_real_plot(tmp_path / "lr_find.png")  # the evidence is still drawn


# -- outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "trainer"),
    [(["train", *TINY], "train"), (["gpt", "train", "--steps", "3", "--no-progress"], "train_gpt")],
    ids=["train", "gpt-train"],
)
def test_out_is_checked_before_training(
    command: list[str], trainer: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    from chainrule import training

    monkeypatch.setattr(training, trainer, lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "file").write_text("mine")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    name = " ".join(c for c in command[:2] if not c.startswith("-"))
    for out, words in [
        ("file", "is a file, not a folder"),
        ("file/run", "a part of that path is a file"),
        ("notes", "holds files that are not results of a run (todo.txt)"),
    ]:
        assert main([*command, "--out", str(tmp_path / out)]) == 2
        assert words in one_error_line(capsys.readouterr().err, name)
    if trainer == "train":
        assert main(["lr-find", *SMALL_NET, "--out", str(tmp_path / "file")]) == 2
        assert "is a file" in one_error_line(capsys.readouterr().err, "lr-find")
    assert (tmp_path / "file").read_text() == "mine"
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["file", "notes"]


def test_a_run_that_fails_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["checkpoint.json", "decision_boundary.png", "loss.png",
                              "metrics.json", "model.json"]  # fmt: skip
    assert main(["train", *TINY, "--steps", "30", "--lr", "1e9", "--out", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # diverged: nothing
    assert os.listdir(tmp_path) == ["run"]  # no staging folder left behind
    assert main(["train", *TINY, "--seed", "7", "--out", str(out)]) == 0  # replaces the run
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 7
    assert sorted(os.listdir(out)) == sorted(before)
    assert os.listdir(tmp_path) == ["run"]


def test_graph_to_standard_output(tmp_path: Path) -> None:
    done = run("graph", "x*2", "--at", "x=3", "-o", "-", "--format", "dot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph chainrule {") and "x*2 = 6" not in done.stdout
    assert done.stderr.splitlines() == ["x*2 = 6", "d/dx = 2"]
    assert os.listdir(tmp_path) == []


def test_graph_output_names_and_formats(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "x*2", "--at", "x=1", "-o", "out.SVG"]) == 0
    assert (tmp_path / "out.SVG").read_bytes().startswith(b"<?xml")
    assert main(["graph", "x*2", "--at", "x=1", "-o", "noext"]) == 0  # svg by default
    assert (tmp_path / "noext").read_bytes().startswith(b"<?xml")
    assert main(["graph", "x*2", "--at", "x=1", "-o", "g.gv", "--format", "dot"]) == 0
    capsys.readouterr()
    for args, words in [
        (["-o", "out.svg", "--format", "png"], "-o out.svg asks for svg but --format is png"),
        (["-o", "out.txt"], "cannot tell the drawing format from '.txt'"),
        (["-o", "missing/g.svg"], "missing does not exist"),
        (["-o", "out.SVG/g.svg"], "out.SVG is not a folder"),
        (["-o", "."], "is a folder; name a file"),
    ]:
        assert main(["graph", "x*2", "--at", "x=1", *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and words in one_error_line(captured.err, "graph")
    assert sorted(os.listdir(tmp_path)) == ["g.gv", "noext", "out.SVG"]


# -- chainrule graph: the details --------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-x", "--at", "x=2", "--format", "dot"],
        ["--at", "x=2", "-x", "--format", "dot"],
        ["--at=x=2", "--format", "dot", "-x"],
        ["--format", "dot", "-x", "-o", "g.dot", "--at", "x=2"],
        ["--at", "x=2", "--format", "dot", "--", "-x"],  # the explicit way still works
    ],
)
def test_graph_expression_may_start_with_a_minus(argv, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", *argv]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["-x = -2", "d/dx = -1"]
    assert main(["graph", "-x*3", "-y", "--at", "x=1,y=2", "--format", "dot"]) == 2  # one EXPR
    assert "unrecognized arguments: -y" in capsys.readouterr().err


def test_graph_prints_zero_not_minus_zero(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "x*0", "--at=x=-2", "--format", "dot"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["x*0 = 0", "d/dx = 0"]


def test_graph_over_the_limit_names_the_flag(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    expression = "+".join(["x"] * 600)  # a flat sum: not "too deep"
    assert main(["graph", expression, "--at", "x=1", "--format", "dot"]) == 2
    captured = capsys.readouterr()
    err = one_error_line(captured.err, "graph")
    assert "600 Values, more than --max-nodes 500" in err and "--max-nodes 600" in err
    assert "draw_dot" not in err and captured.out == "" and os.listdir(tmp_path) == []
    assert main(["graph", expression, "--at", "x=1", "--format", "dot", "--max-nodes", "600"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "d/dx = 600"


def test_graph_prints_nothing_when_the_drawing_fails(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")  # no Graphviz `dot` program
    assert main(["graph", "x*2", "--at", "x=1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "install Graphviz" in one_error_line(captured.err, "graph")
    assert os.listdir(tmp_path) == []


# -- no command writes over a file it reads -----------------------------------------------


def test_predict_never_writes_over_its_model_or_its_points(small_model: Path, capsys) -> None:
    folder = small_model.parent
    points = folder / "points.csv"
    points.write_text("x1,x2\n0.5,0.25\n")
    (folder / "link.csv").symlink_to(points)
    os.link(small_model, folder / "hard.json")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    model, given = str(small_model), ["--input-file", str(points)]
    for output, words in [
        (model, "is --model, the model being read"),
        (str(folder / "." / "hard.json"), "is --model, the model being read"),  # a hard link
        (str(points), "is --input-file, the points being read"),
        (str(folder / "link.csv"), "is --input-file, the points being read"),  # a symlink
    ]:
        assert main(["predict", "--model", model, *given, "-o", output]) == 2, output
        captured = capsys.readouterr()
        assert captured.out == "" and words in one_error_line(captured.err, "predict")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written
    assert main(["predict", "--model", model, *given, "-o", str(folder / "out.csv")]) == 0
    assert (folder / "out.csv").read_text().startswith("class,score\n")


def test_a_private_run_stays_private_when_trained_again(tmp_path: Path) -> None:
    """A run folder and its files made private (0700, 0600) stay so when a new run
    replaces them, though the first checkpoint leaves the folder holding itself alone."""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    out.chmod(0o700)
    for path in out.iterdir():
        path.chmod(0o600)
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        name: 0o600 for name in os.listdir(out)
    }


# -- seeds --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1" * 5000, "1.5"])
@pytest.mark.parametrize(
    "command",
    [["train"], ["lr-find"], ["gpt", "train"], ["gpt", "sample", "--model", "m.json"]],
    ids=["train", "lr-find", "gpt-train", "gpt-sample"],
)
def test_a_seed_outside_0_to_2_32_is_refused_in_one_line(
    command, seed, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # were it taken, the run's default folder is in here
    assert main([*command, "--seed", seed]) == 2
    err = one_error_line(capsys.readouterr().err, " ".join(c for c in command[:2] if c[0] != "-"))
    assert f"--seed: seed must be from 0 to {2**32 - 1} (a whole number of 32 bits)" in err


def test_the_python_api_refuses_a_bad_seed_before_any_work(tmp_path: Path, capsys) -> None:
    from chainrule.training import GPTConfig, TrainConfig, lr_find, train

    for bad in (-1, 2**32, 1.0, True):
        with pytest.raises(ValueError, match=f"seed must be from 0 to {2**32 - 1} "):
            TrainConfig(seed=bad).validate()  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=f"seed must be from 0 to {2**32 - 1} "):
            GPTConfig(seed=bad).validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be"):
        train(TrainConfig(seed=-1, steps=1))
    with pytest.raises(ValueError, match="seed must be"):
        lr_find(TrainConfig(seed=2**32))
    assert main(["train", *TINY, "--seed", "4294967295", "--out", str(tmp_path)]) == 0  # the top
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["seed"] == 2**32 - 1


# -- lr-find takes only the flags it uses ---------------------------------------------------


def test_lr_find_lists_only_the_flags_it_uses_and_refuses_the_others(capsys) -> None:
    shown = run("lr-find", "--help").stdout
    for flag in ("--min-lr", "--max-lr", "--run-steps", "--optimizer", "--seed"):
        assert flag in shown
    for flag in ("--lr ", "--steps ", "--schedule "):  # each run's own: not listed
        assert flag not in shown
    for flag, value, hint in [
        ("--lr", "0.1", "tries the learning rates from --min-lr to --max-lr"),
        ("--steps", "50", "runs --run-steps steps at each learning rate"),
        ("--schedule", "cosine", "keeps its learning rate constant"),
    ]:
        assert main(["lr-find", flag, value]) == 2
        assert hint in one_error_line(capsys.readouterr().err, "lr-find")


def test_help_lists_what_expr_graph_and_export_define(capsys, monkeypatch) -> None:
    """The functions an expression may call, the graph layouts and the export formats
    in --help are expr's, graph's and export's own lists, not copies that drift."""
    from types import MappingProxyType

    from chainrule import export, expr, graph

    monkeypatch.setattr(expr, "FUNCTIONS", MappingProxyType({**expr.FUNCTIONS, "cube": abs}))
    monkeypatch.setattr(graph, "RANKDIRS", (*graph.RANKDIRS, "BT"))
    monkeypatch.setitem(export.EXPORT_FORMATS, "npz", ".npz")
    with pytest.raises(SystemExit):
        main(["graph", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"functions ({' '.join(expr.FUNCTIONS)});" in shown and "silu cube);" in shown
    assert "--rankdir {LR,TB,BT}" in shown
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--format {safetensors,onnx,npz}" in shown
    assert "safetensors or onnx or npz (from the output's suffix" in shown


# -- chainrule train --data: a user's own points ------------------------------------------


def write_points(
    path: Path, n: int, features: int = 2, header: str = "", signed: bool = False
) -> Path:
    """``n`` points of ``features`` normal numbers; class 1 where their sum is positive
    (linearly separable), labelled 0/1 or, ``signed``, -1/1; a ``header`` line if given."""
    X = np.random.default_rng(0).normal(size=(n, features))
    y = (X.sum(axis=1) > 0).astype(int)
    y = 2 * y - 1 if signed else y
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.17g", header=header)
    if header:  # numpy writes "# x1,x2": a header line is the names alone
        path.write_text(path.read_text().removeprefix("# "))
    return path


CSV_RUN = ["--layers", "8", "--steps", "60", "--batch-size", "32", "--no-progress"]
CSV_TINY = ["--layers", "4", "--steps", "3", "--no-progress"]  # no --samples: the file's


def test_train_on_a_csv_file_writes_the_run_and_predict_takes_its_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points, out = write_points(tmp_path / "points.csv", 200), tmp_path / "run"
    assert main(["train", "--data", str(points), *CSV_RUN, "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.json",
        "decision_boundary.png",
        "loss.png",
        "metrics.json",
        "model.json",
    ]
    assert_real_plot(out / "loss.png")
    assert_real_plot(out / "decision_boundary.png")
    metrics = json.loads((out / "metrics.json").read_text())
    config = metrics["config"]
    assert (config["data"], config["dataset"]) == (os.path.abspath(points), "csv")
    assert (config["samples"], config["classes"], config["features"]) == (200, 2, 2)
    assert len(metrics["evaluations"]["step"]) == 6  # held out, as for a generated set
    assert metrics["test_accuracy"] >= 0.9  # a separable set: far above chance (0.5)
    model = str(out / "model.json")
    assert main(["predict", "--model", model, "--input", "2,1", "--input=-1,-2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("class 1 ") and lines[1].startswith("class 0 ")


def test_a_header_line_and_labels_of_minus_1_and_1_train_the_same_model(tmp_path: Path) -> None:
    """The header is optional, and -1/1 labels are 0/1: the same points train alike."""
    models = []
    for header, signed in [("", False), ("x1,x2,label", False), ("a,b,c", True)]:
        folder = tmp_path / f"{bool(header)}{signed}"
        folder.mkdir()
        points = write_points(folder / "points.csv", 60, header=header, signed=signed)
        flags = [*CSV_TINY, "--batch-size", "8", "--out", str(folder / "run")]
        assert main(["train", "--data", str(points), *flags]) == 0
        models.append((folder / "run" / "model.json").read_bytes())
    assert models[0] == models[1] == models[2]


def test_points_of_3_features_train_a_3_input_model_and_no_decision_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points, out = write_points(tmp_path / "p3.csv", 200, features=3, signed=True), tmp_path / "r"
    assert main(["train", "--data", str(points), *CSV_RUN, "--eager", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "no decision_boundary.png: the points have 3 features" in said
    assert "decision_boundary.png," not in said.splitlines()[1]  # the files written
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.json",
        "loss.png",
        "metrics.json",
        "model.json",
    ]
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.9
    model = str(out / "model.json")
    assert main(["predict", "--model", model, "--input", "1,1,1", "--input=-1,-1,0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("class 1 ") and lines[1].startswith("class 0 ")
    assert main(["predict", "--model", model, "--input", "1,1"]) == 2  # its width is 3
    assert "the model takes 3 numbers, got 2" in capsys.readouterr().err


BAD_DATA = {
    "empty": (b"", "bad.csv line 1: the file ends with no rows"),
    "header only": (b"x1,x2,label\n", "bad.csv line 2: the file ends after the header"),
    "one column": (b"1\n0\n", "bad.csv line 1: one number a line; expected the features"),
    "ragged": (b"1,2,0\n\n1,2\n", "bad.csv line 3: expected 3 numbers as on line 1, got '1,2'"),
    "wider than the header": (
        b"x,y,label\n1,2,0\n1,2,1,4\n",
        "bad.csv line 3: expected 3 numbers as the header on line 1 names, got '1,2,1,4' (4 ",
    ),
    "not a number": (b"1,2,0\n1,a,1\n", "bad.csv line 2: expected 3 numbers as on line 1, got"),
    "nan": (b"1,2,0\nnan,2,1\n", "line 2: expected 3 numbers as on line 1, got 'nan,2,1' ('nan"),
    "inf": (b"1,2,0\n1,2,1\n1,-inf,1\n", "line 3: expected 3 numbers as on line 1, got '1,-inf"),
    "not UTF-8": (b"1,2,0\n1,\xff,1\n", "bad.csv line 2: not UTF-8 text"),
    "label not whole": (b"1,2,0\n1,2,0.5\n", "bad.csv line 2: label 0.5 is not a whole number"),
    "labels 0 and -1": (b"1,2,1\n1,2,0\n3,4,-1\n", "line 2: label 0, but line 3 has label -1"),
    "negative label": (b"1,2,0\n1,2,1\n1,2,-2\n", "bad.csv line 3: label -2 is not a class"),
    "one class": (b"1,2,1\n3,4,1\n", "bad.csv line 1: label 1, as on every line; a classifier"),
    "labels from 1": (b"1,2,1\n3,4,2\n5,6,3\n", "line 3: label 3, but no line has label 0: each"),
    "a label skipped": (b"1,2,0\n3,4,3\n5,6,1\n", "line 2: label 3, but no line has label 2: ea"),
}


@pytest.mark.parametrize(("content", "words"), BAD_DATA.values(), ids=BAD_DATA.keys())
def test_a_bad_data_file_is_one_line_naming_its_line_and_writes_nothing(
    content: bytes, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "bad.csv"), *CSV_TINY, "--out", str(out)]) == 2
    assert words in one_error_line(capsys.readouterr().err, "train")
    assert not out.exists()


def test_a_data_file_that_is_missing_or_a_folder_is_one_line(tmp_path: Path, capsys) -> None:
    for path, words in [
        (tmp_path / "none.csv", f"--data {tmp_path / 'none.csv'} does not exist"),
        (tmp_path, f"--data {tmp_path} is a folder; name a CSV file"),
    ]:
        assert main(["train", "--data", str(path), "--no-progress"]) == 2
        assert words in one_error_line(capsys.readouterr().err, "train")


@pytest.mark.parametrize(
    "flag", [["--dataset", "moons"], ["--samples", "50"], ["--noise", "0.1"], ["--classes", "3"]]
)
def test_data_and_a_generated_datasets_flags_are_refused_together(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points = write_points(tmp_path / "points.csv", 20)
    assert main(["train", "--data", str(points), *flag, *CSV_TINY]) == 2
    err = one_error_line(capsys.readouterr().err, "train")
    assert f"--data and {flag[0]} do not go together: --data trains on the points" in err


def test_train_help_says_what_a_data_file_holds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--data FILE.csv train on your own points instead of a generated dataset" in shown
    assert "its features then its label" in shown and "is a header" in shown
    assert "0 and 1 or -1 and 1 for two classes, 0..k-1 for k classes" in shown
    assert "decision_boundary.png only for points of 2 features" in shown
