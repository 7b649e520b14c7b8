"""Neural networks on the engine: ``Module``, ``Neuron``, ``Layer``, ``MLP``, model files,
and the blocks of sequence models: ``Embedding``, ``Linear``, ``RMSNorm``,
``CausalSelfAttention``, ``softmax``, ``log_softmax`` and ``cross_entropy``.

Names follow PyTorch (``parameters()``, ``zero_grad()``, ``state_dict()``, ``Linear``,
``Embedding``). Where each thing is:

- :mod:`chainrule.nn.module`: :class:`Module` and how it finds its parameters;
- :mod:`chainrule.nn.mlp`: :class:`Neuron`, :class:`Layer`, :class:`MLP`;
- :mod:`chainrule.nn.layers`: :class:`Linear`, :class:`Embedding`, :class:`RMSNorm`,
  :class:`KVCache`, :class:`CausalSelfAttention`;
- model files (:func:`save`, :func:`load`, :data:`MAX_MODEL_PARAMETERS`, ...) are
  :mod:`chainrule.io.model_files`, offered here too.

Why the model files are offered lazily: they are a file format, built on ``nn`` (the
MLP they write and build) and on :mod:`chainrule.io.files`, so they live in ``io``,
above ``nn``, and ``nn`` never imports them at import time (no cycle, no upward
import). ``chainrule.nn.save`` and ``from chainrule.nn import load`` keep working: the
module-level ``__getattr__`` below loads :mod:`chainrule.io.model_files` on first use
of one of its names.

``nn`` needs only the standard library (the explorer runs it in the browser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainrule.losses import cross_entropy, log_softmax, softmax
from chainrule.nn.layers import (
    INIT_STD,
    CausalSelfAttention,
    Embedding,
    KVCache,
    Linear,
    RMSNorm,
)
from chainrule.nn.mlp import (
    ACTIVATIONS,
    DEFAULT_ACTIVATION,
    INITS,
    MLP,
    Activation,
    Init,
    Layer,
    Neuron,
    check_mlp_config,
    count_parameters,
)
from chainrule.nn.module import IncompatibleKeys, Input, Module

if TYPE_CHECKING:  # (at run time, loaded on first use by __getattr__)
    from chainrule.io.model_files import (
        FORMAT,
        MAX_FLOAT_CHARS,
        MAX_MODEL_BYTES,
        MAX_MODEL_PARAMETERS,
        MODEL_BYTES_PER_PARAMETER,
        MODEL_HEADER_BYTES,
        VERSION,
        ModelFileError,
        check_architecture,
        check_parameter_count,
        find_number_beyond_float,
        load,
        load_with_metadata,
        model_document,
        model_file_text,
        model_from_document,
        read_json_file,
        read_model_file,
        save,
    )

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_ACTIVATION",
    "FORMAT",
    "INITS",
    "INIT_STD",
    "MAX_FLOAT_CHARS",
    "MAX_MODEL_BYTES",
    "MAX_MODEL_PARAMETERS",
    "MLP",
    "MODEL_BYTES_PER_PARAMETER",
    "MODEL_HEADER_BYTES",
    "VERSION",
    "Activation",
    "CausalSelfAttention",
    "Embedding",
    "IncompatibleKeys",
    "Init",
    "Input",
    "KVCache",
    "Layer",
    "Linear",
    "ModelFileError",
    "Module",
    "Neuron",
    "RMSNorm",
    "check_architecture",
    "check_mlp_config",
    "check_parameter_count",
    "count_parameters",
    "cross_entropy",
    "find_number_beyond_float",
    "load",
    "load_with_metadata",
    "log_softmax",
    "model_document",
    "model_file_text",
    "model_from_document",
    "read_json_file",
    "read_model_file",
    "save",
    "softmax",
]

#: The names of :mod:`chainrule.io.model_files` that ``chainrule.nn`` offers: those of
#: ``__all__`` not defined above (imported only for type checkers).
_MODEL_FILE_NAMES = frozenset(__all__).difference(globals())


def __getattr__(name: str) -> object:
    """The model files' names (``save``, ``load``, ``MAX_MODEL_PARAMETERS``, ...),
    loaded from :mod:`chainrule.io.model_files` on first use."""
    if name in _MODEL_FILE_NAMES:
        from chainrule.io import model_files

        return getattr(model_files, name)
    raise AttributeError(f"module 'chainrule.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
