"""Reading model files: cheap checks before anything is built, one clear error each."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chainrule import nn
from chainrule.nn import MLP, ModelFileError, load, load_with_metadata, save


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return save(MLP(2, [3, 1], rng=random.Random(0)), tmp_path / "model.json")


def forbid_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built from a file that does not fit")

    monkeypatch.setattr(nn, "MLP", fail)


def test_a_file_over_the_size_cap_is_refused_unread(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = model_file.stat().st_size
    monkeypatch.setattr(nn, "MAX_MODEL_BYTES", size)
    assert load(model_file).num_parameters() == 13  # exactly at the cap: fine
    monkeypatch.setattr(nn, "MAX_MODEL_BYTES", size - 1)
    with pytest.raises(ModelFileError, match=f"larger than {size - 1:,} bytes"):
        load(model_file)


def test_a_device_without_end_is_read_only_up_to_the_cap(monkeypatch) -> None:
    monkeypatch.setattr(nn, "MAX_MODEL_BYTES", 4096)
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
