"""Export to PyTorch (safetensors) and ONNX, and import back: same outputs, same weights."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.numpy import load_file, save_file

from chainrule import nn
from chainrule.cli import main
from chainrule.engine import Value, no_grad
from chainrule.export import from_safetensors, to_safetensors

N_INPUTS = 1_000

#: (hidden activation, output activation, layer sizes): every activation, and multi-class.
CASES = [
    ("tanh", "tanh", [6, 5, 1]),
    ("relu", None, [6, 5, 1]),
    ("sigmoid", "sigmoid", [6, 5, 1]),
    ("linear", None, [6, 5, 1]),
    ("relu", None, [8, 8, 3]),
    ("tanh", "linear", [7, 4]),
]
IDS = ["tanh", "relu", "sigmoid", "linear", "relu-3-classes", "tanh-4-outputs"]


def make_model(tmp_path: Path, activation: str, output: str | None, nouts: list[int]) -> Path:
    model = nn.MLP(3, nouts, activation, output, rng=random.Random(7))  # type: ignore[arg-type]
    for i, p in enumerate(model.parameters()):  # non-zero biases too
        p.data += 0.01 * (i % 7) - 0.03
    return nn.save(model, tmp_path / "model.json", {"task": {"kind": "test"}, "note": "é"})


def chainrule_outputs(path: Path, inputs: np.ndarray) -> np.ndarray:
    model = nn.load(path)
    with no_grad():
        outs = [model(row.tolist()) for row in inputs]
    return np.array([[o.data] if isinstance(o, Value) else [v.data for v in o] for o in outs])


def inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 2.0, size=(N_INPUTS, 3))


@pytest.mark.parametrize(("activation", "output", "nouts"), CASES, ids=IDS)
def test_pytorch_sequential_from_the_printed_lines_gives_the_same_outputs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    activation: str,
    output: str | None,
    nouts: list[int],
) -> None:
    path = make_model(tmp_path, activation, output, nouts)
    weights = tmp_path / "model.safetensors"
    assert main(["export", str(path), "-o", str(weights)]) == 0
    lines = capsys.readouterr().out.splitlines()[-3:]
    assert lines[0] == "import torch; from safetensors.torch import load_file"
    scope: dict[str, object] = {}
    exec("\n".join(lines), scope)  # the three printed lines, as a user pastes them
    sequential = scope["model"]
    assert isinstance(sequential, torch.nn.Sequential)
    x = inputs()
    with torch.no_grad():
        theirs = sequential(torch.from_numpy(x)).numpy()
    ours = chainrule_outputs(path, x)
    assert theirs.dtype == np.float64 and theirs.shape == ours.shape == (N_INPUTS, nouts[-1])
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)
    assert np.abs(ours).max() > 0.1  # the comparison is not of zeros


@pytest.mark.parametrize(("activation", "output", "nouts"), CASES, ids=IDS)
def test_onnx_through_onnxruntime_gives_the_same_outputs(
    tmp_path: Path, activation: str, output: str | None, nouts: list[int]
) -> None:
    path = make_model(tmp_path, activation, output, nouts)
    exported = tmp_path / "model.onnx"
    assert main(["export", str(path), "--format", "onnx", "-o", str(exported)]) == 0
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = inputs()
    (theirs,) = session.run(["output"], {"input": x})
    ours = chainrule_outputs(path, x)
    assert theirs.dtype == np.float64 and theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("activation", "output", "nouts"), CASES, ids=IDS)
def test_export_then_import_gives_identical_weights_and_metadata(
    tmp_path: Path, activation: str, output: str | None, nouts: list[int]
) -> None:
    path = make_model(tmp_path, activation, output, nouts)
    weights = tmp_path / "w.safetensors"
    back = tmp_path / "back.json"
    assert main(["export", str(path), "-o", str(weights)]) == 0
    assert main(["import", str(weights), "-o", str(back)]) == 0
    original, back_doc = json.loads(path.read_text()), json.loads(back.read_text())
    assert back_doc == original  # architecture, every weight bit for bit, metadata
    assert back.read_bytes() == path.read_bytes()


def test_safetensors_keys_are_the_sequential_state_dict(tmp_path: Path) -> None:
    path = make_model(tmp_path, "linear", "sigmoid", [4, 4, 1])
    weights = tmp_path / "w.safetensors"
    assert main(["export", str(path), "-o", str(weights)]) == 0
    tensors = load_file(weights)
    # linear hidden layers add no module: Linear, Linear, Linear, Sigmoid
    assert sorted(tensors) == ["0.bias", "0.weight", "1.bias", "1.weight", "2.bias", "2.weight"]
    assert tensors["0.weight"].shape == (4, 3) and tensors["0.weight"].dtype == np.float64
    model = nn.load(path)
    assert tensors["2.weight"].tolist() == [[w.data for w in model.layers[2].neurons[0].w]]


def test_default_output_is_next_to_the_model(tmp_path: Path) -> None:
    path = make_model(tmp_path, "relu", None, [3, 1])
    assert main(["export", str(path)]) == 0
    assert main(["export", str(path), "--format", "onnx"]) == 0
    assert (tmp_path / "model.safetensors").stat().st_size > 0
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")))


def test_a_runs_model_is_exported_beside_the_run_folder_which_the_next_run_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    train = ["train", "--steps", "3", "--layers", "4", "--out", "runs/demo", "--no-progress"]
    assert main(train) == 0
    assert main(["export", "runs/demo/model.json"]) == 0
    assert main(["export", "runs/demo/model.json", "--format", "onnx"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "demo", "demo.onnx", "demo.safetensors",
    ]  # fmt: skip
    assert from_safetensors(tmp_path / "runs" / "demo.safetensors")[0].num_parameters() > 0
    assert main(train) == 0  # the run's folder holds only its results: replaced again
    monkeypatch.chdir(tmp_path / "runs" / "demo")  # `export model.json` inside the run
    (tmp_path / "runs" / "demo.onnx").unlink()
    assert main(["export", "model.json", "--format", "onnx"]) == 0
    assert (tmp_path / "runs" / "demo.onnx").is_file() and not Path("model.onnx").exists()


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_model(tmp_path, "relu", None, [3, 1])
    st = tmp_path / "m.safetensors"
    assert main(["export", str(path), "-o", str(st)]) == 0
    capsys.readouterr()
    foreign = tmp_path / "foreign.safetensors"  # a valid safetensors file not from chainrule
    save_file({"weight": np.zeros((2, 2))}, foreign)
    wrong_shape = tmp_path / "shape.safetensors"
    header = {"format": "chainrule.model", "version": "1"}
    header["architecture"] = json.dumps(nn.load(path).architecture())
    save_file({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(3)}, wrong_shape, header)
    bad_shape = tmp_path / "shape2.safetensors"
    good = load_file(st)
    save_file({**good, "2.weight": np.zeros((1, 4))}, bad_shape, header)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(st.read_bytes()[:50])
    cases = [
        (["export", str(path), "--format", "pickle"], "invalid choice"),
        (["export", str(path), "-o", str(tmp_path / "x.onnx"), "--format", "safetensors"], "agree"),
        (["export", str(tmp_path / "missing.json")], "no such model file"),
        (["export", str(st)], "not a"),
        (["export", str(path), "-o", str(tmp_path / "no" / "m.safetensors")], "does not exist"),
        (["export", str(path), "-o", str(tmp_path)], "is a folder"),
        (["import", str(path), "-o", str(tmp_path / "x.json")], "not a safetensors file"),
        (["import", str(truncated), "-o", str(tmp_path / "x.json")], "not a safetensors file"),
        (["import", str(foreign), "-o", str(tmp_path / "x.json")], "no chainrule architecture"),
        (["import", str(wrong_shape), "-o", str(tmp_path / "x.json")], "expected the tensors"),
        (["import", str(bad_shape), "-o", str(tmp_path / "x.json")], "expected float of shape"),
        (["import", str(st), "-o", str(st)], "the file being imported"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cut.safetensors",
        "foreign.safetensors",
        "m.safetensors",
        "model.json",
        "shape.safetensors",
        "shape2.safetensors",
    ]


def test_export_and_import_never_write_over_the_file_they_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_model(tmp_path, "relu", None, [3, 1])
    weights = tmp_path / "w.safetensors"
    assert main(["export", str(path), "-o", str(weights)]) == 0
    (tmp_path / "link.json").symlink_to(path)
    json_named_safetensors = tmp_path / "odd.safetensors"  # a model file, oddly named
    json_named_safetensors.write_bytes(path.read_bytes())
    safetensors_named_json = tmp_path / "odd.json"
    safetensors_named_json.write_bytes(weights.read_bytes())
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for argv, words in [
        (["export", str(path), "-o", str(path)], "-o"),
        (["export", str(path), "-o", str(tmp_path / "." / "link.json")], "-o"),
        (["export", str(path), "-o", str(path), "--format", "onnx"], "-o"),
        (["export", str(json_named_safetensors)], "the output"),  # MODEL.safetensors
        (["import", str(weights), "-o", str(tmp_path / "." / "w.safetensors")], "-o"),
        (["import", str(safetensors_named_json)], "the output"),  # FILE.json
    ]:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        err = captured.err
        assert err.count("\n") == 1 and err.startswith(f"chainrule {argv[0]}: error: "), err
        assert words in err and ("the file being imported" in err or "being exported" in err)
        assert captured.out == ""
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ('{"task": ' + deep(100_000) + "}", "nests more than 64 levels deep"),
        ('{"task": ' + deep(900) + "}", "nests more than 64 levels deep"),  # readable, too deep
        ('{"classes": ' + "7" * 5_000 + "}", "classes holds 777777777777...77777 (5,000 digits)"),
        ('{"lr": 1e999}', "the entry lr holds 1e999, too large for a float"),
        ('{"lr": -1e999}', "the entry lr holds -1e999, too large for a float"),
        ('{"lr": NaN}', "non-finite number NaN"),
    ],
    ids=["recursion", "deep", "5000-digits", "1e999", "minus-1e999", "nan"],
)
def test_hostile_metadata_on_import_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], metadata: str, words: str
) -> None:
    path = make_model(tmp_path, "relu", None, [3, 1])
    weights = tmp_path / "w.safetensors"
    assert main(["export", str(path), "-o", str(weights)]) == 0
    header = {"format": "chainrule.model", "version": "1"}
    header["architecture"] = json.dumps(nn.load(path).architecture())
    hostile = tmp_path / "hostile.safetensors"
    save_file(load_file(weights), hostile, {**header, "metadata": metadata})
    capsys.readouterr()
    assert main(["import", str(hostile), "-o", str(tmp_path / "x.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("chainrule import: error: ") and words in captured.err
    assert not (tmp_path / "x.json").exists()
    architecture = header["architecture"].replace("3,", "1" * 5_000 + ",", 1)
    save_file(load_file(weights), hostile, {**header, "architecture": architecture})
    assert main(["import", str(hostile), "-o", str(tmp_path / "x.json")]) == 2
    assert "entry nin holds 111111111111...11111 (5,000 digits)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.safetensors", "model.json",
                                                          "w.safetensors"]  # fmt: skip


def test_a_safetensors_file_is_read_as_every_model_file_is(tmp_path: Path) -> None:
    """Import reads through the one bounded reader of chainrule.io.files: a missing
    file, a folder and a file over the cap are each a ModelFileError naming the file."""
    from chainrule.io.files import read_bounded_bytes
    from chainrule.io.model_files import ModelFileError

    with pytest.raises(ModelFileError, match=r"nowhere\.safetensors: no such safetensors file"):
        from_safetensors(tmp_path / "nowhere.safetensors")
    with pytest.raises(ModelFileError, match=r"cannot read the safetensors file \(it is a folder"):
        from_safetensors(tmp_path)
    path = make_model(tmp_path, "relu", None, [3, 1])
    weights = to_safetensors(nn.load(path), tmp_path / "w.safetensors")
    size = weights.stat().st_size
    kind = {"kind": "safetensors file", "limit_name": "CAP", "error": ModelFileError}
    assert read_bounded_bytes(weights, limit=size, **kind) == weights.read_bytes()
    with pytest.raises(ModelFileError, match=rf"larger than {size - 1:,} bytes \(CAP\)"):
        read_bounded_bytes(weights, limit=size - 1, **kind)
