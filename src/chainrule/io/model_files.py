"""Model files of an :class:`~chainrule.nn.MLP`: versioned JSON, never pickle.

:func:`save` writes a model atomically (:func:`model_document` is what it writes);
:func:`load` checks everything before it builds: the file's size (at most
:data:`MAX_MODEL_BYTES`), its JSON (:func:`chainrule.io.files.read_json_file`), the
format and version (:func:`read_model_file`, shared with :mod:`chainrule.gpt`'s model
files), the architecture (:func:`check_architecture`, at most
:data:`MAX_MODEL_PARAMETERS` parameters) and every layer's shape and number.

Built on ``nn`` (the MLP it writes and builds); ``nn`` does not import this module, and
offers its names (``chainrule.nn.save``, ``chainrule.nn.MAX_MODEL_PARAMETERS``, ...) by
loading it on first use. This module needs only the standard library.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError
from chainrule.io.files import (
    MAX_FLOAT_CHARS,
    atomic_write_text,
    find_number_beyond_float,
    read_json_file,
)
from chainrule.nn import MLP, check_mlp_config, count_parameters

__all__ = [
    "FORMAT",
    "MAX_FLOAT_CHARS",
    "MAX_MODEL_BYTES",
    "MAX_MODEL_PARAMETERS",
    "MODEL_BYTES_PER_PARAMETER",
    "MODEL_HEADER_BYTES",
    "VERSION",
    "ModelFileError",
    "check_architecture",
    "check_parameter_count",
    "find_number_beyond_float",
    "load",
    "load_with_metadata",
    "model_document",
    "model_file_text",
    "model_from_document",
    "read_json_file",
    "read_model_file",
    "save",
]

FORMAT = "chainrule.model"
VERSION = 1


class ModelFileError(ChainruleError, ValueError):
    """A model file that cannot be read: truncated, tampered, wrong version or shape."""


#: The most parameters a model may have. Training refuses a bigger model before it
#: starts (:class:`chainrule.training.TrainConfig` and ``GPTConfig``,
#: :class:`chainrule.gpt.Trainer`), :func:`save` refuses to write one and :func:`load`
#: to build one, so every model chainrule trains can be saved and read back. It also
#: bounds the memory a crafted file can make :func:`load` allocate (about 120 bytes a
#: parameter). The byte caps of model files and checkpoints are derived from it.
MAX_MODEL_PARAMETERS = 4_000_000


# The most bytes one parameter takes in a model file, whatever the architecture. Every
# index below the cap (a layer size, a row, a column, a block) has at most this many digits:
_INDEX_DIGITS = len(str(MAX_MODEL_PARAMETERS - 1))

# An MLP file (save: JSON with indent 1) writes a weight as the line "\n" + 5 spaces +
# number + "," (a bias one level up, so one byte less); each neuron adds its row's
# brackets; each layer its braces, its two keys with their brackets, and its size in the
# architecture's "nouts". A neuron has at least one weight besides its bias, so a
# parameter carries at most half its neuron's and half its layer's share:
_MLP_NUMBER = len("\n     ,") + MAX_FLOAT_CHARS
_MLP_NEURON = len("\n    [") + len("\n    ],")
_MLP_LAYER = len('\n  {\n   "weights": [\n   ],\n   "biases": [\n   ]\n  },\n   ,') + _INDEX_DIGITS
_MLP_BYTES_PER_PARAMETER = _MLP_NUMBER + (_MLP_NEURON + _MLP_LAYER) / 2

# A GPT file (chainrule.gpt.save, indent 1) writes each parameter as the line
# '\n  "NAME": number,'; the longest name is "blocks.L.attn.out_proj.weight.I.J" with
# three indices. The tokenizer's characters (metadata "chars") take at most 12 bytes each
# (one outside the BMP, escaped as two \uXXXX), and each brings at least two parameters
# (its rows of the token table and of the head):
_GPT_NAME = len("blocks..attn.out_proj.weight..") + 3 * _INDEX_DIGITS
_GPT_BYTES_PER_PARAMETER = len('\n  "": ,') + _GPT_NAME + MAX_FLOAT_CHARS + 12 / 2

#: The most bytes one parameter takes in a model file written by :func:`save` or
#: :func:`chainrule.gpt.save`, worked out above from :data:`MAX_FLOAT_CHARS` and each
#: file's layout.
MODEL_BYTES_PER_PARAMETER = math.ceil(max(_MLP_BYTES_PER_PARAMETER, _GPT_BYTES_PER_PARAMETER))

#: Room in a model file for all but the parameters: format, version, architecture and
#: metadata (the task, the tokenizer's other entries, what the caller adds).
MODEL_HEADER_BYTES = 1024 * 1024

#: The largest model file :func:`load` reads: a model of :data:`MAX_MODEL_PARAMETERS`
#: parameters at :data:`MODEL_BYTES_PER_PARAMETER` each, and its header. A bigger file
#: (or a device such as /dev/zero) is refused before it is read into memory; :func:`save`
#: never writes one.
MAX_MODEL_BYTES = MAX_MODEL_PARAMETERS * MODEL_BYTES_PER_PARAMETER + MODEL_HEADER_BYTES


def check_parameter_count(
    count: int, subject: str, error: type[Exception] = ValueError, hint: str = ""
) -> None:
    """Raise ``error`` if ``count`` parameters are more than :data:`MAX_MODEL_PARAMETERS`:
    the one check that training, :func:`save` and :func:`load` share. ``subject`` starts
    the message ("the architecture has"), ``hint`` ends it."""
    if count > MAX_MODEL_PARAMETERS:
        raise error(
            f"{subject} {count:,} parameters, more than chainrule loads "
            f"({MAX_MODEL_PARAMETERS:,}, chainrule.nn.MAX_MODEL_PARAMETERS){hint}"
        )


def save(model: MLP, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` as a versioned JSON file, atomically.

    The file holds the architecture, every parameter (layer by layer: ``weights[j][i]``
    is neuron ``j``'s weight for input ``i``) and optional JSON-ready ``metadata``
    (the command line stores the task there): :func:`model_document`. It is written to
    a temporary file in the same folder and renamed into place, so a crash never leaves
    half a file. A model with a non-finite parameter, or one that :func:`load` would
    refuse to read back (over :data:`MAX_MODEL_PARAMETERS`, or ``metadata`` too big or
    holding a number no float can hold: :func:`model_file_text`), is refused rather
    than saved.
    """
    return atomic_write_text(path, model_file_text(model_document(model, metadata)))


def model_file_text(document: dict[str, Any]) -> str:
    """The text of a model file holding ``document``: JSON, indented one space a level.

    Shared by :func:`save` and :func:`chainrule.gpt.save`. Raises ``ValueError`` for a
    file that :func:`read_model_file` would refuse: a number in the metadata that no
    float can hold, or more than :data:`MAX_MODEL_BYTES` bytes (metadata beyond the
    :data:`MODEL_HEADER_BYTES` that a model under the parameter cap leaves room for).
    """
    beyond = find_number_beyond_float({"metadata": document.get("metadata")})
    if beyond is not None:
        raise ValueError(f"save: {beyond}; not writing the model")
    text = json.dumps(document, allow_nan=False, indent=1)  # ASCII: a byte a character
    if len(text) > MAX_MODEL_BYTES:
        raise ValueError(
            f"save: the model file would take {len(text):,} bytes, more than chainrule "
            f"loads ({MAX_MODEL_BYTES:,}, chainrule.nn.MAX_MODEL_BYTES): its metadata is "
            f"too big; not writing the model"
        )
    return text


def model_document(model: MLP, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document :func:`save` writes (format, version, architecture, layers,
    metadata); :func:`model_from_document` reads it back. Floats keep every bit: JSON
    writes each as its shortest exact repr. Raises ``ValueError`` for a non-finite
    parameter, or a model over :data:`MAX_MODEL_PARAMETERS`."""
    if not isinstance(model, MLP):
        raise TypeError(f"save: expected an MLP, got {type(model).__name__}")
    check_parameter_count(
        count_parameters(model.nin, model.nouts), "save: the model has", hint="; not writing it"
    )
    layers = []
    for i, layer in enumerate(model.layers):
        weights = [[w.data for w in n.w] for n in layer.neurons]
        biases = [n.b.data for n in layer.neurons]
        if not all(math.isfinite(v) for row in [*weights, biases] for v in row):
            raise ValueError(
                f"save: layer {i} has a non-finite parameter (training diverged?); "
                "not writing the model"
            )
        layers.append({"weights": weights, "biases": biases})
    return {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture(),
        "layers": layers,
        "metadata": metadata or {},
    }


def load(path: str | os.PathLike[str]) -> MLP:
    """Read a model written by :func:`save`; raise :class:`ModelFileError` if anything is off.

    Checks the file size (at most :data:`MAX_MODEL_BYTES`), the format name and
    version, the architecture (at most :data:`MAX_MODEL_PARAMETERS` parameters), every
    layer's shape against it and that every number is finite, all before building the
    model: a bad file never yields a half-built model, and a small file cannot make
    ``load`` allocate a large one.
    """
    model, _ = load_with_metadata(path)
    return model


def load_with_metadata(path: str | os.PathLike[str]) -> tuple[MLP, dict[str, Any]]:
    """Like :func:`load`, and also return the file's metadata dictionary."""
    doc = read_model_file(path)
    try:
        return _build(doc)
    except ModelFileError as exc:
        raise ModelFileError(f"{Path(path)}: {exc}") from None


def model_from_document(doc: object) -> tuple[MLP, dict[str, Any]]:
    """The MLP and metadata of a model document (:func:`model_document`), with the
    checks of :func:`load`: format, version, architecture, shapes, finite numbers.
    Raises :class:`ModelFileError` naming what is wrong."""
    _check_format(doc)
    assert isinstance(doc, dict)
    return _build(doc)


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model file's JSON document, with its format name and version checked.

    The first half of every loader (:func:`load` here, :func:`chainrule.gpt.load`):
    the file is refused unread above :data:`MAX_MODEL_BYTES`, its JSON parsed without
    ``NaN`` or ``Infinity``, and its ``format`` and ``version`` checked. What the
    architecture and the numbers must look like is the loader's business. Raises
    :class:`ModelFileError`, naming the file.
    """
    source = Path(path)
    doc = read_json_file(
        source,
        kind="model file",
        limit=MAX_MODEL_BYTES,
        limit_name="chainrule.nn.MAX_MODEL_BYTES",
        error=ModelFileError,
    )
    try:
        _check_format(doc)
    except ModelFileError as exc:
        raise ModelFileError(f"{source}: {exc}") from None
    assert isinstance(doc, dict)
    return doc


def _check_format(doc: object) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"not a chainrule model file (expected format {FORMAT!r})")
    version = doc.get("version")
    if version != VERSION:
        raise ModelFileError(
            f"unknown model file version {version!r:.40}; this chainrule reads version {VERSION}"
        )


def check_architecture(arch: object) -> tuple[int, list[int], str, str | None]:
    """``nin, nouts, activation, output_activation`` of an MLP file's architecture, checked
    without building anything (sizes, choices, the parameter cap); :class:`ModelFileError`
    names what is wrong."""
    if isinstance(arch, dict) and arch.get("type") == "GPT":
        raise ModelFileError(
            "this is a GPT model file (chainrule gpt train); read it with chainrule.gpt.load, "
            "or sample from it with `chainrule gpt sample --model FILE`"
        )
    if not isinstance(arch, dict) or arch.get("type") != "MLP":
        raise ModelFileError("the architecture must be an object with type 'MLP'")
    nin, nouts = arch.get("nin"), arch.get("nouts")
    activation, output_activation = arch.get("activation"), arch.get("output_activation")
    try:
        if not isinstance(nouts, list) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer sizes, got {nouts!r:.40}")
        check_mlp_config(nin, nouts, activation, output_activation)
    except ValueError as exc:
        raise ModelFileError(f"invalid architecture: {exc}"[:200]) from None
    assert isinstance(nin, int) and isinstance(activation, str)
    check_parameter_count(count_parameters(nin, nouts), "the architecture has", ModelFileError)
    return nin, nouts, activation, output_activation


def _build(doc: dict[str, Any]) -> tuple[MLP, dict[str, Any]]:
    nin, nouts, activation, output_activation = check_architecture(doc.get("architecture"))
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError("metadata must be an object")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != len(nouts):
        raise ModelFileError(
            f"the architecture has {len(nouts)} layers but the file holds "
            f"{len(layers) if isinstance(layers, list) else 'no list of'} layers"
        )
    # Every shape and number is checked against the architecture before the model is
    # built, so the model's size is bounded by the numbers actually in the file.
    sizes = [nin, *nouts]
    numbers: list[tuple[list[list[float]], list[float]]] = []
    for i, entry in enumerate(layers):
        n_in, n_out = sizes[i], sizes[i + 1]
        if not isinstance(entry, dict):
            raise ModelFileError(f"layer {i} must be an object with weights and biases")
        weights, biases = entry.get("weights"), entry.get("biases")
        shape_ok = (
            isinstance(weights, list)
            and len(weights) == n_out
            and all(isinstance(row, list) and len(row) == n_in for row in weights)
            and isinstance(biases, list)
            and len(biases) == n_out
        )
        if not shape_ok:
            raise ModelFileError(
                f"layer {i}: expected {n_out}x{n_in} weights and "
                f"{n_out} biases; the file's shapes differ"
            )
        assert isinstance(weights, list) and isinstance(biases, list)
        numbers.append(
            ([[_number(w, i) for w in row] for row in weights], [_number(b, i) for b in biases])
        )
    model = MLP(
        nin,
        nouts,
        activation=activation,  # type: ignore[arg-type]
        output_activation=output_activation,  # type: ignore[arg-type]
        rng=random.Random(0),  # every parameter is overwritten below
    )
    # Set the numbers in the layout save() reads them from (linear in the parameters).
    for layer, (weights, biases) in zip(model.layers, numbers, strict=True):
        for neuron, row, bias in zip(layer.neurons, weights, biases, strict=True):
            for p, w in zip(neuron.w, row, strict=True):
                p.data = w
            neuron.b.data = bias
    return model, metadata


def _number(x: object, layer: int) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ModelFileError(f"layer {layer}: parameters must be numbers, found {x!r:.40}")
    try:
        f = float(x)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ModelFileError(f"layer {layer}: non-finite parameter {f}")
    return f
