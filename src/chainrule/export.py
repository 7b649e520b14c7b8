"""The import path ``chainrule.export``, kept for users: the code is in
:mod:`chainrule.io.export` (an MLP to PyTorch's ``safetensors`` or ONNX, and back)."""

from chainrule.io.export import *  # noqa: F403  (the public names, as listed there)
from chainrule.io.export import __all__ as __all__
