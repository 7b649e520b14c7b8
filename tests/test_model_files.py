"""Reading model files: cheap checks before anything is built, one clear error each."""

from __future__ import annotations

import json
import math
import random
import re
import struct
import sys
from pathlib import Path

import pytest

from chainrule import nn
from chainrule.gpt import GPT, CharTokenizer
from chainrule.nn import MLP, ModelFileError, load, load_with_metadata, save


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return save(MLP(2, [3, 1], rng=random.Random(0)), tmp_path / "model.json")


def forbid_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built from a file that does not fit")

    monkeypatch.setattr("chainrule.io.model_files.MLP", fail)


def test_a_file_over_the_size_cap_is_refused_unread(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = model_file.stat().st_size
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_BYTES", size)
    assert load(model_file).num_parameters() == 13  # exactly at the cap: fine
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_BYTES", size - 1)
    with pytest.raises(ModelFileError, match=f"larger than {size - 1:,} bytes"):
        load(model_file)


def test_a_device_without_end_is_read_only_up_to_the_cap(monkeypatch) -> None:
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_BYTES", 4096)
    with pytest.raises(ModelFileError, match=r"/dev/zero: the file is larger than 4,096 bytes"):
        load("/dev/zero")


def test_deeply_nested_json_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load(path)


def test_a_folder_or_binary_file_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read the model file"):
        load(tmp_path)
    (tmp_path / "m.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelFileError, match="not UTF-8"):
        load(tmp_path / "m.json")


def small_file_with_a_big_architecture(tmp_path: Path, nouts: list[int], layers: list) -> Path:
    doc = {
        "format": "chainrule.model",
        "version": 1,
        "architecture": {"type": "MLP", "nin": 1000, "nouts": nouts, "activation": "relu"},
        "layers": layers,
    }
    path = tmp_path / "small.json"
    path.write_text(json.dumps(doc))
    assert path.stat().st_size < 250
    return path


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "the architecture has 2 layers but the file holds 0"),
        ([{"weights": [], "biases": []}, {}], r"layer 0: expected 1000x1000 weights"),
        ([{"weights": [[0.5]], "biases": [0.0]}] * 2, r"layer 0: expected 1000x1000"),
    ],
)
def test_shapes_are_checked_against_the_architecture_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layers: list, message: str
) -> None:
    """A 200-byte file naming a 2-million-parameter network costs nothing to refuse."""
    path = small_file_with_a_big_architecture(tmp_path, [1000, 1000], layers)
    forbid_building(monkeypatch)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_an_architecture_over_the_parameter_cap_is_refused(tmp_path, monkeypatch) -> None:
    path = small_file_with_a_big_architecture(tmp_path, [100_000, 1], [])
    forbid_building(monkeypatch)
    with pytest.raises(ModelFileError, match="100,200,001 parameters, more than chainrule loads"):
        load(path)


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ({"nin": "2", "nouts": [1]}, "nin must be a positive integer"),
        ({"nin": 2, "nouts": 1}, "nouts must be a non-empty list"),
        ({"nin": 2, "nouts": []}, "nouts must be a non-empty list"),
        ({"nin": 2, "nouts": [1, True]}, "each layer size"),
        ({"nin": 2, "nouts": [1], "activation": "gelu"}, "unknown activation 'gelu'"),
        ({"nin": 2, "nouts": [1], "output_activation": 3}, "unknown output_activation 3"),
    ],
)
def test_architecture_fields_are_checked(
    model_file: Path, monkeypatch: pytest.MonkeyPatch, architecture: dict, message: str
) -> None:
    doc = json.loads(model_file.read_text())
    doc["architecture"] = {"type": "MLP", "activation": "relu", **architecture}
    model_file.write_text(json.dumps(doc))
    forbid_building(monkeypatch)
    with pytest.raises(ModelFileError, match=f"invalid architecture: {message}"):
        load(model_file)


def test_a_saved_model_loads_with_every_number_in_place(model_file: Path) -> None:
    original = MLP(2, [3, 1], rng=random.Random(0))
    loaded, metadata = load_with_metadata(model_file)
    assert loaded.state_dict() == original.state_dict() and metadata == {}
    assert loaded.architecture() == original.architecture()


# -- the caps: every model under the parameter cap fits the byte cap ---------------------

LONGEST_FLOAT = -2.2250738585072014e-308  # a sign, 17 digits, a point, a 3-digit exponent


def test_no_float_is_written_longer_than_max_float_chars() -> None:
    rng = random.Random(0)
    floats = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20_000)
    ]
    floats += [LONGEST_FLOAT, -sys.float_info.max, -sys.float_info.min, -5e-324, -0.1 - 0.2]
    longest = max(len(json.dumps(x)) for x in floats if math.isfinite(x))
    assert longest == nn.MAX_FLOAT_CHARS == len(json.dumps(LONGEST_FLOAT))


def mlp_file_bytes(layers: int) -> int:
    """The bytes of a chain of one-neuron layers (the most bytes a parameter), every
    parameter the longest float."""
    model = MLP(1, [1] * layers, rng=random.Random(0))
    for p in model.parameters():
        p.data = LONGEST_FLOAT
    return len(nn.model_file_text(nn.model_document(model)))


def gpt_file_bytes(layers: int, chars: int) -> tuple[int, int]:
    """The bytes and parameters of a GPT file with every parameter the longest float, each
    index in the names as long as an index below the cap can be, and characters outside
    the BMP (12 bytes each in JSON) for the tokenizer's."""
    tokenizer = CharTokenizer("".join(chr(0x1F600 + i) for i in range(chars)))
    model = GPT(tokenizer.vocab_size, 3, 2, 1, layers, rng=random.Random(0))
    digits = len(str(nn.MAX_MODEL_PARAMETERS - 1))
    state = {
        re.sub(r"\d+", lambda m: m.group().rjust(digits, "9"), name): LONGEST_FLOAT
        for name in model.state_dict()
    }
    assert len(state) == model.num_parameters()  # (every index here is one digit)
    document = {"format": nn.FORMAT, "version": nn.VERSION, "architecture": model.architecture()}
    text = nn.model_file_text(
        {**document, "parameters": state, "metadata": {"chars": tokenizer.chars}}
    )
    return len(text), model.num_parameters()


def bytes_per_parameter(small: tuple[int, int], big: tuple[int, int]) -> float:
    """What each parameter more costs, from (bytes, parameters) of two files."""
    return (big[0] - small[0]) / (big[1] - small[1])


def test_a_model_at_the_parameter_cap_fits_the_byte_cap() -> None:
    """Measured with the real encoder: what one parameter more costs in the worst layouts
    (one-neuron MLP layers; GPT blocks, whose names are the longest; GPT vocabulary, which
    adds characters too), times the cap, plus a whole small file for the rest, is within
    the file cap: no model that can be trained is refused as 'not a model file'."""
    one_neuron_layers = bytes_per_parameter((mlp_file_bytes(10), 20), (mlp_file_bytes(20), 40))
    blocks = bytes_per_parameter(gpt_file_bytes(1, 3), gpt_file_bytes(3, 3))
    vocabulary = bytes_per_parameter(gpt_file_bytes(1, 3), gpt_file_bytes(1, 9))
    worst = max(one_neuron_layers, blocks, vocabulary)
    assert worst <= nn.MODEL_BYTES_PER_PARAMETER
    rest = gpt_file_bytes(1, 3)[0]  # more than a file's fixed part
    needed = nn.MAX_MODEL_PARAMETERS * worst + rest
    assert needed <= nn.MAX_MODEL_BYTES < 1.2 * needed  # enough, and not a guess


def test_a_bigger_model_round_trips_through_its_file(tmp_path: Path) -> None:
    model = MLP(2, [64, 64, 64, 1], rng=random.Random(1))
    for p in model.parameters():
        p.data = -random.random() * 1e-300  # long numbers
    path = save(model, tmp_path / "model.json")
    assert path.stat().st_size <= model.num_parameters() * nn.MODEL_BYTES_PER_PARAMETER
    assert load(path).state_dict() == model.state_dict()


def test_save_refuses_a_model_over_the_parameter_cap(tmp_path, monkeypatch) -> None:
    model = MLP(2, [3, 1], rng=random.Random(0))  # 13 parameters
    monkeypatch.setattr("chainrule.io.model_files.MAX_MODEL_PARAMETERS", 12)
    with pytest.raises(ValueError, match="save: the model has 13 parameters, more than"):
        save(model, tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


# -- numbers no float can hold: refused by entry, never an OverflowError ----------------

HUGE = "9" * 5000  # more digits than Python converts (4,300) without being asked


@pytest.mark.parametrize(
    ("entry", "number", "words"),
    [
        ("layers[0].weights[1][0]", str(10**400), r"100000000000\.\.\.00000 \(401 digits\)"),
        ("layers[0].weights[1][0]", HUGE, r"999999999999\.\.\.99999 \(5,000 digits\)"),
        ("layers[1].biases[0]", "-1e400", "-1e400"),
        ("architecture.nin", HUGE, "5,000 digits"),
        ("metadata.task.classes", str(10**400), "401 digits"),
    ],
)
def test_a_number_no_float_can_hold_is_refused_naming_the_entry(
    model_file: Path, entry: str, number: str, words: str
) -> None:
    doc = json.loads(model_file.read_text())
    doc["metadata"] = {"task": {"loss": "hinge", "classes": 2}}
    keys = re.findall(r"\w+|\d+", entry)
    place = doc
    for key in keys[:-1]:
        place = place[int(key) if key.isdigit() else key]
    place[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = "NUMBER"
    model_file.write_text(json.dumps(doc).replace('"NUMBER"', number))
    with pytest.raises(ModelFileError) as caught:
        load(model_file)
    message = str(caught.value)
    assert message.startswith(f"{model_file}: the entry {entry} holds ")
    assert re.search(words, message) and message.endswith(
        "too large for a float; not a model file written by chainrule"
    )


def test_save_refuses_metadata_that_load_would_refuse(tmp_path: Path) -> None:
    model = MLP(2, [1], rng=random.Random(0))
    with pytest.raises(ValueError, match=r"save: the entry metadata\.run\[1\] holds an integer"):
        save(model, tmp_path / "m.json", metadata={"run": [1, 10**400]})
    assert list(tmp_path.iterdir()) == []
