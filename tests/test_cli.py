"""The chainrule command: demo, train, predict, lr-find, and one-line errors."""

from __future__ import annotations

import json
import os
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
    assert metrics["seconds"] > 0 and metrics["loss"] < 0.05
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
    code = main(
        [
            "train",
            "--dataset",
            "blobs",
            "--classes",
            "3",
            "--samples",
            "60",
            "--layers",
            "8",
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--steps",
            "40",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["dataset"] == "blobs" and metrics["accuracy"] > 0.9
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["metadata"]["task"] == {"loss": "softmax", "classes": 3}
    assert main(["predict", "--model", str(tmp_path / "model.json"), "--input", "2,0"]) == 0
    assert "class 0" in capsys.readouterr().out


def test_lr_find_writes_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "lr-find",
            "--min-lr",
            "0.01",
            "--max-lr",
            "10000",
            "--num",
            "5",
            "--run-steps",
            "5",
            "--samples",
            "40",
            "--out",
            str(tmp_path),
        ]
    )
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
        (["train", "--loss", "hinge", "--dataset", "spiral", "--classes", "3"], "softmax"),
        (["predict", "--model", "missing.json", "--input", "1,2"], "no such model file"),
        (["predict", "--input", "1,2"], "required: --model"),
        (["predict", "--model", "m.json", "--input", "1,abc"], "comma-separated numbers"),
        (["lr-find", "--min-lr", "10", "--max-lr", "1"], "--min-lr must be below --max-lr"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "required: COMMAND"),
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
