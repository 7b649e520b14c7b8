"""Neural networks on the engine: ``Module``, ``Neuron``, ``Layer``, ``MLP``, model files,
and the blocks of sequence models: ``Embedding``, ``Linear``, ``RMSNorm``,
``CausalSelfAttention``, ``softmax``, ``log_softmax`` and ``cross_entropy``.

A neuron computes ``act(w · x + b)``; a layer is a list of neurons that see the same
inputs; a multi-layer perceptron feeds each layer's outputs to the next. Names follow
PyTorch (``parameters()``, ``zero_grad()``, ``state_dict()``, ``Linear``, ``Embedding``).

This module needs only the standard library. Model files are JSON (never pickle):
:func:`save` writes atomically, :func:`load` validates everything before building.
"""

from __future__ import annotations

import json
import math
import os
import random
import stat
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from operator import is_
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

from chainrule._io import atomic_write_text
from chainrule.engine import Value, fused_dot, is_real, to_float
from chainrule.errors import ChainruleError
from chainrule.losses import cross_entropy, log_softmax, softmax

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
    "CausalSelfAttention",
    "Embedding",
    "IncompatibleKeys",
    "KVCache",
    "Layer",
    "Linear",
    "ModelFileError",
    "Module",
    "Neuron",
    "RMSNorm",
    "check_architecture",
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

Activation: TypeAlias = Literal["tanh", "relu", "sigmoid", "linear"]
Init: TypeAlias = Literal["uniform", "xavier", "he"]
Input: TypeAlias = "Sequence[Value | float]"

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "linear")
INITS: tuple[str, ...] = ("uniform", "xavier", "he")

#: The activation of ``Neuron``, ``Layer`` and ``MLP``'s hidden layers unless one is given:
#: ReLU, as in the reference implementation's ``nn`` (whose ``Neuron`` is ReLU unless told
#: otherwise) and its moons demo. The lecture's tanh neuron is ``Neuron(n, "tanh")``.
DEFAULT_ACTIVATION: Activation = "relu"

FORMAT = "chainrule.model"
VERSION = 1


class ModelFileError(ChainruleError, ValueError):
    """A model file that cannot be read: truncated, tampered, wrong version or shape."""


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_size(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def _as_inputs(x: Input, expected: int, who: str) -> list[Value]:
    """Check the size of an input row and make every entry a Value."""
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        raise TypeError(f"{who}: expected a sequence of {expected} numbers, got {type(x).__name__}")
    xs = list(x)
    if len(xs) != expected:
        raise ValueError(f"{who}: expected {expected} inputs, got {len(xs)}")
    return [v if isinstance(v, Value) else Value(v) for v in xs]


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` could not match (PyTorch's return value)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of everything with parameters; its parameters follow from its attributes.

    As in PyTorch, a subclass only stores its parameters: every attribute that is a
    ``Value``, a ``Module``, or a list, tuple or dict of them (nested to any depth) is
    found by :meth:`named_parameters`, in the order the attributes were set, and named
    by the path to it (``layers.0.neurons.3.w.1``). Other attributes (numbers, strings,
    anything else) are ignored; so keep a Value that is not a parameter, such as a
    cached output, out of the module's attributes. A Value reachable twice, such as a
    weight shared by two layers, is listed once, under the first name that reaches it.

    >>> class Scaled(Module):
    ...     def __init__(self) -> None:
    ...         self.body = Layer(2, 1, activation="linear")
    ...         self.scale = Value(2.0)
    >>> [name for name, _ in Scaled().named_parameters()]
    ['body.neurons.0.w.0', 'body.neurons.0.w.1', 'body.neurons.0.b', 'scale']

    :meth:`parameters` is called at every training step, so it does not walk the
    attributes again while nothing has changed: it keeps the list it found together
    with every container it read (each module's attribute dict, each list and dict)
    and a copy of their contents, and reuses the list only while every container still
    holds the very same objects, in the same order (compared by identity, never by a
    type's own ``==``, except for a list that held only Values, compared with ``==``,
    which for Values is identity). Assigning, appending, deleting or replacing
    anything, even by writing into ``__dict__``, is therefore seen at the next call;
    nothing can go stale. The check is a few C-level passes: ~6 µs for the 337
    parameters of ``MLP(2, [16, 16, 1])``, where a fresh walk takes ~40 times longer.
    """

    __slots__ = ("__dict__", "__weakref__", "_memo")
    _memo: _Memo

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that redefines which parameters it has (named_parameters) but not
        # parameters() gets parameters() from its own named_parameters().
        if "named_parameters" in vars(cls) and "parameters" not in vars(cls):
            cls.parameters = Module._parameters_from_names  # type: ignore[method-assign]

    def parameters(self) -> list[Value]:
        """Every trainable Value, each once, in the order of :meth:`named_parameters`.

        The list is the caller's own: changing it does not change the model.
        """
        try:
            memo = self._memo
        except AttributeError:  # never walked yet
            pass
        else:
            if memo.fresh():
                return memo.params.copy()
        walk = _Walk(self)
        self._memo = _Memo(walk)
        return walk.params.copy()

    def _parameters_from_names(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def named_parameters(self) -> list[tuple[str, Value]]:
        """``(name, parameter)`` pairs, e.g. ``("layers.0.neurons.3.w.1", Value)``."""
        walk = _Walk(self)
        return list(zip(walk.names, walk.params, strict=True))

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (gradients accumulate otherwise)."""
        for p in self.parameters():
            p.grad = 0.0

    def state_dict(self) -> dict[str, float]:
        """Every parameter's value by name: a plain, JSON-ready copy."""
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, float], strict: bool = True) -> IncompatibleKeys:
        """Set parameters from :meth:`state_dict` output, as PyTorch does.

        With ``strict=True`` the names must match exactly: a missing or unexpected name
        raises ``ValueError`` listing them. With ``strict=False`` the parameters named
        in both are set and the others left alone. Either way the names that did not
        match are returned, as ``(missing_keys, unexpected_keys)``. Every value is
        checked (a finite number) before any parameter changes, so a bad dict leaves
        the model as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state).__name__}")
        named = self.named_parameters()
        expected = {name for name, _ in named}
        missing = [name for name, _ in named if name not in state]
        unexpected = [name for name in state if name not in expected]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: the state does not fit this {type(self).__name__} "
                f"(strict=True): missing {_some(missing)}; unexpected {_some(unexpected)}"
            )
        values = [
            (p, to_float(state[name], f"state_dict[{name!r}]"))
            for name, p in named
            if name in state
        ]
        for p, x in values:
            p.data = x
        return IncompatibleKeys(missing, unexpected)

    def num_parameters(self) -> int:
        """How many scalars the model learns."""
        return len(self.parameters())

    def __getstate__(self) -> dict[str, Any]:
        # copy / deepcopy / pickle take the attributes only; the memo is rebuilt on use.
        return self.__dict__


def _some(names: list[str], limit: int = 10) -> str:
    """``names`` for a message: all of them, or the first ``limit`` and how many more."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


_SHAREABLE = (Value, Module, list, dict)  # what may be reached twice (or hold itself)


class _Walk:
    """One pass over a module's attributes: its parameters, each once, with names, and
    every mutable container the pass read (for :class:`_Memo`)."""

    __slots__ = ("leaves", "names", "nodes", "params", "seen")

    def __init__(self, root: Module) -> None:
        self.names: list[str] = []
        self.params: list[Value] = []
        self.seen: set[int] = {id(root)}  # ids of the Values, modules and lists met so far
        self.leaves: list[list[Value]] = []  # lists that hold only Values
        self.nodes: list[Collection[object]] = []  # attribute dicts, other lists, dicts' values
        self.module(root, "")

    def module(self, m: Module, prefix: str) -> None:
        attrs = vars(m)
        self.nodes.append(attrs.values())
        for name, v in attrs.items():
            self.item(v, prefix + name)

    def item(self, v: object, name: str) -> None:
        if isinstance(v, _SHAREABLE):
            if id(v) in self.seen:  # shared: a Value is listed once; a cycle ends here
                return
            self.seen.add(id(v))
        elif not isinstance(v, tuple):
            return  # a number, a string, anything else: not a parameter
        if isinstance(v, Value):
            self.names.append(name)
            self.params.append(v)
        elif isinstance(v, Module):
            self.module(v, name + ".")
        elif isinstance(v, list | tuple):  # (tuples cannot change: their holder is checked)
            if type(v) is list and all(type(x) is Value for x in v):
                self.leaves.append(v)
            elif isinstance(v, list):
                self.nodes.append(v)
            for i, x in enumerate(v):
                self.item(x, f"{name}.{i}")
        elif isinstance(v, dict):
            self.nodes.append(v.values())
            for key, x in v.items():
                self.item(x, f"{name}.{key}")


class _Memo:
    """The parameters a :class:`_Walk` found, valid while what it read is unchanged."""

    __slots__ = ("leaf_copies", "leaves", "node_items", "node_sizes", "nodes", "params")

    def __init__(self, walk: _Walk) -> None:
        self.params = walk.params
        self.leaves = walk.leaves
        self.leaf_copies = [list(c) for c in walk.leaves]
        self.nodes = walk.nodes
        self.node_sizes = list(map(len, walk.nodes))
        self.node_items = list(chain.from_iterable(walk.nodes))  # held: ids stay unique

    def fresh(self) -> bool:
        """Whether every container still holds the same objects (all in C: ~5 µs for 337)."""
        return (
            self.leaves == self.leaf_copies
            and list(map(len, self.nodes)) == self.node_sizes
            and all(map(is_, chain.from_iterable(self.nodes), self.node_items))
        )


def _draw_weight(init: str, nin: int, nout: int, rng: Any) -> float:
    """One initial weight: the lecture's U(-1, 1), or Xavier/He scaled to the fan-in."""
    if init == "uniform":
        return float(rng.uniform(-1.0, 1.0))
    if init == "xavier":  # Glorot: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
        a = math.sqrt(6.0 / (nin + nout))
        return float(rng.uniform(-a, a))
    return float(rng.gauss(0.0, math.sqrt(2.0 / nin)))  # He: N(0, 2 / fan_in), for ReLU


class Neuron(Module):
    """``act(w · x + b)`` with ``nin`` weights ``w`` and a bias ``b``.

    ``act`` is :data:`DEFAULT_ACTIVATION` (ReLU) unless ``activation`` names another;
    the lecture's neuron is ``Neuron(2, "tanh")``. Weights start as the ``init``
    scheme draws them from ``rng`` (the ``random`` module by default, so
    ``random.seed`` reproduces them); the bias starts at 0.
    """

    def __init__(
        self,
        nin: int,
        activation: Activation = DEFAULT_ACTIVATION,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
        fan_out: int = 1,
    ) -> None:
        _check_size("nin", nin)
        _check_choice("activation", activation, ACTIVATIONS)
        _check_choice("init", init, INITS)
        draw: Any = rng if rng is not None else random  # the module's functions share one state
        self.w = [Value(_draw_weight(init, nin, fan_out, draw)) for _ in range(nin)]
        self.b = Value(0.0)
        self.activation: str = activation

    def __call__(self, x: Input) -> Value:
        xs = _as_inputs(x, len(self.w), "Neuron")
        return self._forward(xs)

    def _forward(self, xs: Sequence[Value]) -> Value:
        return _activate(fused_dot(self.w, xs, self.b), self.activation)  # w · x + b: one node

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, activation={self.activation!r})"


def _activate(v: Value, activation: str) -> Value:
    if activation == "tanh":
        return v.tanh()
    if activation == "relu":
        return v.relu()
    if activation == "sigmoid":
        return v.sigmoid()
    return v


class Layer(Module):
    """``nout`` neurons that all see the same ``nin`` inputs (ReLU unless told otherwise)."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: Activation = DEFAULT_ACTIVATION,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        _check_size("nout", nout)
        self.neurons = [
            Neuron(nin, activation, init=init, rng=rng, fan_out=nout) for _ in range(nout)
        ]

    def __call__(self, x: Input) -> Value | list[Value]:
        out = self._forward(_as_inputs(x, self.nin, "Layer"))
        return out[0] if len(out) == 1 else out

    def _forward(self, xs: Sequence[Value]) -> list[Value]:
        return [n._forward(xs) for n in self.neurons]

    @property
    def nin(self) -> int:
        return len(self.neurons[0].w)

    @property
    def nout(self) -> int:
        return len(self.neurons)

    @property
    def activation(self) -> str:
        return self.neurons[0].activation

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: ``nin`` inputs, then one layer per entry of ``nouts``.

    ``activation`` (:data:`DEFAULT_ACTIVATION`, ReLU, unless given) applies to the hidden
    layers, ``output_activation`` to the last (``None`` or ``"linear"``: none).
    ``MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh")`` is the
    lecture's network (41 parameters); ``MLP(2, [16, 16, 1])`` is the reference demo's.
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Activation = DEFAULT_ACTIVATION,
        output_activation: Activation | None = None,
        *,
        init: Init = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        _check_size("nin", nin)
        nouts = list(nouts) if not isinstance(nouts, int) else [nouts]
        if not nouts:
            raise ValueError("nouts must list at least one layer size")
        for n in nouts:
            _check_size("each layer size in nouts", n)
        _check_choice("activation", activation, ACTIVATIONS)
        if output_activation is not None:
            _check_choice("output_activation", output_activation, ACTIVATIONS)
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [
            Layer(
                sizes[i],
                sizes[i + 1],
                activation if i < last else (output_activation or "linear"),
                init=init,
                rng=rng,
            )
            for i in range(len(nouts))
        ]
        self.nin = nin
        self.nouts = nouts
        self.activation: str = activation
        self.output_activation: str | None = output_activation
        self.init: str = init

    def __call__(self, x: Input) -> Value | list[Value]:
        xs = _as_inputs(x, self.nin, "MLP")
        for layer in self.layers:
            xs = layer._forward(xs)
        return xs[0] if len(xs) == 1 else xs

    def architecture(self) -> dict[str, Any]:
        """What it takes to build this model again (the model file's header)."""
        return {
            "type": "MLP",
            "nin": self.nin,
            "nouts": list(self.nouts),
            "activation": self.activation,
            "output_activation": self.output_activation,
        }

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"MLP(\n{inner}\n)  # {self.num_parameters()} parameters"


# -- blocks of sequence models ----------------------------------------------------------
#
# A vector is a list of Values; a sequence is a list of vectors, one per position. Every
# block is written with engine ops only and reads no ``data``, so a loss built from them
# compiles. Each weighted sum is one ``dot`` node, which ``chainrule.compile`` turns, for
# a layer applied at every position, into one matrix product.

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
        _check_size("nin", nin)
        _check_size("nout", nout)
        self.weight = _gaussian(nout, nin, std, rng)
        self.bias: list[Value] | None = [Value(0.0) for _ in range(nout)] if bias else None

    @property
    def nin(self) -> int:
        return len(self.weight[0])

    @property
    def nout(self) -> int:
        return len(self.weight)

    def __call__(self, x: Input) -> list[Value]:
        return self._forward(_as_inputs(x, self.nin, "Linear"))

    def _forward(self, xs: Sequence[Value]) -> list[Value]:
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
        _check_size("num", num)
        _check_size("dim", dim)
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
        row = _as_inputs(index, self.num, "Embedding")
        zero = Value(0.0)
        columns = map(list, zip(*self.weight, strict=True))
        return [fused_dot(column, row, zero) for column in columns]

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
        _check_size("dim", dim)
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 < eps < math.inf:
            raise ValueError(f"RMSNorm: eps must be a finite number > 0, got {eps!r}")
        self.dim = dim
        self.eps = float(eps)
        self.weight = [Value(1.0) for _ in range(dim)] if elementwise_affine else None

    def __call__(self, x: Input) -> list[Value]:
        return self._forward(_as_inputs(x, self.dim, "RMSNorm"))

    def _forward(self, xs: Sequence[Value]) -> list[Value]:
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
        _check_size("dim", dim)
        _check_size("heads", heads)
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
        xs = _as_inputs(x, self.dim, "CausalSelfAttention")
        q = self.q_proj._forward(xs)
        cache.keys.append(self.k_proj._forward(xs))
        cache.values.append(self.v_proj._forward(xs))
        d = self.dim // self.heads
        scale = 1.0 / math.sqrt(d)
        zero = Value(0.0)
        mixed: list[Value] = []
        for lo in range(0, self.dim, d):
            hi = lo + d
            q_h = q[lo:hi]
            weights = softmax([fused_dot(q_h, k[lo:hi], zero) * scale for k in cache.keys])
            mixed += [fused_dot(weights, [v[j] for v in cache.values], zero) for j in range(lo, hi)]
        return self.out_proj._forward(mixed)

    def __repr__(self) -> str:
        return f"CausalSelfAttention({self.dim}, heads={self.heads})"


# -- model files ------------------------------------------------------------------------


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


#: The most parameters a model may have. Training refuses a bigger model before it
#: starts (:class:`chainrule.training.TrainConfig` and ``GPTConfig``,
#: :class:`chainrule.gpt.Trainer`), :func:`save` refuses to write one and :func:`load`
#: to build one, so every model chainrule trains can be saved and read back. It also
#: bounds the memory a crafted file can make :func:`load` allocate (about 120 bytes a
#: parameter). The byte caps of model files and checkpoints are derived from it.
MAX_MODEL_PARAMETERS = 4_000_000

#: The longest JSON text of a finite float: ``json.dumps`` writes ``repr(x)``, the
#: shortest text that reads back exactly -- at most a sign, 17 significant digits, a
#: point and a three-digit exponent, as in ``-2.2250738585072014e-308``.
MAX_FLOAT_CHARS = 24

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


def count_parameters(nin: int, nouts: Sequence[int]) -> int:
    """How many parameters an :class:`MLP` of this shape has, without building it:
    ``(inputs + 1) × neurons`` per layer (the weights and a bias per neuron).

    >>> count_parameters(2, [16, 16, 1])
    337
    """
    sizes = [nin, *nouts]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))


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


def read_json_file(
    path: str | os.PathLike[str],
    *,
    kind: str,
    limit: int,
    limit_name: str,
    error: type[ChainruleError],
) -> Any:
    """The JSON value in the file ``path``, read with the care a model file gets.

    A file larger than ``limit`` bytes is refused unread (a device or pipe is read no
    further than that), and so are text that is not UTF-8, corrupt or truncated JSON,
    ``NaN`` and ``Infinity``, a number that no float can hold (``1e400``, ``10**400``,
    an integer of thousands of digits: :func:`find_number_beyond_float` names its
    entry), and JSON nested too deeply to parse. Each raises ``error``, naming the file
    and using ``kind`` ("model file", "checkpoint") and ``limit_name`` (the constant
    that sets ``limit``) in its message. So every number in the value returned is an
    ``int`` or a finite ``float`` that ``float()`` converts without overflow.
    """
    source = Path(path)

    def reject_constant(name: str) -> float:
        raise error(f"non-finite number {name} in the {kind}")

    try:
        text = _read_limited_text(source, kind, limit, limit_name, error)
        return _parse_json(text, kind, error, reject_constant)
    except json.JSONDecodeError as exc:
        raise error(
            f"{source}: not a valid {kind} (truncated or corrupt JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise error(f"{source}: not a {kind} (its JSON is nested too deeply to read)") from None
    except error as exc:
        raise error(f"{source}: {exc}") from None


class _Unreadable:
    """A number in a JSON text that no float can hold, kept as its text so that
    :func:`find_number_beyond_float` can say where it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_FLOAT_MAX_INT = int(sys.float_info.max)
_FLOAT_MAX_DIGITS = len(str(_FLOAT_MAX_INT))


def _parse_json(
    text: str, kind: str, error: type[ChainruleError], constant: Callable[[str], float]
) -> Any:
    """``json.loads(text)``, refusing a number that no float can hold, by its entry.

    Such a number is parsed to an :class:`_Unreadable` (an integer's digits are never
    converted past a float's range: Python refuses past 4,300 with ValueError), and the
    document is searched for it only if one was met.
    """
    met: list[_Unreadable] = []

    def parse_int(digits: str) -> int | _Unreadable:
        if len(digits) - digits.startswith("-") <= _FLOAT_MAX_DIGITS:
            n = int(digits)
            if -_FLOAT_MAX_INT <= n <= _FLOAT_MAX_INT:
                return n
        met.append(_Unreadable(digits))
        return met[-1]

    def parse_float(number: str) -> float | _Unreadable:
        x = float(number)
        if -math.inf < x < math.inf:
            return x
        met.append(_Unreadable(number))
        return met[-1]

    doc = json.loads(text, parse_constant=constant, parse_int=parse_int, parse_float=parse_float)
    beyond = find_number_beyond_float(doc) if met else None
    if beyond is not None:  # (None: a repeated key replaced the number)
        raise error(f"{beyond}; not a {kind} written by chainrule")
    return doc


def _beyond_float(x: object) -> bool:
    if type(x) is int:  # not bool
        return not -_FLOAT_MAX_INT <= x <= _FLOAT_MAX_INT
    return type(x) is _Unreadable


def find_number_beyond_float(doc: object) -> str | None:
    """Where JSON-ready ``doc`` first holds a number that no float can hold, or None.

    The one check of the size of numbers in model files and checkpoints: their readers
    turn numbers into floats, and an integer like ``10**400`` would overflow there.
    Returns a phrase naming the entry and the number, such as ``the entry config.lr
    holds 100000000000...00000 (401 digits), too large for a float``.
    """
    found = _first_entry(doc, _beyond_float)
    if found is None:
        return None
    keys, x = found
    if isinstance(x, int):  # from Python, not from a file: too long to print in full
        shown = f"an integer of {x.bit_length():,} bits"
    elif isinstance(x, _Unreadable) and len(x.text) > MAX_FLOAT_CHARS:
        digits = x.text.lstrip("-")
        size = f"{len(digits):,} digits" if digits.isdigit() else f"{len(x.text):,} characters"
        shown = f"{x.text[:12]}...{x.text[-5:]} ({size})"
    else:
        shown = str(getattr(x, "text", x))
    return f"the entry {_entry_name(keys)} holds {shown}, too large for a float"


def _first_entry(
    doc: object, wanted: Callable[[object], bool]
) -> tuple[list[str | int], object] | None:
    """The keys leading to the first value in ``doc`` (dicts and lists, in order) that is
    ``wanted``, and that value. Iterative: deep JSON does not exhaust the stack."""
    if wanted(doc):
        return [], doc
    keys: list[str | int] = []
    levels = [_items(doc)]
    while levels:  # invariant: len(keys) == len(levels) - 1
        step = next(levels[-1], None)
        if step is None:
            levels.pop()
            if keys:
                keys.pop()
            continue
        key, value = step
        if wanted(value):
            return [*keys, key], value
        if isinstance(value, dict | list) and value:
            keys.append(key)
            levels.append(_items(value))
    return None


def _items(value: object) -> Iterator[tuple[str | int, object]]:
    if isinstance(value, dict):
        return iter(value.items())
    return enumerate(value) if isinstance(value, list) else iter(())


def _entry_name(keys: Sequence[str | int]) -> str:
    """``config.lr``, ``optimizer.m[3]``, ``parameters["wte.weight.0.0"]``."""
    name = ""
    for key in keys:
        if isinstance(key, int):
            name += f"[{key}]"
        elif key.isidentifier():
            name += f".{key}" if name else key
        else:
            name += f"[{json.dumps(key[:60])}]"
    return name or "(the whole file)"


def _read_limited_text(
    source: Path, kind: str, limit: int, limit_name: str, error: type[ChainruleError]
) -> str:
    """The file's text, refusing anything larger than ``limit`` bytes unread."""
    too_big = error(
        f"the file is larger than {limit:,} bytes ({limit_name}); "
        f"it is not a {kind} written by chainrule"
    )
    try:
        with open(source, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > limit:
                raise too_big
            data = f.read(limit + 1)  # devices and pipes have no size: read at most this
    except FileNotFoundError:
        raise error(f"no such {kind}") from None
    except OSError as exc:
        raise error(f"cannot read the {kind} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise too_big
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"not a {kind} (not UTF-8 text)") from None


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
        _check_size("nin", nin)
        if not isinstance(nouts, list) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer sizes, got {nouts!r:.40}")
        for n in nouts:
            _check_size("each layer size in nouts", n)
        _check_choice("activation", activation, ACTIVATIONS)
        if output_activation is not None:
            _check_choice("output_activation", output_activation, ACTIVATIONS)
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
    if isinstance(x, bool) or not is_real(x):
        raise ModelFileError(f"layer {layer}: parameters must be numbers, found {x!r:.40}")
    try:
        f = float(x)  # type: ignore[arg-type]
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ModelFileError(f"layer {layer}: non-finite parameter {f}")
    return f
