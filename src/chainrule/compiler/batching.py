"""Tracing a vmapped call on one example: the batch axis of ``chainrule.compile``.

While a compiled function is traced, :class:`BatchTrace` is the hook of
:func:`chainrule.core.vmap.set_batch_hook`. A vmapped call whose mapped arguments are
the function's inputs (or the per-example results of another vmapped call) is not
looped: the function is called once, on one example made of *batch leaves* -- one
Value per number of an example, standing for a column of N numbers -- and the
per-example result comes back as a :class:`Batched` (``reduce=None``) or as one node
``batch_sum`` / ``batch_mean`` that collapses the batch axis. Every node computed from
a batch leaf is *batched*: the replay holds a row of N numbers for it.

The batch size is not part of the trace, so the program serves every N -- unless the
function looked at an input some other way (``len(X)``, a loop over its rows): the
input's rows are an :class:`InputRows` list that notes any such use, and the program is
then kept to that exact shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, SupportsIndex

import numpy as np

from chainrule.compiler.ops import Array
from chainrule.core import Value, is_real, make_node
from chainrule.core.vmap import Vmapped, example_count, set_batch_hook
from chainrule.core.watch import DATA_SLOT
from chainrule.errors import CompileError

__all__ = [
    "BATCH_REDUCE",
    "BatchTrace",
    "Batched",
    "InputRows",
    "batch_array",
    "values_from",
]

#: The ops that collapse the batch axis: ``batch_sum`` adds a batched node's N numbers,
#: ``batch_mean`` averages them. Their results are not batched.
BATCH_REDUCE = {"batch_sum", "batch_mean"}


class InputRows(Sequence[Any]):
    """An input array of the traced function as rows of Values, made on first use.

    A vmapped call takes the array itself and makes no Value per number; any other use
    (``len(X)``, a loop over the rows, indexing) makes the rows and notes that the
    function used the input whole, so that its program keeps the traced shape."""

    __slots__ = ("_rows", "array", "input", "leaves", "trace")

    def __init__(self, array: Array, index: int, trace: BatchTrace) -> None:
        self.array = array
        self.input = index  # which input of the function
        self.trace = trace
        self.leaves: list[Value] = []
        self._rows: list[Any] | None = None

    def rows(self) -> list[Any]:
        """The rows as (nested lists of) Values, made on the first call."""
        if self._rows is None:
            self.trace.used_whole.add(self.input)
            self._rows = values_from(self.array, self.leaves)
        return self._rows

    def __len__(self) -> int:
        return len(self.rows())

    def __getitem__(self, i: Any) -> Any:
        return self.rows()[i]

    def __iter__(self) -> Iterator[Any]:
        rows: list[Any] = self.rows()
        return iter(rows)

    def __reversed__(self) -> Iterator[Any]:
        return iter(self.rows()[::-1])

    def __contains__(self, x: object) -> bool:
        return x in self.rows()

    def __eq__(self, other: object) -> bool:
        return self.rows() == (other.rows() if isinstance(other, InputRows) else other)

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Any) -> Any:
        return self.rows() + other

    def __radd__(self, other: Any) -> Any:
        return other + self.rows()

    def __mul__(self, n: SupportsIndex) -> Any:
        return self.rows() * n

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return repr(self.rows())


def values_from(a: Array, leaves: list[Value]) -> Any:
    """An array as (nested lists of) fresh Values; each Value is appended to ``leaves``."""
    if a.ndim == 0:
        v = Value(float(a))
        leaves.append(v)
        return v
    flat = [Value(x) for x in a.ravel().tolist()]
    leaves.extend(flat)
    rows: list[Any] = flat
    for n in reversed(a.shape[1:]):
        rows = [rows[i : i + n] for i in range(0, len(rows), n)]
    return rows


class Batched:
    """The per-example results of a vmapped call (``reduce=None``) inside a compiled
    function: the compiled call returns them as a NumPy array with one row per example.
    Pass them to another vmapped call, or return them (or put them in the aux)."""

    __slots__ = ("n", "shape", "structure", "values")

    def __init__(self, structure: Any, n: int, who: str) -> None:
        self.structure = structure
        self.n = n
        self.values, self.shape = _flatten(structure, who)

    def _refuse(self, *args: Any) -> Any:
        raise CompileError(
            "compile: the result of a vmapped call (reduce=None) is a batch, not a list, "
            "inside a compiled function: return it (it comes back as an array), pass it "
            "to another vmapped call, or reduce it with reduce='sum' or 'mean'"
        )

    __len__ = __iter__ = __getitem__ = __add__ = __radd__ = _refuse

    def __repr__(self) -> str:
        return f"<batch of {self.n} per-example results of shape {self.shape}>"


def _flatten(structure: Any, who: str) -> tuple[list[Value], tuple[int, ...]]:
    """The Values of a per-example result (a Value or a regular nested list of them),
    in C order, and its shape."""
    if isinstance(structure, Value):
        return [structure], ()
    if isinstance(structure, (list, tuple)) and structure:
        parts = [_flatten(x, who) for x in structure]
        shape = parts[0][1]
        if any(p[1] != shape for p in parts):
            raise CompileError(f"compile: {who} returns per-example results of uneven shape")
        return [v for p in parts for v in p[0]], (len(parts), *shape)
    raise CompileError(
        f"compile: {who} must return a Value or a (nested) list of Values per example, got "
        f"{type(structure).__name__}"
    )


class BatchTrace:
    """The batch axis of one trace: the batch leaves of each input that a vmapped call
    maps, the batch size, and the inputs the function used whole."""

    def __init__(self, arrays: list[Array]) -> None:
        self.arrays = arrays
        #: input index -> the batch leaves of one example (C order of a row)
        self.leaves: dict[int, list[Value]] = {}
        self.rows: dict[int, Any] = {}  # input index -> the leaves as a nested row
        self.leaf_index: dict[Value, tuple[int, int]] = {}  # leaf -> (input, position)
        self.n: int | None = None
        self.used_whole: set[int] = set()
        self.reduced = False  # whether any vmapped call was traced on one example

    def __enter__(self) -> BatchTrace:
        self._previous = set_batch_hook(self.call)
        return self

    def __exit__(self, *exc: object) -> None:
        set_batch_hook(self._previous)

    @property
    def active(self) -> bool:
        return bool(self.leaves)

    def call(self, vm: Vmapped, args: tuple[Any, ...], axes: tuple[int | None, ...]) -> Any:
        """A vmapped call during the trace: traced on one example, or NotImplemented
        (loop as eagerly) when a mapped argument is not one of the function's inputs."""
        mapped: list[tuple[int, Any]] = [
            (k, a) for k, (a, axis) in enumerate(zip(args, axes, strict=True)) if axis == 0
        ]
        if not all(
            isinstance(a, Batched) or (isinstance(a, InputRows) and a.trace is self)
            for _, a in mapped
        ):
            return NotImplemented
        example: list[Any] = list(args)
        first: tuple[int, int] | None = None
        for k, a in mapped:
            if isinstance(a, Batched):
                n, example[k] = a.n, a.structure
            else:
                n = example_count(self.arrays[a.input], vm.arg_name(k))
                example[k] = self._example(a.input)
            if first is None:
                first = (k, n)
            elif n != first[1]:
                raise vm.axes_differ(first[0], first[1], k, n)
        assert first is not None
        n = first[1]
        if self.n is not None and n != self.n:
            raise CompileError(
                f"compile: two vmapped calls map batches of {self.n} and {n} examples; "
                "within one compiled function every vmapped input needs the same length"
            )
        self.n = n
        out = vm.fn(*example)
        if vm.reduce is None:
            return Batched(out, n, vm.__name__)
        if is_real(out):
            out = Value(out)  # the same number for every example: a constant row
        if not isinstance(out, Value):
            raise TypeError(
                f"vmap: with reduce={vm.reduce!r}, {vm.__name__} must return one Value (or "
                f"number) per example, got {type(out).__name__}"
            )
        data = DATA_SLOT.__get__(out, Value)  # not the user's read: the watch must not see it
        self.reduced = True
        return make_node(data * n if vm.reduce == "sum" else data, (out,), f"batch_{vm.reduce}")

    def _example(self, k: int) -> Any:
        """The batch leaves of input ``k``, made on first use: Values holding its first
        example's numbers (the trace computes with them; the replay with every row)."""
        if k not in self.rows:
            row = self.arrays[k][0]
            leaves = [Value(x) for x in row.ravel().tolist()]
            self.leaves[k] = leaves
            for j, v in enumerate(leaves):
                self.leaf_index[v] = (k, j)
            self.rows[k] = _nest(leaves, row.shape)
        return self.rows[k]


def _nest(flat: list[Value], shape: tuple[int, ...]) -> Any:
    if not shape:
        return flat[0]
    rows: list[Any] = flat
    for n in reversed(shape[1:]):
        rows = [rows[i : i + n] for i in range(0, len(rows), n)]
    return rows


def batch_array(rows: list[Array], shape: tuple[int, ...]) -> Array:
    """The rows of a :class:`Batched`'s Values (one array of N numbers each) as one array
    of shape ``(N, *shape)``: one row per example."""
    stacked = np.stack(rows, axis=-1)
    return stacked.reshape(stacked.shape[0], *shape)
