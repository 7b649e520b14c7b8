"""`chainrule train`: checkpoints, --resume, --stop-after, and Ctrl-C (a real SIGINT)."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainrule.cli import main
from chainrule.training import load_checkpoint

# A small run that uses every piece of state: held-out data (the default 0.2),
# mini-batches, Adam's moments and a decaying schedule.
RUN = ["train", "--samples", "40", "--layers", "8", "--optimizer", "adam", "--batch-size", "8",
       "--eval-every", "5", "--no-progress"]  # fmt: skip


def results(out: Path) -> tuple[dict[str, object], bytes]:
    """What must match between two runs: the history, evaluations and the model file."""
    metrics = json.loads((out / "metrics.json").read_text())
    same = {key: metrics[key] for key in ("history", "evaluations", "loss", "test_loss")}
    return same, (out / "model.json").read_bytes()


def resume_command(line: str) -> list[str]:
    """The words after `chainrule` in the command a message says to run."""
    command = line.rsplit(": ", 1)[1].strip()
    assert command.startswith("chainrule train --resume "), line
    return shlex.split(command)[1:]


def test_50_steps_then_resumed_for_50_more_equal_100_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line's path; tests/test_checkpoints.py runs it eager and compiled."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*RUN, "--steps", "100", "--out", str(straight)]) == 0
    capsys.readouterr()
    assert main([*RUN, "--steps", "100", "--stop-after", "50", "--out", str(split)]) == 0
    said = capsys.readouterr().out.strip()
    assert said.startswith("stopped after step 50 of 100;"), said
    assert os.listdir(split) == ["checkpoint.json"]  # a run in progress: the checkpoint alone
    assert main([*resume_command(said), "--no-progress"]) == 0
    assert "resumed at step 50" in capsys.readouterr().out
    assert results(split) == results(straight)  # every loss and weight, bit for bit
    metrics = json.loads((split / "metrics.json").read_text())
    assert metrics["resumed_at"] == [50] and metrics["steps"] == 100
    assert load_checkpoint(split / "checkpoint.json").step == 100


def test_resume_takes_the_saved_settings_and_refuses_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--steps", "6", "--lr", "0.02", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    for flags, words in [
        (["--lr", "0.5"], "--lr conflicts with the run being resumed (--lr 0.02)"),
        (["--layers", "4,4"], "--layers conflicts with the run being resumed (--layers 8)"),
        (["--eager"], "--eager conflicts with the run being resumed (engine compiled)"),
        (["--out", str(tmp_path / "elsewhere")], "a resumed run writes into its own folder"),
    ]:
        assert main(["train", "--resume", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert f"--resume {tmp_path / 'nothing'} does not exist" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    # the same settings again are no conflict; --steps trains longer
    assert (
        main(["train", "--resume", str(out), "--lr", "0.02", "--steps", "9", "--no-progress"]) == 0
    )
    assert "for 9 steps" in capsys.readouterr().out
    assert len(json.loads((out / "metrics.json").read_text())["history"]["loss"]) == 9


def test_a_broken_checkpoint_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.json").write_text('{"format": "chainrule.checkpoint", "vers')
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{out / 'checkpoint.json'}: not a valid checkpoint (truncated or corrupt JSON" in err


def test_ctrl_c_after_training_leaves_a_checkpoint_that_finishes_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chainrule import plots

    out = tmp_path / "run"
    out.mkdir()
    for name in ("metrics.json", "model.json", "loss.png"):  # a previous run's results
        (out / name).write_text("old")

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # after metrics.json, model.json and loss.png were staged

    monkeypatch.setattr(plots, "plot_decision_boundary", interrupt)
    assert main([*RUN, "--steps", "12", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("chainrule train: interrupted after step 12 of 12;"), err
    assert os.listdir(out) == ["checkpoint.json"]  # the new run's checkpoint, never a mix
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no staging folder left behind
    monkeypatch.undo()
    assert main([*resume_command(err), "--no-progress"]) == 0
    assert "is complete (12 steps); writing its results" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["resumed_at"] == [12]
    assert sorted(os.listdir(out)) == ["checkpoint.json", "decision_boundary.png", "loss.png",
                                       "metrics.json", "model.json"]  # fmt: skip


def test_the_progress_bar_does_not_flood_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a for a in RUN if a != "--no-progress"]
    assert main([*args, "--steps", "40", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err  # not a terminal: one line at the start, one at the end
    updates = [u for u in err.replace("\n", "\r").split("\r") if u.strip()]
    assert "40/40" in err and len(updates) <= 3, err


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["sigint", "sigterm"],
)
def test_a_real_sigint_or_sigterm_saves_a_checkpoint_and_says_how_to_resume(
    tmp_path: Path, signum: int, code: int, said: str
) -> None:
    """`chainrule train` in a subprocess gets SIGINT (Ctrl-C) or SIGTERM (`kill`) mid-run:
    exit 130 or 143, one line with the command to resume, a valid checkpoint and nothing
    half-written; resuming gives the run that was never interrupted."""
    out = tmp_path / "run"
    flags = [*RUN, "--schedule", "constant"]  # an lr that does not depend on --steps
    process = subprocess.Popen(
        [sys.executable, "-m", "chainrule.cli", *flags, "--steps", "1000000",
         "--checkpoint-every", "1", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not inherited SIG_IGN
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.json").exists():  # the run is under way
            assert time.monotonic() < deadline, "no checkpoint appeared"
            with pytest.raises(subprocess.TimeoutExpired):  # still running
                process.wait(timeout=0.02)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chainrule train: {said} after step "), stderr
    assert os.listdir(out) == ["checkpoint.json"]  # no temporary file left
    assert os.listdir(tmp_path) == ["run"]  # no staging folder left
    step = load_checkpoint(out / "checkpoint.json").step  # valid, every entry checked
    assert f"after step {step} of 1000000;" in lines[0]
    more = str(step + 3)
    assert main([*resume_command(lines[0]), "--steps", more, "--no-progress"]) == 0
    assert main([*flags, "--steps", more, "--out", str(tmp_path / "straight")]) == 0
    assert results(out) == results(tmp_path / "straight")


# -- a new run does not delete an unfinished one ---------------------------------------


def test_a_new_run_refuses_a_folder_holding_an_unfinished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--steps", "6", "--stop-after", "3", "--out", str(out)]) == 0
    checkpoint = (out / "checkpoint.json").read_bytes()
    capsys.readouterr()
    for command in ([*RUN, "--steps", "6"], ["demo", "--no-progress"]):
        assert main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"--out {out} holds an unfinished run (step 3 of 6); resume it with: " in err
        assert f"chainrule train --resume {out}" in err and "--force" in err
        assert os.listdir(out) == ["checkpoint.json"]
        assert (out / "checkpoint.json").read_bytes() == checkpoint  # kept, untouched
    assert main(["train", "--resume", str(out), "--force"]) == 2
    assert "--force starts a new run" in capsys.readouterr().err
    assert main([*RUN, "--steps", "4", "--force", "--out", str(out)]) == 0  # starts over
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    assert main([*RUN, "--steps", "5", "--out", str(out)]) == 0  # a finished run: replaced
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--force start over in an --out folder that holds an unfinished" in " ".join(
        capsys.readouterr().out.split()
    )


def test_a_run_killed_with_sigkill_resumes_and_its_leftovers_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL cannot be caught: the run leaves its staging folder beside the results
    folder and perhaps a half-written checkpoint inside it, named with its process id.
    Resuming (or any later run into the folder) removes them, not those of a live one."""
    out = tmp_path / "run"
    assert main([*RUN, "--steps", "6", "--stop-after", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    killed = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that is gone
    killed.wait()
    staging = tmp_path / f".run.{killed.pid}.k3x_9q2z.tmp"
    staging.mkdir()
    (staging / "metrics.json").write_text("{")
    half = out / f".checkpoint.json.{killed.pid}.p0w8m2ra.tmp"
    half.write_text('{"format": "chainrule.chec')
    live = tmp_path / f".run.{os.getppid()}.a1b2c3d4.tmp"  # pytest's parent: running
    live.mkdir()
    assert main([*RUN, "--steps", "6", "--out", str(out)]) == 2  # still refused, not deleted
    assert "holds an unfinished run (step 3 of 6)" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "resumed at step 3" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == sorted(["run", live.name])
    assert sorted(os.listdir(out)) == ["checkpoint.json", "decision_boundary.png", "loss.png",
                                       "metrics.json", "model.json"]  # fmt: skip


# -- a run on a CSV file (--data) ---------------------------------------------------------

CSV_RUN = ["train", "--layers", "8", "--optimizer", "adam", "--batch-size", "8",
           "--eval-every", "5", "--no-progress"]  # fmt: skip


def write_points(path: Path, n: int = 40) -> Path:
    """``n`` points in two classes (by the sign of x + y), labels 0 and 1."""
    rng = random.Random(0)
    rows = [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(n)]
    path.write_text("".join(f"{x!r},{y!r},{int(x + y > 0)}\n" for x, y in rows))
    return path


def test_a_run_on_a_csv_file_resumed_from_another_folder_equals_the_run_that_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--data given as a relative path is saved absolute: the resumed run finds it."""
    monkeypatch.chdir(tmp_path)
    write_points(tmp_path / "points.csv")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*CSV_RUN, "--data", "points.csv", "--steps", "30", "--out", str(straight)]) == 0
    flags = ["--data", "points.csv", "--steps", "30", "--stop-after", "12", "--out", str(split)]
    assert main([*CSV_RUN, *flags]) == 0
    said = capsys.readouterr().out.strip()
    assert os.listdir(split) == ["checkpoint.json"]
    monkeypatch.chdir(tmp_path / "straight")
    assert main([*resume_command(said), "--no-progress"]) == 0
    assert "resumed at step 12" in capsys.readouterr().out
    assert results(split) == results(straight)  # every loss and weight, bit for bit
    saved = load_checkpoint(split / "checkpoint.json").config
    assert saved.data == str(tmp_path / "points.csv") and saved.features == 2


def test_resuming_a_run_whose_data_file_changed_or_went_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points, out = write_points(tmp_path / "points.csv"), tmp_path / "run"
    assert main([*CSV_RUN, "--data", str(points), "--steps", "9", "--stop-after", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    checkpoint = (out / "checkpoint.json").read_bytes()
    original = points.read_text()
    lines = original.splitlines(keepends=True)
    for changed, words in [
        (
            "".join(["0.5," + lines[0].split(",", 1)[1], *lines[1:]]),  # a number edited
            f"the data file {points} has changed since the run trained on it (its points are",
        ),
        ("".join(lines[1:]), f"{points} now holds 39 points of 2 features in 2 classes, not "),
        (
            original + "1,2\n",
            f"the data file {points} has changed since the run trained on it "
            "(now line 41: expected 3 numbers as on line 1",
        ),
        (None, f"the run trained on {points}, which cannot be read now (No such file"),
    ]:
        if changed is None:
            points.unlink()
        else:
            points.write_text(changed)
        capsys.readouterr()
        assert main(["train", "--resume", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
        assert os.listdir(out) == ["checkpoint.json"]
        assert (out / "checkpoint.json").read_bytes() == checkpoint  # untouched
    points.write_text(original)  # put back: the run goes on
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert main(["train", "--resume", str(out), "--data", str(tmp_path / "other.csv")]) == 2
    assert f"--data conflicts with the run being resumed (--data {points})" in (
        capsys.readouterr().err
    )
