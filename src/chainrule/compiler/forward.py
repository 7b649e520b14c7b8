"""A model's outputs over many points at once: one compiled, vmapped forward pass.

``[model(x) for x in X]`` builds a graph of Values per point; :func:`batch_outputs`
traces ``model`` on one point (:func:`chainrule.vmap` under :func:`compile`) and
replays it over the rows of ``X``, a chunk of rows at a time, so that a decision
boundary's grid, a held-out set or 100,000 training points take a fraction of a
second. The numbers equal the eager model's to rounding (the replay adds in another
order).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from chainrule.compiler.ops import Array
from chainrule.compiler.program import CompiledFunction, compile
from chainrule.core.vmap import vmap

__all__ = ["CHUNK", "batch_outputs"]

#: Rows per replay: bounds the memory of a forward pass (a row of CHUNK numbers per node
#: of the model: 8 MB per 1,000 nodes).
CHUNK = 16384

_compiled: weakref.WeakKeyDictionary[Any, CompiledFunction] = weakref.WeakKeyDictionary()


def batch_outputs(model: Any, X: Any, chunk: int = CHUNK) -> Array:
    """``model``'s output at each row of ``X`` as floats: shape ``(N,)`` for a model with
    one output, ``(N, k)`` for ``k`` outputs. ``model`` is any callable on one point made
    of Values and parameters (an ``MLP``); its parameters are read at every call."""
    rows = np.asarray(X, dtype=np.float64)
    if rows.ndim != 2 or not len(rows):
        raise ValueError(f"batch_outputs: X must be rows of numbers, got shape {rows.shape}")
    forward = _compiled.get(model)
    if forward is None:
        forward = compile(lambda points: vmap(model)(points), model.parameters())
        _compiled[model] = forward
    parts = [forward(rows[at : at + chunk]) for at in range(0, len(rows), chunk)]
    return np.concatenate(parts)
