"""`chainrule gpt train` / `chainrule gpt sample`, GPT model files and the smoothed loss plot."""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from chainrule import gpt, nn
from chainrule.cli import main
from chainrule.data import names
from chainrule.gpt import GPT, CharTokenizer, ModelFileError, Trainer
from chainrule.nn import MLP
from chainrule.plots import moving_average, plot_smoothed_loss
from chainrule.training import ConfigError, GPTConfig, progress_bar, train_gpt

TINY = ["--steps", "30", "--dim", "8", "--heads", "2", "--block-size", "8", "--no-progress"]


def assert_real_plot(path: Path) -> None:
    image = np.asarray(imread(path))
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 0.05  # not a blank canvas


def one_error_line(err: str, command: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"chainrule {command}: error: "), err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpt") / "run"
    assert main(["gpt", "train", *TINY, "--out", str(out)]) == 0
    return out


# -- train, then sample ------------------------------------------------------------------


def test_train_writes_model_metrics_and_plot(run_dir: Path) -> None:
    assert sorted(p.name for p in run_dir.iterdir()) == ["loss.png", "metrics.json", "model.json"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    losses = metrics["history"]["loss"]
    assert metrics["steps"] == len(losses) == 30 and metrics["engine"] == "compiled"
    assert metrics["uniform_loss"] == pytest.approx(math.log(27))  # a-z and BOS
    assert metrics["loss"] == pytest.approx(sum(losses) / 30)
    assert abs(losses[0] - math.log(27)) < 0.1  # small initial weights: a near-uniform guess
    assert metrics["config"] == {
        "steps": 30, "lr": 0.01, "layers": 1, "dim": 8, "heads": 2, "block_size": 8,
        "seed": 1337, "compiled": True,
    }  # fmt: skip
    lrs = metrics["history"]["lr"]
    assert lrs[0] == 0.01 and lrs[-1] == pytest.approx(0.01 / 30)  # linear decay
    model, tokenizer = gpt.load(run_dir / "model.json")
    assert model.architecture() == {
        "type": "GPT", "vocab_size": 27, "block_size": 8, "dim": 8, "heads": 2, "layers": 1,
    }  # fmt: skip
    assert tokenizer.chars == "abcdefghijklmnopqrstuvwxyz"
    assert model.num_parameters() == metrics["parameters"] == gpt.count_parameters(27, 8, 8, 1)
    assert_real_plot(run_dir / "loss.png")


def test_sample_prints_n_names_reproducibly(run_dir: Path, capsys) -> None:
    model = str(run_dir / "model.json")
    assert main(["gpt", "sample", "--model", model, "-n", "12", "--seed", "3"]) == 0
    first = capsys.readouterr().out.split("\n")
    assert len(first) == 13 and first[-1] == ""  # twelve lines, one name each
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyz") for name in first)
    assert len(set(first)) > 3
    assert main(["gpt", "sample", "--model", model, "-n", "12", "--seed", "3"]) == 0
    assert capsys.readouterr().out.split("\n") == first
    assert main(["gpt", "sample", "--model", model, "-n", "12", "--seed", "4"]) == 0
    assert capsys.readouterr().out.split("\n") != first
    # temperature 0: the likeliest character every time, whatever the seed
    assert main(["gpt", "sample", "--model", model, "-n", "3", "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out.splitlines()
    assert len(greedy) == 3 and len(set(greedy)) == 1
    loaded, tokenizer = gpt.load(model)
    assert greedy[0] == tokenizer.decode(loaded.sample(random.Random(0), temperature=0.0))


def test_sample_defaults_to_the_model_gpt_train_writes_by_default(
    run_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["gpt", "sample", "-n", "2"]) == 2  # nothing trained here yet
    err = one_error_line(capsys.readouterr().err, "gpt sample")
    assert "runs/gpt/model.json" in err and "chainrule gpt train" in err
    (tmp_path / "runs" / "gpt").mkdir(parents=True)
    (tmp_path / "runs" / "gpt" / "model.json").write_bytes((run_dir / "model.json").read_bytes())
    assert main(["gpt", "sample", "-n", "4", "--seed", "5"]) == 0
    by_default = capsys.readouterr().out
    assert (
        main(["gpt", "sample", "--model", str(run_dir / "model.json"), "-n", "4", "--seed", "5"])
        == 0
    )
    assert capsys.readouterr().out == by_default and len(by_default.splitlines()) == 4


def test_eager_and_compiled_runs_give_the_same_losses(run_dir: Path, tmp_path: Path) -> None:
    assert main(["gpt", "train", *TINY, "--eager", "--out", str(tmp_path)]) == 0
    eager = json.loads((tmp_path / "metrics.json").read_text())
    compiled = json.loads((run_dir / "metrics.json").read_text())
    assert (eager["engine"], compiled["engine"]) == ("eager", "compiled")
    for a, b in zip(eager["history"]["loss"], compiled["history"]["loss"], strict=True):
        assert abs(a - b) <= 1e-9, (a, b)
    assert gpt.load(tmp_path / "model.json")[0].state_dict() == pytest.approx(
        gpt.load(run_dir / "model.json")[0].state_dict(), abs=1e-9
    )


def test_the_run_trains_on_shuffled_names_one_per_step() -> None:
    config = GPTConfig(steps=3, dim=8, heads=2, block_size=8, compiled=False)
    result = train_gpt(config)
    everyone = names()
    random.Random(config.seed + 1).shuffle(everyone)
    tokenizer = CharTokenizer.from_names(everyone)
    model = GPT(27, 8, 8, 2, 1, rng=random.Random(config.seed))
    trainer = Trainer(model, lr=0.01, steps=3)
    expected = [trainer.step(tokenizer.encode(name)) for name in everyone[:3]]
    assert result.loss == expected
    assert result.model.state_dict() == model.state_dict()


def test_progress_bar_is_quiet_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress_bar(10).mininterval == 0.1
    monkeypatch.undo()
    assert progress_bar(10).mininterval == 30.0  # a log gets a line every 30 s at most
    capsys.readouterr()
    args = [a for a in TINY if a != "--no-progress"]
    assert main(["gpt", "train", *args, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    updates = err.replace("\n", "\r").split("\r")
    assert "30/30" in err and len([u for u in updates if u.strip()]) <= 3, err


@pytest.mark.parametrize("unbuffered", [True, False], ids=["while-printing", "at-the-last-flush"])
def test_sample_into_a_pipe_closed_early_exits_quietly(run_dir: Path, unbuffered: bool) -> None:
    """`chainrule gpt sample | head -0`: a real pipe whose reader has gone when the names
    come. The command stops, quietly, with the exit code of a process ended by SIGPIPE,
    as Unix tools do: whether the pipe breaks while it prints or at its last flush."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chainrule.cli", "gpt", "sample", "--model",
         str(run_dir / "model.json"), "-n", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore",
             "PYTHONUNBUFFERED": "1" if unbuffered else ""},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        process.stdout.close()  # the reader is gone before the first name
        err = process.stderr.read()
        assert process.wait(timeout=120) == 141, err
    finally:
        process.kill()
    assert err == b""  # no "Broken pipe", no "Exception ignored"


def test_names_the_terminal_cannot_show_are_printed_escaped(tmp_path: Path) -> None:
    """A vocabulary of characters an ASCII terminal has no code for: every name is
    printed, escaped, rather than a crash part-way through the output."""
    tokenizer = CharTokenizer.from_names(["\U0001f600\u00e9"])  # two letters, neither ASCII
    model = GPT(tokenizer.vocab_size, 6, 4, 2, 1, rng=random.Random(0))
    path = gpt.save(model, tokenizer, tmp_path / "model.json")
    done = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "gpt", "sample", "--model", str(path), "-n", "30"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    text = done.stdout.decode("ascii")  # ASCII only: the letters came escaped
    assert len(text.splitlines()) == 30
    assert "\\U0001f600" in text or "\\xe9" in text


def test_a_vocabulary_must_be_text(small, tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="'\\\\udc00' is half of a UTF-16 pair"):
        CharTokenizer("ab\udc00")
    model, tokenizer = small
    saved = gpt.save(model, tokenizer, tmp_path / "m.json")
    path = damaged(saved, set_in("metadata", "chars", "abde\ud800v"))
    assert main(["gpt", "sample", "--model", str(path), "-n", "50"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused on loading, before a single name
    assert "half of a UTF-16 pair" in one_error_line(captured.err, "gpt sample")


# -- model files -------------------------------------------------------------------------


@pytest.fixture
def small() -> tuple[GPT, CharTokenizer]:
    tokenizer = CharTokenizer.from_names(["ada", "bob", "eve"])
    return GPT(tokenizer.vocab_size, 6, 4, 2, 1, rng=random.Random(0)), tokenizer


def test_a_saved_gpt_loads_with_the_same_losses_and_samples(small, tmp_path: Path) -> None:
    model, tokenizer = small
    trainer = Trainer(model, steps=10)
    for k in range(10):  # weights that are not the initial ones
        trainer.step(tokenizer.encode(("ada", "bob", "eve")[k % 3]))
    path = gpt.save(model, tokenizer, tmp_path / "model.json", metadata={"note": "hi"})
    loaded, chars, metadata = gpt.load_with_metadata(path)
    assert metadata == {"note": "hi", "chars": "abdeov"} and chars.chars == tokenizer.chars
    assert loaded.state_dict() == model.state_dict()  # exactly: JSON keeps every float
    for name in ("ada", "bob", "eve", "dave"):
        assert loaded.loss(tokenizer.encode(name)).data == model.loss(tokenizer.encode(name)).data
    assert gpt.sample_names(loaded, chars, 6, random.Random(5)) == gpt.sample_names(
        model, tokenizer, 6, random.Random(5)
    )
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"]) == (nn.FORMAT, nn.VERSION)
    assert doc["parameters"] == model.state_dict()


def test_save_refuses_what_it_cannot_write_faithfully(small, tmp_path: Path) -> None:
    model, tokenizer = small
    with pytest.raises(ValueError, match="the tokenizer has 4 tokens but the model 7"):
        gpt.save(model, CharTokenizer("abc"), tmp_path / "m.json")
    model.lm_head.weight[0][0].data = math.nan
    with pytest.raises(ValueError, match=r"parameter lm_head\.weight\.0\.0 is nan"):
        gpt.save(model, tokenizer, tmp_path / "m.json")
    with pytest.raises(TypeError, match="expected a GPT, got MLP"):
        gpt.save(MLP(2, [1]), tokenizer, tmp_path / "m.json")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def damaged(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def set_in(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc: dict) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value

    return change


DAMAGE = {
    "wrong-version": (set_in("version", 2), "unknown model file version 2"),
    "not-a-gpt": (set_in("architecture", "type", "RNN"), "architecture type is 'RNN'"),
    "dim-zero": (set_in("architecture", "dim", 0), "dim must be a positive integer, got 0"),
    "heads-as-text": (set_in("architecture", "heads", "2"), "heads must be a positive integer"),
    "heads-do-not-divide": (set_in("architecture", "heads", 3), "dim 4 is not divisible by heads"),
    "no-chars": (lambda d: d["metadata"].pop("chars"), "metadata.chars must be a string"),
    "repeated-chars": (set_in("metadata", "chars", "aabdeo"), "distinct characters"),
    "lone-surrogate": (
        set_in("metadata", "chars", "abde\ud800v"),
        r"metadata\.chars holds '\\ud800', half of a UTF-16 pair, not a character",
    ),
    "chars-do-not-fit": (set_in("metadata", "chars", "abc"), "3 characters, so 4 tokens"),
    "metadata-not-object": (set_in("metadata", [1]), "metadata must be an object"),
    "missing-parameter": (
        lambda d: d["parameters"].pop("wpe.weight.0.0"),
        "the architecture has 272 parameters but the file holds 271",
    ),
    "renamed-parameter": (
        lambda d: d["parameters"].update({"wpe.weight.9.9": d["parameters"].pop("wte.weight.0.0")}),
        r"missing wte\.weight\.0\.0; unexpected wpe\.weight\.9\.9",
    ),
    "text-parameter": (set_in("parameters", "lm_head.weight.1.1", "0.5"), "expected a number"),
    "bool-parameter": (set_in("parameters", "lm_head.weight.1.1", True), "expected a number"),
    "huge-integer": (set_in("parameters", "wte.weight.0.0", 10**400), "too large for a float"),
    "parameters-as-list": (set_in("parameters", [0.0] * 272), "holds no object of parameters"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_refused_with_a_clear_error(
    small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    model, tokenizer = small
    change, message = DAMAGE[damage]
    path = damaged(gpt.save(model, tokenizer, tmp_path / "model.json"), change)
    if damage != "renamed-parameter":  # names need the model; all else is refused unbuilt
        monkeypatch.setattr("chainrule.gpt.files.GPT", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(ModelFileError, match=message) as info:
        gpt.load(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lambda t: t[: len(t) // 2], "truncated or corrupt JSON"),
        (lambda t: re.sub(r'("wte\.weight\.0\.0": )[^,]*', r"\1NaN", t), "non-finite number NaN"),
        (
            lambda t: re.sub(r'("wte\.weight\.0\.0": )[^,]*', r"\g<1>1e999", t),
            r'parameters\["wte\.weight\.0\.0"\] holds 1e999, too large for a float',
        ),
        (
            lambda t: re.sub(r'("lm_head\.weight\.1\.1": )[^,]*', r"\g<1>-" + "9" * 5000, t),
            r'parameters\["lm_head\.weight\.1\.1"\] holds -99999999999\.\.\.99999 \(5,000 digits\)',
        ),
    ],
    ids=["truncated", "nan", "overflow", "5000-digits"],
)
def test_broken_json_and_non_finite_numbers_are_refused(small, tmp_path, text, message) -> None:
    model, tokenizer = small
    path = gpt.save(model, tokenizer, tmp_path / "model.json")
    path.write_text(text(path.read_text()))
    with pytest.raises(ModelFileError, match=message):
        gpt.load(path)


def test_an_architecture_over_the_parameter_cap_is_refused_unbuilt(tmp_path, monkeypatch) -> None:
    doc = {
        "format": nn.FORMAT,
        "version": nn.VERSION,
        "architecture": dict(type="GPT", vocab_size=27, block_size=16, dim=1024, heads=4, layers=8),
        "parameters": {},
        "metadata": {"chars": "abcdefghijklmnopqrstuvwxyz"},
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr("chainrule.gpt.files.GPT", lambda *a, **k: pytest.fail("built a model"))
    count = (2 * 27 + 16) * 1024 + 12 * 8 * 1024**2  # the tables, the blocks
    with pytest.raises(ModelFileError, match=f"{count:,} parameters, more than chainrule loads"):
        gpt.load(path)


def test_each_loader_names_the_other_for_the_wrong_kind_of_file(small, tmp_path: Path) -> None:
    model, tokenizer = small
    gpt_file = gpt.save(model, tokenizer, tmp_path / "gpt.json")
    mlp_file = nn.save(MLP(2, [1], rng=random.Random(0)), tmp_path / "mlp.json")
    with pytest.raises(ModelFileError, match=r"this is a GPT model file .*chainrule gpt sample"):
        nn.load(gpt_file)
    with pytest.raises(ModelFileError, match=r"type is 'MLP' .*use `chainrule predict`"):
        gpt.load(mlp_file)


# -- the command line's errors -----------------------------------------------------------


def test_bad_model_files_and_arguments_get_one_line_and_exit_2(small, tmp_path, capsys) -> None:
    model, tokenizer = small
    gpt_file = gpt.save(model, tokenizer, tmp_path / "gpt.json")
    mlp_file = nn.save(MLP(2, [1], rng=random.Random(0)), tmp_path / "mlp.json")
    broken = tmp_path / "broken.json"
    broken.write_text(gpt_file.read_text()[:100])
    cases = [
        (["gpt", "sample", "--model", str(broken)], "gpt sample", "truncated or corrupt JSON"),
        (["gpt", "sample", "--model", str(mlp_file)], "gpt sample", "use `chainrule predict`"),
        (["gpt", "sample", "--model", str(tmp_path / "none.json")], "gpt sample", "no such"),
        (["predict", "--model", str(gpt_file), "--input", "1,2"], "predict", "a GPT model file"),
        (["gpt", "sample", "--model", str(gpt_file), "--temperature", "-1"], "gpt sample",
         "'-1' must be 0 or more"),
        (["gpt", "sample", "--model", str(gpt_file), "-n", "0"], "gpt sample",
         "'0' must be at least 1"),
        (["gpt", "train", "--heads", "3"], "gpt train", "dim 16 is not divisible by heads 3"),
        (["gpt", "train", "--steps", "0"], "gpt train", "'0' must be at least 1"),
        (["gpt", "train", "--lr", "nan"], "gpt train", "not a finite number"),
        (["gpt", "train", "--dim", "1024", "--layers", "4"], "gpt train",
         "the GPT would have 50,403,328 parameters, more than chainrule loads (4,000,000"),
        (["gpt", "train", "--seed", str(2**32)], "gpt train", "seed must be from 0 to"),
        (["gpt"], "gpt", "required: COMMAND"),
    ]  # fmt: skip
    for argv, command, words in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and words in one_error_line(captured.err, command), argv


def test_training_saving_and_loading_share_one_parameter_cap(small, tmp_path, monkeypatch) -> None:
    """A GPT that trains can be saved and loaded; one over the cap is refused by every
    trainer before it starts, by save and by load alike."""
    model, tokenizer = small
    count = model.num_parameters()
    path = gpt.save(model, tokenizer, tmp_path / "model.json")
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_PARAMETERS", count)  # at the cap
    Trainer(model, steps=1).step(tokenizer.encode("ada"))
    assert gpt.load(gpt.save(model, tokenizer, path))[0].state_dict() == model.state_dict()
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_PARAMETERS", count - 1)
    cap = rf"{count:,} parameters, more than chainrule loads \({count - 1:,},"
    with pytest.raises(ValueError, match=f"Trainer: the model has {cap}"):
        Trainer(model)
    with pytest.raises(ValueError, match=f"save: the model has {cap}"):
        gpt.save(model, tokenizer, tmp_path / "other.json")
    with pytest.raises(ModelFileError, match=f"the architecture has {cap}"):
        gpt.load(path)
    monkeypatch.setattr("chainrule.gpt.train.GPT", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ConfigError, match=r"the GPT would have 4,192 parameters, more than"):
        train_gpt(GPTConfig(steps=1))  # 27 tokens: 4,192 parameters


def test_a_diverged_gpt_run_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["gpt", "train", *TINY, "--lr", "1e6", "--eager", "--out", str(out)]) == 2
    err = one_error_line(capsys.readouterr().err, "gpt train")
    assert "training diverged at step" in err
    assert list(tmp_path.iterdir()) == []


# -- the plot ----------------------------------------------------------------------------


def test_moving_average_is_the_trailing_mean() -> None:
    values = [4.0, 2.0, 6.0, 0.0, 1.0]
    assert moving_average(values, 2).tolist() == [4.0, 3.0, 4.0, 3.0, 0.5]
    assert moving_average(values, 10).tolist() == [4.0, 3.0, 4.0, 3.0, 2.6]
    assert moving_average(values, 1).tolist() == values
    with pytest.raises(ValueError, match="window must be a positive integer"):
        moving_average(values, 0)


def test_smoothed_loss_plot_draws_curves_and_the_reference(tmp_path: Path) -> None:
    rng = random.Random(0)
    loss = [3.3 * math.exp(-k / 300) + 1.0 + rng.uniform(-0.5, 0.5) for k in range(400)]
    path = plot_smoothed_loss(loss, tmp_path / "loss.png", reference=math.log(27))
    assert_real_plot(path)
    with pytest.raises(ValueError, match="at least one loss"):
        plot_smoothed_loss([], tmp_path / "empty.png")
