"""GPT model files: :func:`save` writes a GPT and its tokenizer as the versioned JSON of
:func:`chainrule.nn.save` (architecture ``{"type": "GPT", ...}``, every parameter by its
:meth:`~chainrule.gpt.GPT.state_dict` name, the tokenizer's characters in the
metadata), atomically; :func:`load` checks it all before building the model.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

from chainrule import nn
from chainrule.gpt.model import GPT, CharTokenizer, count_parameters, lone_surrogate
from chainrule.io.files import atomic_write_text
from chainrule.nn import ModelFileError

__all__ = ["load", "load_with_metadata", "save"]


def save(
    model: GPT,
    tokenizer: CharTokenizer,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its tokenizer to ``path`` as a versioned JSON model file, atomically.

    The file is the family of :func:`chainrule.nn.save`: ``format``, ``version``, the
    :meth:`GPT.architecture`, ``parameters`` (:meth:`GPT.state_dict`: each value by its
    name) and ``metadata``, which holds the tokenizer's characters under ``"chars"``
    beside any JSON-ready ``metadata`` given. A model with a non-finite parameter, a
    tokenizer that does not fit it, or a file that :func:`load` would refuse (over
    :data:`chainrule.nn.MAX_MODEL_PARAMETERS`, or metadata as
    :func:`chainrule.nn.model_file_text` refuses) is refused rather than saved.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"save: expected a GPT, got {type(model).__name__}")
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"save: the tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"{model.vocab_size}"
        )
    nn.check_parameter_count(model.num_parameters(), "save: the model has", hint="; not writing it")
    state = model.state_dict()
    bad = next((name for name, v in state.items() if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(
            f"save: parameter {bad} is {state[bad]} (training diverged?); not writing the model"
        )
    document = {
        "format": nn.FORMAT,
        "version": nn.VERSION,
        "architecture": model.architecture(),
        "parameters": state,
        "metadata": {**(metadata or {}), "chars": tokenizer.chars},
    }
    return atomic_write_text(path, nn.model_file_text(document))


def load(path: str | os.PathLike[str]) -> tuple[GPT, CharTokenizer]:
    """Read a GPT and its tokenizer written by :func:`save`.

    Raises :class:`~chainrule.nn.ModelFileError`, naming the file and what is wrong,
    for anything off. The cheap checks come first, before any model is built: the
    file's size (:data:`chainrule.nn.MAX_MODEL_BYTES`), format and version; every
    architecture field a positive integer, ``dim`` divisible by ``heads``, the
    parameter count (:func:`count_parameters`) at most
    :data:`chainrule.nn.MAX_MODEL_PARAMETERS` and equal to the number of parameters in
    the file, each a finite number; the tokenizer's characters distinct, text (no lone
    surrogate) and as many as the vocabulary needs. Only then is the model built (its
    size bounded by the numbers actually in the file) and the parameters matched by name.
    """
    model, tokenizer, _ = load_with_metadata(path)
    return model, tokenizer


def load_with_metadata(
    path: str | os.PathLike[str],
) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    """Like :func:`load`, and also return the file's metadata dictionary."""
    doc = nn.read_model_file(path)
    try:
        return _build(doc)
    except ModelFileError as exc:
        raise ModelFileError(f"{Path(path)}: {exc}") from None


_ARCHITECTURE_FIELDS = ("vocab_size", "block_size", "dim", "heads", "layers")


def _build(doc: dict[str, Any]) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    """The GPT, tokenizer and metadata of a model file's document, every check that
    needs no model done before the model is built (so bounded by the file's size)."""
    sizes = _architecture(doc.get("architecture"))
    count = count_parameters(
        sizes["vocab_size"], sizes["block_size"], sizes["dim"], sizes["layers"]
    )
    nn.check_parameter_count(count, "the architecture has", ModelFileError)
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        raise ModelFileError("metadata must be an object holding the tokenizer's characters")
    chars = _tokenizer_chars(metadata, sizes["vocab_size"])
    params = _parameters(doc.get("parameters"), count)
    model = GPT(
        sizes["vocab_size"],
        sizes["block_size"],
        sizes["dim"],
        sizes["heads"],
        sizes["layers"],
        rng=random.Random(0),  # every parameter is overwritten below
    )
    expected = {name for name, _ in model.named_parameters()}
    if set(params) != expected:
        missing = sorted(expected - set(params))
        unexpected = sorted(set(params) - expected)
        raise ModelFileError(
            "the parameter names do not fit the architecture: "
            f"missing {_some(missing)}; unexpected {_some(unexpected)}"
        )
    model.load_state_dict(params)
    return model, CharTokenizer(chars), metadata


def _architecture(arch: object) -> dict[str, int]:
    """The sizes of a GPT architecture entry: each a positive integer, dim by heads."""
    if not isinstance(arch, dict) or arch.get("type") != "GPT":
        kind = arch.get("type") if isinstance(arch, dict) else None
        hint = " (a classifier: use `chainrule predict`)" if kind == "MLP" else ""
        raise ModelFileError(f"not a GPT model file: its architecture type is {kind!r:.40}{hint}")
    sizes: dict[str, int] = {}
    for name in _ARCHITECTURE_FIELDS:
        n = arch.get(name)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ModelFileError(
                f"invalid architecture: {name} must be a positive integer, got {n!r:.40}"
            )
        sizes[name] = n
    if sizes["dim"] % sizes["heads"]:
        raise ModelFileError(
            f"invalid architecture: dim {sizes['dim']} is not divisible by heads {sizes['heads']}"
        )
    return sizes


def _tokenizer_chars(metadata: dict[str, Any], vocab_size: int) -> str:
    """The tokenizer's characters in the metadata: distinct, text, one per token but BOS."""
    chars = metadata.get("chars")
    if not isinstance(chars, str) or len(set(chars)) != len(chars) or not chars:
        raise ModelFileError(
            "metadata.chars must be a string of distinct characters (the tokenizer's), "
            f"got {chars!r:.40}"
        )
    bad = lone_surrogate(chars)
    if bad is not None:
        raise ModelFileError(
            f"metadata.chars holds {bad!r}, half of a UTF-16 pair, not a character: "
            "the tokenizer's vocabulary must be text"
        )
    if len(chars) + 1 != vocab_size:
        raise ModelFileError(
            f"the tokenizer has {len(chars)} characters, so {len(chars) + 1} tokens, but the "
            f"architecture's vocab_size is {vocab_size}"
        )
    return chars


def _parameters(params: object, count: int) -> dict[str, Any]:
    """The parameters entry: ``count`` finite numbers by name."""
    if not isinstance(params, dict) or len(params) != count:
        held = f"{len(params):,}" if isinstance(params, dict) else "no object of"
        raise ModelFileError(
            f"the architecture has {count:,} parameters but the file holds {held} parameters"
        )
    for name, x in params.items():
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ModelFileError(f"parameter {name:.60}: expected a number, found {x!r:.40}")
        try:
            finite = math.isfinite(x)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise ModelFileError(f"parameter {name:.60}: not a finite number")
    return params


def _some(names: list[str], limit: int = 3) -> str:
    """A few of ``names`` for a message, each cut short."""
    if not names:
        return "none"
    shown = ", ".join(f"{n:.40}" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
