"""Export an MLP to PyTorch (``safetensors``) or ONNX, and import a ``safetensors`` file back.

An :class:`~chainrule.nn.MLP` with layer sizes ``nin → n1 → … → nk`` is the PyTorch
model ``torch.nn.Sequential(Linear(nin, n1), Act(), Linear(n1, n2), Act(), …)``: each
layer computes ``act(x Wᵀ + b)``, where row ``j`` of ``W`` is neuron ``j``'s weights.
A ``"linear"`` activation adds no module, so the indices of the ``Sequential`` (and the
key names of its ``state_dict``: ``0.weight``, ``0.bias``, ``2.weight``, …) follow from
the architecture alone.

:func:`to_safetensors` writes that ``state_dict`` as float64 tensors (every chainrule
parameter exactly) with the architecture and the model file's metadata (the task, for
``chainrule predict``) in the file's string metadata, so :func:`from_safetensors` can
build the same model again. :func:`to_onnx` writes the same computation as an ONNX graph
of ``Gemm`` and activation nodes with float64 weights. No pickle anywhere: safetensors
is a JSON header and raw little-endian numbers; ONNX is a protocol buffer.

The engine and ``nn`` need only the standard library; ``safetensors`` and ``onnx`` (the
``chainrule[export]`` extra) are imported here on first use.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError
from chainrule.io.files import atomic_write_bytes, parse_json_text, read_bounded_bytes
from chainrule.io.model_files import (
    FORMAT,
    MAX_MODEL_BYTES,
    VERSION,
    ModelFileError,
    check_architecture,
)
from chainrule.nn import MLP

__all__ = [
    "EXPORT_FORMATS",
    "MAX_METADATA_DEPTH",
    "ONNX_OPSET",
    "MissingDependencyError",
    "ModelFileError",
    "from_safetensors",
    "pytorch_lines",
    "sequential_layout",
    "to_onnx",
    "to_safetensors",
]

#: The formats ``chainrule export`` writes, with the suffix their files end in.
EXPORT_FORMATS: dict[str, str] = {"safetensors": ".safetensors", "onnx": ".onnx"}

#: The PyTorch module of each activation (``"linear"``: none).
_TORCH_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid"}

#: The ONNX operator of each activation (``"linear"``: none).
_ONNX_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}

#: The ONNX operator set the exported graphs declare.
ONNX_OPSET = 17


class MissingDependencyError(ChainruleError, ImportError):
    """An optional package that export needs is not installed."""


def _require(module: str) -> Any:
    """Import ``module`` or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"exporting needs the {package} package: pip install 'chainrule[export]'"
        ) from None


def _layer_activations(model: MLP) -> list[str]:
    return [layer.activation for layer in model.layers]


def sequential_layout(model: MLP) -> list[tuple[int, str | None]]:
    """For each layer, the index of its ``Linear`` in the equivalent ``Sequential`` and
    its activation (``None`` for ``"linear"``: no module follows)."""
    layout: list[tuple[int, str | None]] = []
    index = 0
    for activation in _layer_activations(model):
        act = None if activation == "linear" else activation
        layout.append((index, act))
        index += 1 if act is None else 2
    return layout


def _state_dict(model: MLP) -> dict[str, Any]:
    """The ``Sequential``'s ``state_dict`` as float64 NumPy arrays."""
    import numpy as np

    tensors: dict[str, Any] = {}
    for layer, (index, _) in zip(model.layers, sequential_layout(model), strict=True):
        weight = np.array([[w.data for w in n.w] for n in layer.neurons], dtype=np.float64)
        bias = np.array([n.b.data for n in layer.neurons], dtype=np.float64)
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise ModelFileError(
                f"layer {index} has a non-finite parameter (training diverged?); not exporting"
            )
        tensors[f"{index}.weight"] = weight
        tensors[f"{index}.bias"] = bias
    return tensors


def pytorch_lines(model: MLP, path: str | os.PathLike[str]) -> list[str]:
    """Three lines of Python that build the equivalent ``torch.nn.Sequential`` (float64)
    and load the weights exported to ``path`` into it."""
    modules: list[str] = []
    for layer in model.layers:
        modules.append(f"torch.nn.Linear({layer.nin}, {layer.nout})")
        if layer.activation != "linear":
            modules.append(f"torch.nn.{_TORCH_ACTIVATIONS[layer.activation]}()")
    return [
        "import torch; from safetensors.torch import load_file",
        f"model = torch.nn.Sequential({', '.join(modules)}).double()",
        f"model.load_state_dict(load_file({str(path)!r}))",
    ]


def to_safetensors(
    model: MLP, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights to ``path`` (atomically) in the safetensors format.

    The keys are those of the equivalent ``torch.nn.Sequential``'s ``state_dict``; the
    file's metadata holds ``format``, ``version``, ``architecture`` and ``metadata`` (the
    last two as JSON text), which :func:`from_safetensors` reads back.
    """
    st = _require("safetensors.numpy")
    header = {
        "format": FORMAT,
        "version": str(VERSION),
        "architecture": json.dumps(model.architecture()),
        "metadata": json.dumps(metadata or {}, allow_nan=False),
    }
    data: bytes = st.save(_state_dict(model), metadata=header)
    return atomic_write_bytes(path, data)


def to_onnx(
    model: MLP, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` (atomically) as an ONNX graph, checked by ``onnx.checker``.

    Input ``input`` is float64 of shape ``(batch, nin)``, output ``output`` of shape
    ``(batch, nout)``: one ``Gemm`` (``x Wᵀ + b``) per layer, then its activation. The
    architecture and the model file's metadata are kept in the model's metadata_props.
    """
    onnx = _require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    tensors = _state_dict(model)
    nodes = []
    initializers = []
    current = "input"
    for i, (layer, (index, act)) in enumerate(
        zip(model.layers, sequential_layout(model), strict=True)
    ):
        weight, bias = f"{index}.weight", f"{index}.bias"
        initializers.append(numpy_helper.from_array(tensors[weight], weight))
        initializers.append(numpy_helper.from_array(tensors[bias], bias))
        last = i == len(model.layers) - 1
        out = "output" if last and act is None else f"linear{index}"
        nodes.append(helper.make_node("Gemm", [current, weight, bias], [out], transB=1))
        current = out
        if act is not None:
            out = "output" if last else f"act{index}"
            nodes.append(helper.make_node(_ONNX_ACTIVATIONS[layer.activation], [current], [out]))
            current = out
    graph = helper.make_graph(
        nodes,
        "chainrule_mlp",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["batch", model.nin])],
        [helper.make_tensor_value_info("output", TensorProto.DOUBLE, ["batch", model.nouts[-1]])],
        initializer=initializers,
    )
    proto = helper.make_model(
        graph,
        producer_name="chainrule",
        opset_imports=[helper.make_operatorsetid("", ONNX_OPSET)],
    )
    helper.set_model_props(
        proto,
        {
            "format": FORMAT,
            "version": str(VERSION),
            "architecture": json.dumps(model.architecture()),
            "metadata": json.dumps(metadata or {}, allow_nan=False),
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(path, proto.SerializeToString())


#: How deeply the JSON in a safetensors file's metadata may nest. chainrule writes a
#: few levels; a deeper one is refused as a crafted file, before Python's recursion
#: limit (or the model file it would become) can trip over it.
MAX_METADATA_DEPTH = 64


def _header_json(header: dict[str, str], name: str, default: str | None = None) -> Any:
    """The JSON value of the header entry ``name`` (the architecture, the model file's
    metadata), with the checks of every JSON chainrule reads back
    (:func:`chainrule.io.files.parse_json_text`: no NaN or infinities, no number beyond
    a float's range, named by its entry) and at most :data:`MAX_METADATA_DEPTH` levels
    deep: what no file of :func:`to_safetensors` holds, and what the model file it
    becomes could not hold."""
    text = header.get(name, default)
    assert text is not None  # (the architecture's presence is checked before)
    try:
        return parse_json_text(
            text, "safetensors file", ModelFileError, max_depth=MAX_METADATA_DEPTH
        )
    except ModelFileError as exc:
        raise ModelFileError(f"its {name} metadata: {exc}") from None


def from_safetensors(path: str | os.PathLike[str]) -> tuple[MLP, dict[str, Any]]:
    """The model (and the model file's metadata) in a file written by :func:`to_safetensors`.

    Everything is checked before the model is built: the file's size (at most
    :data:`~chainrule.nn.MAX_MODEL_BYTES`), the JSON in its metadata (finite numbers
    within a float's range, at most :data:`MAX_METADATA_DEPTH` levels deep), the
    architecture in it, that the
    tensor names and shapes are exactly those of the ``Sequential``, and that every
    number is finite. Raises :class:`~chainrule.nn.ModelFileError`, naming the file.
    """
    source = Path(path)
    data = read_bounded_bytes(
        source,
        kind="safetensors file",
        limit=MAX_MODEL_BYTES,
        limit_name="chainrule.nn.MAX_MODEL_BYTES",
        error=ModelFileError,
    )
    try:
        return _from_safetensors(source, data)
    except ModelFileError as exc:
        raise ModelFileError(f"{source}: {exc}") from None


def _from_safetensors(source: Path, data: bytes) -> tuple[MLP, dict[str, Any]]:
    """:func:`from_safetensors` of the file ``source`` holding ``data``."""
    header, tensors = _header_and_tensors(source, data)
    arch = _header_json(header, "architecture")
    metadata = _header_json(header, "metadata", "{}")
    if not isinstance(metadata, dict):
        raise ModelFileError("its metadata must be a JSON object")
    nin, nouts, activation, output_activation = check_architecture(arch)
    model = MLP(
        nin,
        nouts,
        activation=activation,  # type: ignore[arg-type]  # both checked above
        output_activation=output_activation,  # type: ignore[arg-type]
        rng=random.Random(0),  # every parameter is overwritten below
    )
    _check_tensors(model, tensors)
    for layer, (index, _) in zip(model.layers, sequential_layout(model), strict=True):
        weight = tensors[f"{index}.weight"].astype("float64").tolist()
        bias = tensors[f"{index}.bias"].astype("float64").tolist()
        for neuron, row, b in zip(layer.neurons, weight, bias, strict=True):
            for p, w in zip(neuron.w, row, strict=True):
                p.data = float(w)
            neuron.b.data = float(b)
    assert all(math.isfinite(p.data) for p in model.parameters())
    return model, metadata


def _header_and_tensors(source: Path, data: bytes) -> tuple[dict[str, str], dict[str, Any]]:
    """The string metadata and the tensors of the safetensors file ``source`` (``data``),
    with the metadata's format and version checked."""
    st = _require("safetensors.numpy")
    safetensors = _require("safetensors")
    try:
        # The header alone first (no tensors decoded), then the tensors.
        with safetensors.safe_open(source, framework="numpy") as handle:
            header: dict[str, str] = handle.metadata() or {}
        tensors: dict[str, Any] = st.load(data)
    except Exception as exc:  # the library's SafetensorError and friends: not a valid file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"not a safetensors file ({reason:.100})") from None
    if header.get("format") != FORMAT or "architecture" not in header:
        raise ModelFileError(
            "has no chainrule architecture in its metadata; "
            "import reads the files `chainrule export` writes"
        )
    if header.get("version") != str(VERSION):
        raise ModelFileError(
            f"unknown version {header.get('version')!r:.40}; this chainrule reads {VERSION}"
        )
    return header, tensors


def _check_tensors(model: MLP, tensors: dict[str, Any]) -> None:
    """Raise :class:`ModelFileError` unless ``tensors`` are exactly the ``Sequential``'s of
    ``model``: the same names, float arrays of the same shapes, finite numbers."""
    import numpy as np

    expected: dict[str, tuple[int, ...]] = {}
    for layer, (index, _) in zip(model.layers, sequential_layout(model), strict=True):
        expected[f"{index}.weight"] = (layer.nout, layer.nin)
        expected[f"{index}.bias"] = (layer.nout,)
    if set(tensors) != set(expected):
        raise ModelFileError(
            f"expected the tensors {sorted(expected)} for the architecture, "
            f"found {sorted(tensors)}"[:200]
        )
    for name, shape in expected.items():
        array = tensors[name]
        if tuple(array.shape) != shape or array.dtype.kind != "f":
            raise ModelFileError(
                f"tensor {name}: expected float of shape {shape}, "
                f"found {array.dtype} of shape {tuple(array.shape)}"
            )
        if not np.isfinite(array).all():
            raise ModelFileError(f"tensor {name}: non-finite parameter")
