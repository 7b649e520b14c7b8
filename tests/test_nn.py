"""Module, Neuron, Layer, MLP and model files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from chainrule import Value, dot
from chainrule.nn import (
    MLP,
    Layer,
    ModelFileError,
    Module,
    Neuron,
    load,
    load_with_metadata,
    save,
)


def test_parameter_counts() -> None:
    assert MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh").num_parameters() == 41
    assert len(MLP(2, [16, 16, 1], activation="relu").parameters()) == 337


def test_output_shapes_and_activations() -> None:
    model = MLP(3, [4, 2], activation="tanh", output_activation="sigmoid")
    out = model([1.0, -2.0, 0.5])
    assert isinstance(out, list) and len(out) == 2
    assert all(0 < v.data < 1 for v in out)
    single = MLP(3, [4, 1])([1.0, Value(2.0), 3])
    assert isinstance(single, Value)
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    assert len(Layer(2, 3)([1.0, 2.0])) == 3  # type: ignore[arg-type]
    assert [layer.activation for layer in model.layers] == ["tanh", "sigmoid"]
    assert [layer.activation for layer in MLP(2, [3, 3, 1]).layers] == ["relu", "relu", "linear"]


def test_wrong_input_size_names_both_sizes() -> None:
    with pytest.raises(ValueError, match="MLP: expected 3 inputs, got 2"):
        MLP(3, [4, 1])([1.0, 2.0])
    with pytest.raises(ValueError, match="Neuron: expected 2 inputs, got 3"):
        Neuron(2)([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="expected a sequence of 3 numbers, got str"):
        MLP(3, [1])("abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nin": 0, "nouts": [1]}, "nin must be a positive integer"),
        ({"nin": 2, "nouts": []}, "at least one layer"),
        ({"nin": 2, "nouts": [0]}, "layer size"),
        ({"nin": 2, "nouts": [1], "activation": "gelu"}, "unknown activation 'gelu'"),
        ({"nin": 2, "nouts": [1], "init": "zeros"}, "unknown init 'zeros'"),
    ],
)
def test_bad_constructor_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


def test_initialisation_is_reproducible_and_scaled() -> None:
    random.seed(7)
    a = MLP(2, [8, 1]).state_dict()
    random.seed(7)
    assert MLP(2, [8, 1]).state_dict() == a
    assert (
        MLP(2, [8, 1], rng=random.Random(3)).state_dict()
        == MLP(2, [8, 1], rng=random.Random(3)).state_dict()
    )
    uniform = MLP(100, [100], rng=random.Random(0)).layers[0].neurons[0].w
    assert all(-1 < w.data < 1 for w in uniform)
    xavier = [w.data for w in MLP(100, [100], init="xavier", rng=random.Random(0)).parameters()]
    assert max(abs(w) for w in xavier) <= math.sqrt(6 / 200)
    he = [
        w.data
        for n in MLP(200, [50], init="he", rng=random.Random(0)).layers[0].neurons
        for w in n.w
    ]
    std = math.sqrt(sum(w * w for w in he) / len(he))
    assert std == pytest.approx(math.sqrt(2 / 200), rel=0.05)


def test_same_weights_as_the_reference_implementation() -> None:
    """Seeded like micrograd, an MLP starts from micrograd's very weights."""
    import micrograd.nn

    random.seed(1337)
    theirs = [p.data for p in micrograd.nn.MLP(2, [16, 16, 1]).parameters()]
    random.seed(1337)
    assert MLP(2, [16, 16, 1]).parameters()[0].data == theirs[0]
    assert [p.data for p in MLP(2, [16, 16, 1], rng=random.Random(1337)).parameters()] == theirs


def test_forward_and_gradients_match_torch() -> None:
    model = MLP(3, [4, 3, 2], activation="tanh", output_activation="sigmoid", rng=random.Random(0))
    x = [0.3, -1.2, 2.0]
    out = model(x)
    loss = out[0] * out[1] + out[1]  # type: ignore[index]
    loss.backward()
    tensors = []
    h = torch.tensor(x, dtype=torch.float64)
    for i, layer in enumerate(model.layers):
        W = torch.tensor(
            [[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64, requires_grad=True
        )
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        tensors.append((W, b))
        z = W @ h + b
        h = torch.tanh(z) if i < len(model.layers) - 1 else torch.sigmoid(z)
    tloss = h[0] * h[1] + h[1]
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    for layer, (W, b) in zip(model.layers, tensors, strict=True):
        for j, n in enumerate(layer.neurons):
            assert [w.grad for w in n.w] == pytest.approx(W.grad[j].tolist(), rel=1e-10)
            assert n.b.grad == pytest.approx(b.grad[j].item(), rel=1e-10)


def test_named_parameters_state_dict_and_zero_grad() -> None:
    model = MLP(2, [2, 1], rng=random.Random(0))
    names = [n for n, _ in model.named_parameters()]
    assert names[:3] == ["layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1", "layers.0.neurons.0.b"]
    assert len(set(names)) == len(names) == 9
    model([1.0, 2.0]).backward()  # type: ignore[union-attr]
    assert any(p.grad for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    state = model.state_dict()
    other = MLP(2, [2, 1], rng=random.Random(1))
    other.load_state_dict(state)
    assert other.state_dict() == state
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"layers.0.neurons.0.b": 1.0})
    before = other.state_dict()
    with pytest.raises(ValueError, match="finite"):
        other.load_state_dict({**state, "layers.1.neurons.0.b": math.nan})
    assert other.state_dict() == before  # nothing changed


def same_values(a: list[Value], b: list[Value]) -> bool:
    """The same Value objects (not merely equal numbers), in the same order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Neuron(3),
        lambda: Layer(3, 4),
        lambda: MLP(2, [16, 16, 1]),
        lambda: MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh"),
    ],
    ids=["Neuron", "Layer", "MLP-2-16-16-1", "MLP-lecture"],
)
def test_parameters_are_the_named_parameters_in_order(make) -> None:
    model = make()
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])
    assert model.num_parameters() == len(model.named_parameters())


def test_parameters_are_built_afresh_and_follow_changes_to_the_model() -> None:
    model = MLP(2, [3, 1], rng=random.Random(0))
    model.parameters().clear()  # the caller's list is the caller's own
    assert len(model.parameters()) == 13
    extra = Value(0.5)
    model.layers[0].neurons[1].w.append(extra)  # a model mutated by hand: nothing stale
    assert extra in model.parameters()
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])


def test_subclasses_that_only_name_their_parameters_still_list_them() -> None:
    class Scaled(Module):
        def __init__(self) -> None:
            self.body = MLP(2, [3, 1], rng=random.Random(0))
            self.scale = Value(2.0)

        def named_parameters(self) -> list[tuple[str, Value]]:
            inner = [(f"body.{n}", p) for n, p in self.body.named_parameters()]
            return [*inner, ("scale", self.scale)]

    class WithTemperature(MLP):  # redefines named_parameters only: MLP's shortcut must not hide it
        def __init__(self) -> None:
            super().__init__(2, [3, 1], rng=random.Random(0))
            self.temperature = Value(1.0)

        def named_parameters(self) -> list[tuple[str, Value]]:
            return [*super().named_parameters(), ("temperature", self.temperature)]

    for model, extra in ((Scaled(), "scale"), (WithTemperature(), "temperature")):
        ps = model.parameters()
        assert same_values(ps, [p for _, p in model.named_parameters()])
        assert ps[-1] is getattr(model, extra) and len(ps) == 14
        ps[-1].grad = 1.0
        model.zero_grad()
        assert ps[-1].grad == 0.0


def test_repr_is_readable() -> None:
    text = repr(MLP(2, [3, 1]))
    assert "Layer(2, 3, activation='relu')" in text and "13 parameters" in text
    assert repr(Neuron(2, "tanh")) == "Neuron(2, activation='tanh')"


def test_dot_is_one_node_with_the_chains_value_and_gradients() -> None:
    w = [Value(0.5), Value(-1.5), Value(2.0)]
    x = [Value(1.0), Value(3.0), Value(-0.25)]
    b = Value(0.1)
    fused = dot(w, x, b).tanh()
    fused.backward()
    fused_grads = [v.grad for v in (*w, *x, b)]
    for v in (*w, *x, b):
        v.grad = 0.0
    chain = b
    for wi, xi in zip(w, x, strict=True):
        chain = chain + wi * xi
    chain = chain.tanh()
    chain.backward()
    assert fused.data == pytest.approx(chain.data, rel=1e-15)
    assert fused_grads == pytest.approx([v.grad for v in (*w, *x, b)], rel=1e-14)
    assert len(fused._prev[0]._prev) == 7  # one dot node: (*w, *x, b)
    with pytest.raises(ValueError, match="w has 3 entries but x has 2"):
        dot(w, x[:2])


# -- model files --------------------------------------------------------------------------


def trained_model() -> MLP:
    model = MLP(2, [5, 3, 1], activation="tanh", rng=random.Random(4))
    for p in model.parameters():
        p.data += 1e-3 * random.Random(id(p) % 97).random()  # arbitrary, full-precision floats
    return model


def test_save_load_reproduces_outputs_exactly(tmp_path: Path) -> None:
    model = trained_model()
    path = save(model, tmp_path / "m" / "model.json", metadata={"task": {"loss": "hinge"}})
    loaded, meta = load_with_metadata(path)
    assert meta == {"task": {"loss": "hinge"}}
    assert loaded.architecture() == model.architecture()
    for x in ([0.1, 0.2], [-3.0, 7.5], [1e-3, -2.0]):
        assert loaded(x).data == model(x).data  # type: ignore[union-attr]
    assert not list(tmp_path.glob("m/.*tmp"))  # no temporary files left behind


def test_model_file_is_plain_json_without_pickle(tmp_path: Path) -> None:
    path = save(trained_model(), tmp_path / "model.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "chainrule.model" and doc["version"] == 1
    assert doc["architecture"]["nouts"] == [5, 3, 1]
    assert len(doc["layers"][1]["weights"]) == 3 and len(doc["layers"][1]["weights"][0]) == 5


def tamper(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "unknown model file version 2"),
        (lambda d: d.update(format="other"), "not a chainrule model file"),
        (lambda d: d["layers"][0]["weights"].pop(), r"layer 0: expected 5x2 weights"),
        (lambda d: d["layers"][1]["biases"].append(0.0), r"layer 1: expected 3x5 weights"),
        (lambda d: d["layers"].pop(), "3 layers but the file holds 2"),
        (lambda d: d["architecture"].update(activation="gelu"), "invalid architecture"),
        (lambda d: d["layers"][2]["weights"][0].__setitem__(0, "x"), "must be numbers"),
        (lambda d: d["layers"][2]["biases"].__setitem__(0, True), "must be numbers"),
        (lambda d: d["layers"][0]["biases"].__setitem__(0, 1e999), "non-finite"),
    ],
)
def test_tampered_files_get_clear_errors(tmp_path: Path, change, message) -> None:
    path = save(trained_model(), tmp_path / "model.json")
    tamper(path, change)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_truncated_and_non_finite_files(tmp_path: Path) -> None:
    path = save(trained_model(), tmp_path / "model.json")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt JSON"):
        load(path)
    path.write_text(text.replace('"biases": [\n  ', '"biases": [\n  NaN, ', 1))
    with pytest.raises(ModelFileError, match="non-finite number NaN"):
        load(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        load(tmp_path / "missing.json")


def test_refuses_to_save_a_diverged_model(tmp_path: Path) -> None:
    model = trained_model()
    model.parameters()[3].data = math.inf
    with pytest.raises(ValueError, match="non-finite parameter"):
        save(model, tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()
