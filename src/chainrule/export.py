"""The import path ``chainrule.export``, kept for users: the code is in
:mod:`chainrule.io.export` (an MLP to PyTorch's ``safetensors`` or ONNX, and back)."""

from __future__ import annotations

from chainrule.io.export import (
    EXPORT_FORMATS,
    MAX_METADATA_DEPTH,
    ONNX_OPSET,
    MissingDependencyError,
    ModelFileError,
    from_safetensors,
    pytorch_lines,
    sequential_layout,
    to_onnx,
    to_safetensors,
)

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
