"""The blocks of sequence models: :class:`Linear`, :class:`Embedding`, :class:`RMSNorm`,
and multi-head :class:`CausalSelfAttention` with its :class:`KVCache`.

A vector is a list of Values; a sequence is a list of vectors, one per position. Every
block is written with engine ops only and reads no ``data``, so a loss built from them
compiles. Each weighted sum is one ``dot`` node, which ``chainrule.compile`` turns, for
a layer applied at every position, into one matrix product. :mod:`chainrule.gpt` is
built from these blocks.

This module needs only the standard library.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from chainrule.core import Value, fused_dot
from chainrule.losses import softmax
from chainrule.nn.module import Input, Module, as_inputs, check_size

__all__ = [
    "INIT_STD",
    "CausalSelfAttention",
    "Embedding",
    "KVCache",
    "Linear",
    "RMSNorm",
]

#: The standard deviation of the Gaussian that :class:`Linear`, :class:`Embedding` and
#: :class:`CausalSelfAttention` draw their weights from unless told otherwise: 0.08, as
#: the small single-file scalar GPTs use (PyTorch's defaults differ: U(±1/sqrt(nin)) for
#: ``Linear``, N(0, 1) for ``Embedding``).
INIT_STD = 0.08


def _gaussian(rows: int, cols: int, std: float, rng: random.Random | None) -> list[list[Value]]:
    """A ``rows × cols`` matrix of Values drawn from N(0, std²), row by row."""
    if isinstance(std, bool) or not isinstance(std, int | float) or not 0.0 <= std < math.inf:
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    draw: Any = rng if rng is not None else random  # the module's functions share one state
    return [[Value(draw.gauss(0.0, std)) for _ in range(cols)] for _ in range(rows)]


class Linear(Module):
    """``y = W x + b``: ``nout`` outputs from ``nin`` inputs, PyTorch's ``nn.Linear``.

    ``weight[i]`` is the row of ``nin`` weights of output ``i`` (PyTorch's layout, so
    ``weight[i][j]`` is ``W_ij``), drawn from N(0, std²) (std :data:`INIT_STD` unless
    given) using ``rng``; ``bias`` is ``nout`` zeros, or ``None`` with ``bias=False``.
    Each output is **one** ``dot`` node, ``y_i = W_i · x + b_i``, whose local
    derivatives are ``∂y_i/∂W_ij = x_j``, ``∂y_i/∂x_j = W_ij``, ``∂y_i/∂b_i = 1``.
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        bias: bool = True,
        *,
        std: float = INIT_STD,
        rng: random.Random | None = None,
    ) -> None:
        check_size("nin", nin)
        check_size("nout", nout)
        self.weight = _gaussian(nout, nin, std, rng)
        self.bias: list[Value] | None = [Value(0.0) for _ in range(nout)] if bias else None

    @property
    def nin(self) -> int:
        return len(self.weight[0])

    @property
    def nout(self) -> int:
        return len(self.weight)

    def __call__(self, x: Input) -> list[Value]:
        return self.forward(as_inputs(x, self.nin, "Linear"))

    def forward(self, xs: Sequence[Value]) -> list[Value]:
        """The outputs for ``xs``, Values of the right number, not checked again
        (``__call__`` checks and converts its input, then calls this)."""
        if self.bias is None:
            zero = Value(0.0)  # a constant made per call: nothing outside the call is kept
            return [fused_dot(row, xs, zero) for row in self.weight]
        return [fused_dot(row, xs, b) for row, b in zip(self.weight, self.bias, strict=True)]

    def __repr__(self) -> str:
        return f"Linear({self.nin}, {self.nout}, bias={self.bias is not None})"


class Embedding(Module):
    """A table of ``num`` learned vectors of ``dim`` Values: PyTorch's ``nn.Embedding``.

    ``weight[i]`` is the vector of index ``i``, drawn from N(0, std²) (std
    :data:`INIT_STD` unless given) using ``rng``. ``emb(i)`` returns it (as a new
    list: the Values are the parameters themselves, so gradients reach the table).

    ``emb(row)`` with a **one-hot row** of ``num`` numbers or Values computes the same
    vector as ``row · weight``, one ``dot`` node per column: ``Σ_i row_i weight[i][j]``.
    That is how a token enters a compiled function, whose inputs are numbers (traced
    as Values) that cannot index a Python list. For a one-hot row the float result is
    exactly ``weight[i]`` (every other product is 0), and the gradient reaching each
    entry of the table is the same.
    """

    def __init__(
        self, num: int, dim: int, *, std: float = INIT_STD, rng: random.Random | None = None
    ) -> None:
        check_size("num", num)
        check_size("dim", dim)
        self.weight = _gaussian(num, dim, std, rng)

    @property
    def num(self) -> int:
        return len(self.weight)

    @property
    def dim(self) -> int:
        return len(self.weight[0])

    def __call__(self, index: int | Input) -> list[Value]:
        if isinstance(index, int) and not isinstance(index, bool):
            if not 0 <= index < len(self.weight):
                raise IndexError(
                    f"Embedding: index {index} is out of range for a table of {self.num} rows"
                )
            return list(self.weight[index])
        if isinstance(index, Value) or not isinstance(index, Sequence):
            raise TypeError(
                f"Embedding: expected an int index or a one-hot row of {self.num} numbers, "
                f"got {type(index).__name__} (a traced Value cannot index a table: pass "
                "tokens to a compiled function as one-hot rows)"
            )
        row = as_inputs(index, self.num, "Embedding")
        zero = Value(0.0)
        return [
            fused_dot(column, row, zero) for column in map(list, zip(*self.weight, strict=True))
        ]

    def __repr__(self) -> str:
        return f"Embedding({self.num}, {self.dim})"


class RMSNorm(Module):
    """Root-mean-square normalisation: ``y_i = x_i / sqrt(mean(x²) + eps) · g_i``.

    Scales a vector to a root mean square of about 1 without centring it (Zhang &
    Sennrich, 2019), PyTorch's ``nn.RMSNorm``. With ``elementwise_affine=True`` (the
    default, as in PyTorch) it learns a gain ``weight`` of ``dim`` Values starting at
    1; with ``False`` it has no parameters, as in the small scalar GPTs. ``mean(x²)``
    is one ``dot`` node (``x · x / dim``) and the scale ``(mean + eps) ** -0.5`` one
    more, shared by every output.
    """

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        check_size("dim", dim)
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 < eps < math.inf:
            raise ValueError(f"RMSNorm: eps must be a finite number > 0, got {eps!r}")
        self.dim = dim
        self.eps = float(eps)
        self.weight = [Value(1.0) for _ in range(dim)] if elementwise_affine else None

    def __call__(self, x: Input) -> list[Value]:
        return self.forward(as_inputs(x, self.dim, "RMSNorm"))

    def forward(self, xs: Sequence[Value]) -> list[Value]:
        """The outputs for ``xs``, Values of the right number, not checked again
        (``__call__`` checks and converts its input, then calls this)."""
        scale = (fused_dot(xs, xs, Value(0.0)) * (1.0 / len(xs)) + self.eps) ** -0.5
        if self.weight is None:
            return [x * scale for x in xs]
        return [x * scale * g for x, g in zip(xs, self.weight, strict=True)]

    def __repr__(self) -> str:
        return f"RMSNorm({self.dim}, eps={self.eps}, elementwise_affine={self.weight is not None})"


class KVCache:
    """The keys and values of the positions seen so far, for one attention layer.

    :meth:`CausalSelfAttention.step` appends one key and one value per position, so
    that a sequence can be fed one position at a time (as when sampling) without
    computing the earlier positions again.
    """

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: list[list[Value]] = []
        self.values: list[list[Value]] = []

    def __len__(self) -> int:
        return len(self.keys)


class CausalSelfAttention(Module):
    """Multi-head causal self-attention over a sequence of ``dim``-wide vectors.

    Each position ``t`` makes a query, a key and a value (``q_proj``, ``k_proj``,
    ``v_proj``: :class:`Linear` layers, without bias unless ``bias=True``). Split into
    ``heads`` heads of ``d = dim / heads`` entries, head ``h`` of position ``t`` attends
    to the positions ``s <= t`` only (causal):

        a_ts = softmax_s(q_t · k_s / sqrt(d)),    o_t = Σ_s a_ts v_s

    and ``out_proj`` mixes the heads' outputs back into ``dim`` entries. Every score
    and every weighted sum is one ``dot`` node; the softmax is built on one
    ``logsumexp`` node, so no ``data`` is read.

    ``attn(xs)`` takes the whole sequence and returns one vector per position;
    ``attn.step(x, cache)`` takes the next position, with the earlier positions' keys
    and values in ``cache`` (a :class:`KVCache`, to which it appends).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        bias: bool = False,
        std: float = INIT_STD,
        rng: random.Random | None = None,
    ) -> None:
        check_size("dim", dim)
        check_size("heads", heads)
        if dim % heads:
            raise ValueError(f"CausalSelfAttention: dim {dim} is not divisible by heads {heads}")
        self.q_proj = Linear(dim, dim, bias, std=std, rng=rng)
        self.k_proj = Linear(dim, dim, bias, std=std, rng=rng)
        self.v_proj = Linear(dim, dim, bias, std=std, rng=rng)
        self.out_proj = Linear(dim, dim, bias, std=std, rng=rng)
        self.dim = dim
        self.heads = heads

    def __call__(self, xs: Sequence[Input]) -> list[list[Value]]:
        cache = KVCache()
        return [self.step(x, cache) for x in xs]

    def step(self, x: Input, cache: KVCache) -> list[Value]:
        """The output at the next position, given the earlier ones' keys and values."""
        xs = as_inputs(x, self.dim, "CausalSelfAttention")
        q = self.q_proj.forward(xs)
        cache.keys.append(self.k_proj.forward(xs))
        cache.values.append(self.v_proj.forward(xs))
        d = self.dim // self.heads
        scale = 1.0 / math.sqrt(d)
        zero = Value(0.0)
        mixed: list[Value] = []
        for lo in range(0, self.dim, d):
            hi = lo + d
            q_h = q[lo:hi]
            weights = softmax([fused_dot(q_h, k[lo:hi], zero) * scale for k in cache.keys])
            mixed += [fused_dot(weights, [v[j] for v in cache.values], zero) for j in range(lo, hi)]
        return self.out_proj.forward(mixed)

    def __repr__(self) -> str:
        return f"CausalSelfAttention({self.dim}, heads={self.heads})"
