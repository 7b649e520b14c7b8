"""Module, Neuron, Layer, MLP and model files."""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule import Value, dot
from chainrule.nn import (
    ACTIVATIONS,
    DEFAULT_ACTIVATION,
    MLP,
    Layer,
    ModelFileError,
    Module,
    Neuron,
    load,
    load_with_metadata,
    save,
)
from chainrule.optim import SGD
from chainrule.training import TrainConfig


def test_parameter_counts() -> None:
    assert MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh").num_parameters() == 41
    assert len(MLP(2, [16, 16, 1], activation="relu").parameters()) == 337


ACTS = {
    "tanh": math.tanh,
    "relu": lambda z: max(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-z)),
    "linear": lambda z: z,
}


def by_hand(model: MLP, x: list[float]) -> list[float]:
    """``model``'s outputs for ``x``, worked out from its weights with plain floats."""
    for layer in model.layers:
        act = ACTS[layer.activation]
        x = [act(sum(w.data * v for w, v in zip(n.w, x, strict=True)) + n.b.data)
             for n in layer.neurons]  # fmt: skip
    return x


def test_outputs_are_the_activations_of_the_weighted_sums() -> None:
    model = MLP(3, [4, 2], activation="tanh", output_activation="sigmoid")
    out = model([1.0, -2.0, 0.5])
    assert isinstance(out, list)
    assert [v.data for v in out] == pytest.approx(by_hand(model, [1.0, -2.0, 0.5]), rel=1e-12)
    # One output: the Value itself (not a list of one), from numbers or Values alike.
    one = MLP(3, [4, 1], rng=random.Random(3))
    single = one([1.0, Value(2.0), 3])
    assert isinstance(single, Value)
    assert single.data == pytest.approx(by_hand(one, [1.0, 2.0, 3.0])[0], rel=1e-12)
    layer = Layer(2, 1, "tanh", rng=random.Random(5))
    (neuron,) = layer.neurons
    expected = math.tanh(neuron.w[0].data * 1.0 + neuron.w[1].data * 2.0 + neuron.b.data)
    assert layer([1.0, 2.0]).data == pytest.approx(expected, rel=1e-12)  # type: ignore[union-attr]
    # forward: the same outputs for Values already checked, always as a list.
    assert [v.data for v in one.forward([Value(1.0), Value(2.0), Value(3.0)])] == [single.data]
    assert [v.data for v in layer.forward([Value(1.0), Value(2.0)])] == [layer([1.0, 2.0]).data]  # type: ignore[union-attr]
    assert len(Layer(2, 3)([1.0, 2.0])) == 3  # type: ignore[arg-type]
    assert [layer.activation for layer in model.layers] == ["tanh", "sigmoid"]
    assert [layer.activation for layer in MLP(2, [3, 3, 1]).layers] == ["tanh", "tanh", "linear"]


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
    with pytest.raises(ValueError, match="missing"):
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


class Scaled(Module):
    """A user's module: a Value attribute and a list of Layers, nothing overridden."""

    def __init__(self) -> None:
        self.scale = Value(2.0)
        self.note = "not a parameter"
        self.layers = [Layer(2, 3, rng=random.Random(0)), Layer(3, 1, rng=random.Random(1))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return self.scale * x[0]


def test_a_subclass_gets_its_parameters_from_its_attributes() -> None:
    model = Scaled()
    names = [name for name, _ in model.named_parameters()]
    expected = ["scale"] + [
        f"layers.{i}.neurons.{j}.{p}"
        for i, (nin, nout) in enumerate([(2, 3), (3, 1)])
        for j in range(nout)
        for p in [*(f"w.{k}" for k in range(nin)), "b"]
    ]
    assert names == expected
    ps = model.parameters()
    assert same_values(ps, [p for _, p in model.named_parameters()]) and len(ps) == 14
    assert ps[0] is model.scale and ps[1] is model.layers[0].neurons[0].w[0]
    state = model.state_dict()
    assert list(state) == expected
    # and it trains: every parameter gets a gradient and moves
    opt = SGD(ps, lr=0.1)
    out = model([Value(0.5), Value(-1.0)])
    out.backward()
    assert model.scale.grad == out.data / model.scale.data
    before = [p.data for p in ps]
    opt.step()
    assert [p.data for p in ps] == [x - 0.1 * p.grad for x, p in zip(before, ps, strict=True)]
    model.zero_grad()
    assert all(p.grad == 0.0 for p in ps)


def test_shared_parameters_are_listed_once_under_their_first_name() -> None:
    model = Scaled()
    model.tied = model.layers[1].neurons[0].b  # the same Value twice
    model.again = model.layers[0]  # the same module twice
    model.ring = [model]  # a module that holds itself: the walk must end
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(names)) == 14
    assert "tied" not in names and not any(n.startswith(("again.", "ring.")) for n in names)
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])
    SGD(model.parameters(), lr=0.1)  # each once: the optimiser accepts them


def test_default_activation_is_one_constant_for_every_building_block() -> None:
    assert DEFAULT_ACTIVATION in ACTIVATIONS
    assert Neuron(2).activation == DEFAULT_ACTIVATION
    assert Layer(2, 3).activation == DEFAULT_ACTIVATION
    assert MLP(2, [3, 3, 1]).activation == DEFAULT_ACTIVATION
    assert [layer.activation for layer in MLP(2, [3, 3, 1]).layers] == [
        DEFAULT_ACTIVATION,
        DEFAULT_ACTIVATION,
        "linear",
    ]
    assert DEFAULT_ACTIVATION == "tanh"  # the lecture's neuron
    assert TrainConfig().activation == "relu"  # the command line's: the reference demo's


LECTURE_XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
LECTURE_YS = [1.0, -1.0, -1.0, 1.0]


def lecture_loop(n: MLP, steps: int = 20) -> list[float]:
    """The training loop of the lecture's second notebook, as written there."""
    losses = []
    for _ in range(steps):
        ypred = [n(x) for x in LECTURE_XS]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(LECTURE_YS, ypred, strict=True))
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        for p in n.parameters():
            p.data += -0.1 * p.grad
        losses.append(loss.data)
    return losses


@pytest.mark.parametrize("seed", range(20))
def test_the_lectures_loop_trains_the_default_mlp_on_every_seed(seed: int) -> None:
    random.seed(seed)
    losses = lecture_loop(MLP(3, [4, 4, 1]))
    assert losses[-1] < 0.1 and losses[-1] < losses[0] / 10


def test_the_reference_implementations_neuron_spelling_nonlin() -> None:
    assert Neuron(3, nonlin=False).activation == "linear"
    assert Neuron(3, nonlin=True).activation == "relu"
    assert Layer(3, 2, nonlin=False).activation == "linear"
    x = [1.0, -2.0, 0.5]
    n = Neuron(3, nonlin=False, rng=random.Random(0))
    expected = sum(w.data * xi for w, xi in zip(n.w, x, strict=True)) + n.b.data
    assert n(x).data == pytest.approx(expected, rel=1e-15)
    for activation in ("sigmoid", "tanh"):
        with pytest.raises(ValueError, match="not both"):
            Neuron(3, activation, nonlin=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nonlin must be True or False"):
        Neuron(3, nonlin="yes")  # type: ignore[arg-type]


class SameName(Module):
    """A module whose ``==`` looks at a name only: equal to any layer, by its own rule."""

    def __init__(self, layer: Layer) -> None:
        self.name = "layer"
        self.inner = Layer(layer.nin, layer.nout)

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = Module.__hash__


def mutations():
    """Ways a user changes a model by hand; parameters() must follow each one."""

    def replace_list_by_an_equal_copy_then_grow_it(m):
        n = m.layers[0].neurons[0]
        n.w = list(n.w)  # equal to the old list, but a different one
        n.w.append(Value(9.0))

    def write_into_the_attribute_dict(m):
        vars(m.layers[1])["extra"] = Value(1.0)

    def move_an_attribute_to_the_end(m):
        scale = m.scale
        del m.scale
        m.scale = scale

    def nest_a_list_then_grow_the_inner_one(m):
        m.groups = [[Value(1.0)], (Value(2.0),)]
        m.parameters()
        inner = list(m.groups[0])
        m.groups[0] = inner  # an equal copy inside a list
        inner.append(Value(3.0))

    def use_a_dict(m):
        m.heads = {"a": Neuron(1), "b": Value(4.0)}
        m.parameters()
        m.heads["c"] = Value(5.0)

    def swap_in_a_module_that_claims_to_be_equal(m):
        m.layers[1] = SameName(m.layers[1])

    return [
        lambda m: setattr(m.layers[-1].neurons[-1], "extra", Value(1.0)),  # the last one read
        swap_in_a_module_that_claims_to_be_equal,
        lambda m: m.layers[0].neurons[1].w.append(Value(0.5)),
        lambda m: m.layers[1].neurons.append(Neuron(3)),
        lambda m: m.layers.reverse(),
        lambda m: m.layers.pop(),
        lambda m: m.layers[0].neurons.__setitem__(0, Neuron(2)),
        lambda m: setattr(m, "scale", Value(3.0)),
        lambda m: setattr(m, "note", Value(3.0)),
        lambda m: setattr(m.layers[0].neurons[0], "b", Value(1.0)),
        lambda m: delattr(m, "scale"),
        lambda m: m.layers[0].neurons[2].w.__setitem__(0, Neuron(1)),  # not only Values now
        replace_list_by_an_equal_copy_then_grow_it,
        write_into_the_attribute_dict,
        move_an_attribute_to_the_end,
        nest_a_list_then_grow_the_inner_one,
        use_a_dict,
    ]


@pytest.mark.parametrize("change", mutations())
def test_parameters_follow_every_change_to_the_model(change) -> None:
    assert Value.__eq__ is object.__eq__  # the memo compares lists of Values with ==
    model = Scaled()
    before = model.parameters()
    assert model.parameters() == before  # remembered
    change(model)
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])
    assert not same_values(model.parameters(), before)


def test_attributes_with_their_own_equality_do_not_confuse_parameters() -> None:
    model = Scaled()
    model.batch = np.arange(6.0)  # NumPy's == is elementwise: never asked
    model.parameters()
    model.batch = np.arange(6.0) + 1.0
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])


def test_models_copy_and_pickle_without_their_memo() -> None:
    model = Scaled()
    model.parameters()
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        ps = twin.parameters()
        assert [p.data for p in ps] == [p.data for p in model.parameters()]
        assert not any(p is q for p, q in zip(ps, model.parameters(), strict=True))
        assert same_values(ps, [p for _, p in twin.named_parameters()])


def test_an_override_of_named_parameters_still_drives_parameters() -> None:
    class Frozen(MLP):  # leaves the first layer out of training
        def named_parameters(self) -> list[tuple[str, Value]]:
            return [(n, p) for n, p in super().named_parameters() if not n.startswith("layers.0")]

    model = Frozen(2, [3, 1], rng=random.Random(0))
    assert same_values(model.parameters(), [p for _, p in model.named_parameters()])
    assert len(model.parameters()) == 4


def test_load_state_dict_strict_and_not() -> None:
    model = MLP(2, [2, 1], rng=random.Random(0))
    state = model.state_dict()
    partial = {k: v + 1.0 for k, v in state.items() if k.startswith("layers.1")}
    extra = {**partial, "layers.9.neurons.0.b": 0.0, "bias": 1.0}
    with pytest.raises(ValueError, match="strict=True") as info:
        model.load_state_dict(extra)
    message = str(info.value)
    assert "missing layers.0.neurons.0.w.0, layers.0.neurons.0.w.1" in message
    assert "unexpected layers.9.neurons.0.b, bias" in message
    assert model.state_dict() == state  # nothing changed
    missing, unexpected = model.load_state_dict(extra, strict=False)
    assert missing == [k for k in state if k not in partial]
    assert unexpected == ["layers.9.neurons.0.b", "bias"]
    assert model.state_dict() == {**state, **partial}  # the intersection was loaded
    assert model.load_state_dict(state) == ([], [])
    with pytest.raises(ValueError, match="finite"):
        model.load_state_dict({**partial, "layers.1.neurons.0.b": math.inf}, strict=False)
    assert model.state_dict() == state  # checked before anything changed
    with pytest.raises(TypeError, match="expected a dict, got list"):
        model.load_state_dict([1.0])  # type: ignore[arg-type]
    big = MLP(2, [16, 1], rng=random.Random(0))
    with pytest.raises(ValueError, match=f"and {big.num_parameters() - 10} more; unexpected none"):
        big.load_state_dict({})


def test_repr_is_readable() -> None:
    text = repr(MLP(2, [3, 1], activation="relu"))
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
