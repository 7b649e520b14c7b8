"""``chainrule predict --input-file``: CSV in, CSV out, every bad line named."""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from chainrule.cli import main
from chainrule.engine import no_grad
from chainrule.nn import MLP, load, save
from chainrule.training import Task

ROWS = 10_000
STDIN = ("--input-file", "-")


def model_file(tmp_path: Path, loss: str, classes: int, nin: int = 2) -> Path:
    task = Task(loss, classes)
    model = MLP(nin, [5, task.outputs], rng=random.Random(7))
    return save(model, tmp_path / f"{loss}-{classes}.json", metadata={"task": task.to_json()})


def points(n: int, nin: int = 2, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(-3.0, 3.0) for _ in range(nin)] for _ in range(n)]


def as_csv(rows: list[list[float]], header: str | None = None) -> str:
    lines = [header] if header is not None else []
    lines += [",".join(repr(x) for x in row) for row in rows]
    return "\n".join(lines) + "\n"


def expected(model_path: Path, loss: str, classes: int, rows: list[list[float]]) -> list[str]:
    """One line per row from the library itself: Task.predict on the model, row by row."""
    model, task = load(model_path), Task(loss, classes)
    out = []
    for row in rows:
        with no_grad():
            cls, score = task.predict(model(row))
        out.append(f"{cls},{score!r}")
    return out


def parsed(text: str) -> list[tuple[int, float]]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == ["class", "score"]
    return [(int(c), float(s)) for c, s in reader]


@pytest.mark.parametrize(("loss", "classes"), [("hinge", 2), ("bce", 2), ("softmax", 3)])
def test_ten_thousand_rows_from_a_file_match_task_predict(
    tmp_path: Path, loss: str, classes: int, capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_file(tmp_path, loss, classes)
    rows = points(ROWS)
    data = tmp_path / "points.csv"
    data.write_text(as_csv(rows, header="x1,x2"))
    assert main(["predict", "--model", str(model), "--input-file", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "class,score"
    assert out[1:] == expected(model, loss, classes, rows)
    results = parsed("\n".join(out))
    assert len({c for c, _ in results}) >= 2  # not one answer for every row
    if loss != "hinge":
        assert all(0.0 <= s <= 1.0 for _, s in results)  # probabilities


def test_ten_thousand_rows_from_stdin_in_a_subprocess(tmp_path: Path) -> None:
    model = model_file(tmp_path, "mse", 2)
    rows = points(ROWS, seed=1)
    done = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "predict", "--model", str(model), *STDIN],
        input=as_csv(rows),  # no header
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines()[1:] == expected(model, "mse", 2, rows)


def test_stdin_with_output_file_writes_it_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = model_file(tmp_path, "softmax", 4, nin=3)
    rows = points(200, nin=3, seed=2)
    text = as_csv(rows).replace(",", " , ")  # spaces around fields are fine
    text = "\n" + text.replace("\n", "\n\n")  # so are empty lines
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    target = tmp_path / "predictions.csv"
    target.write_text("old\n")
    assert main(["predict", "--model", str(model), "--input-file", "-", "-o", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote 200 predictions to {target}\n"
    lines = target.read_text().splitlines()
    assert lines[1:] == expected(model, "softmax", 4, rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "softmax-4.json"]


GOOD = "0.5,0.25\n-1,2\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD + "1,2,3\n", "line 3: expected 2 numbers, got '1,2,3' (3 values)"),
        (GOOD + "7\n", "line 3: expected 2 numbers, got '7' (1 value)"),
        ("x,y\n" + GOOD + "1,abc\n", "line 4: expected 2 numbers, got '1,abc' ('abc' is not a"),
        (GOOD + "1,\n", "line 3: expected 2 numbers, got '1,' (an empty field is not a number)"),
        (GOOD + "nan,1\n", "line 3: expected 2 numbers, got 'nan,1' ('nan' is not a finite"),
        (GOOD + "1,-inf\n", "line 3: expected 2 numbers, got '1,-inf' ('-inf' is not a finite"),
        ("", "line 1: the file ends with no rows; expected lines of 2 comma-separated numbers"),
        ("x1,x2\n", "line 2: the file ends after the header"),
        ("a,b,c\n" + GOOD, "line 1: the header 'a,b,c' names 3 columns; the model takes 2"),
        ("1,2\nx1,x2\n", "line 2: expected 2 numbers, got 'x1,x2' ('x1' is not a number)"),
        (GOOD + '"1,2\n', "line 3: not CSV (unexpected end of data)"),  # an unclosed quote
    ],
    ids=[
        "too-many",
        "too-few",
        "not-a-number",
        "empty-field",
        "nan",
        "inf",
        "empty-file",
        "header-only",
        "bad-header",
        "late-header",
        "unclosed-quote",
    ],
)
def test_a_malformed_line_is_named_and_nothing_is_written(
    tmp_path: Path, text: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_file(tmp_path, "hinge", 2)
    data = tmp_path / "points.csv"
    data.write_text(text)
    for output in ([], ["-o", str(tmp_path / "out.csv")]):
        assert main(["predict", "--model", str(model), "--input-file", str(data), *output]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"chainrule predict: error: {data} {words}")
        assert captured.err.count("\n") == 1
        assert not (tmp_path / "out.csv").exists()


def test_a_bad_line_on_stdin_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = model_file(tmp_path, "hinge", 2)
    monkeypatch.setattr(sys, "stdin", io.StringIO(as_csv(points(16)) + "a,b,c\n"))
    assert main(["predict", "--model", str(model), "--input-file", "-"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "chainrule predict: error: stdin line 17: expected 2 numbers, got 'a,b,c' (3 values)\n"
    )


def test_input_file_problems_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(model_file(tmp_path, "hinge", 2))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"0.5,0.25\n\xff\xfe\x00\n")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf0.5,0.25\n")  # as spreadsheets save UTF-8 CSV
    cases = [
        (["--input-file", str(tmp_path / "missing.csv")], "missing.csv: No such file"),
        (["--input-file", str(tmp_path)], "is a folder; name a CSV file"),
        (
            ["--input-file", str(binary)],
            "binary.csv line 2: not UTF-8 text (invalid start byte at byte 1",
        ),
        (["--input-file", str(bom), "-o", str(tmp_path)], "predictions.csv"),
        (["--input", "1,2", "-o", str(tmp_path / "o.csv")], "-o goes with --input-file"),
        (["--input", "1,2", "--input-file", str(bom)], "not allowed with argument --input"),
        ([], "one of the arguments --input --input-file is required"),
    ]
    for extra, words in cases:
        assert main(["predict", "--model", model, *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith("chainrule predict: error: ") and words in captured.err
    assert main(["predict", "--model", model, "--input-file", str(bom)]) == 0
    assert len(parsed(capsys.readouterr().out)) == 1


def test_help_says_what_the_score_means_for_each_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "hinge, mse the model's output, a margin" in text
    assert "bce the probability of class 1" in text
    assert "softmax the probability of the predicted class" in text
    assert "--input-file FILE" in text and "standard input" in text
