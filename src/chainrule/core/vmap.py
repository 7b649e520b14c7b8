"""``vmap``: write a function for one example, apply it to a whole batch.

The lecture computes a loss over its examples with a loop::

    losses = [(1 - t * model(x)).relu() for x, t in zip(X, y)]
    loss = sum(losses) * (1.0 / len(losses))

:func:`vmap` is that loop as a function transform, as in JAX: the function is written
for one example, and ``vmap`` maps it over the leading axis of its arguments::

    per_example = vmap(lambda x, t: (1 - t * model(x)).relu(), reduce="mean")
    loss = per_example(X, y)

Called eagerly it *is* the loop -- the same nodes, the same numbers. Its point is
:func:`chainrule.compile`: there a vmapped call is traced on one example and replayed
over the whole batch as arrays, whatever the batch size (``chainrule.compiler``
installs itself with :func:`set_batch_hook` while it traces). Standard library only.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

from chainrule.core.value import Value, is_real, sum_values
from chainrule.errors import ChainruleError

__all__ = ["BatchHook", "VmapError", "Vmapped", "example_count", "set_batch_hook", "vmap"]

Reduce: TypeAlias = Literal["sum", "mean"] | None
InAxes: TypeAlias = "int | Sequence[int | None] | None"

#: What ``reduce=`` accepts.
REDUCTIONS = (None, "sum", "mean")


class VmapError(ChainruleError, ValueError):
    """A batch :func:`vmap` cannot map: no examples, rows of different lengths, leading
    axes that differ, entries that are not finite numbers. The message names the argument."""


def vmap(fn: Callable[..., Any], reduce: Reduce = None, in_axes: InAxes = 0) -> Vmapped:
    """``fn``, written for one example, mapped over the leading axis of its arguments.

    ``vmap(fn)(X, y)`` calls ``fn(X[i], y[i])`` for every example ``i`` and returns the
    list of results (``reduce=None``), their sum as one Value (``reduce="sum"``) or
    their mean (``reduce="mean"``: the sum times ``1/N``, as the losses average).
    Arguments may be NumPy arrays (their rows reach ``fn`` as lists of floats), lists
    of rows or sequences of numbers or Values. ``in_axes`` follows JAX: ``0`` maps an
    argument, ``None`` passes it whole to every example; one entry per argument, or
    one for all.

    Eagerly it is exactly the loop written by hand. Inside :func:`chainrule.compile`
    it is traced once, on one example, and replayed over the batch as arrays.

    >>> from chainrule import Value
    >>> w = Value(2.0)
    >>> vmap(lambda x, t: (w * x - t) ** 2, reduce="sum")([1.0, 2.0], [1.0, 3.0]).data
    2.0
    """
    if not callable(fn):
        raise TypeError(f"vmap: expected a function, got {type(fn).__name__}: {fn!r:.60}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"vmap: reduce must be None, 'sum' or 'mean', got {reduce!r:.60}")
    return Vmapped(fn, reduce, _checked_axes(in_axes))


def _checked_axes(in_axes: Any) -> int | tuple[int | None, ...] | None:
    entries = list(in_axes) if isinstance(in_axes, (list, tuple)) else [in_axes]
    for axis in entries:
        if axis is not None and (type(axis) is not int or axis != 0):
            raise ValueError(
                f"vmap: each in_axes entry must be 0 (map over the leading axis) or None "
                f"(pass the argument whole to every example), got {axis!r:.60}"
            )
    if isinstance(in_axes, (list, tuple)):
        if all(axis is None for axis in entries):
            raise ValueError("vmap: in_axes maps no argument (every entry is None)")
        return tuple(entries)
    if in_axes is None:
        raise ValueError("vmap: in_axes=None maps no argument; give 0 for the mapped ones")
    return 0


class Vmapped:
    """A function mapped over a batch by :func:`vmap`; call it with the batch."""

    def __init__(
        self, fn: Callable[..., Any], reduce: Reduce, in_axes: int | tuple[int | None, ...] | None
    ) -> None:
        self.fn = fn
        self.reduce = reduce
        self.in_axes = in_axes
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def axes(self, n_args: int) -> tuple[int | None, ...]:
        """One axis (0 or None) per argument of a call with ``n_args`` arguments."""
        if not isinstance(self.in_axes, tuple):
            if n_args == 0:
                raise TypeError(f"vmap: {self.__name__} was called with no arguments to map")
            return (self.in_axes,) * n_args
        if len(self.in_axes) != n_args:
            raise TypeError(
                f"vmap: in_axes has {len(self.in_axes)} entries but {self.__name__} was "
                f"called with {n_args} arguments"
            )
        return self.in_axes

    def arg_name(self, k: int) -> str:
        """``argument k`` and, where ``fn``'s signature tells, its name: ``argument 1 (t)``."""
        try:
            names = [
                p.name
                for p in inspect.signature(self.fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            names = []
        return f"argument {k} ({names[k]})" if k < len(names) else f"argument {k}"

    def __call__(self, *args: Any) -> Any:
        axes = self.axes(len(args))
        if _batch_hook is not None:  # inside chainrule.compile's trace
            out = _batch_hook(self, args, axes)
            if out is not NotImplemented:
                return out
        columns: list[Any] = []
        n = None
        first = -1
        for k, (arg, axis) in enumerate(zip(args, axes, strict=True)):
            if axis is None:
                columns.append(None)
                continue
            examples = _examples(arg, self.arg_name(k))
            if n is None:
                n, first = len(examples), k
            elif len(examples) != n:
                raise self.axes_differ(first, n, k, len(examples))
            columns.append(examples)
        assert n is not None  # axes() maps at least one argument
        fn = self.fn
        results = [
            fn(*[arg if col is None else col[i] for arg, col in zip(args, columns, strict=True)])
            for i in range(n)
        ]
        return self.reduced(results)

    def axes_differ(self, k1: int, n1: int, k2: int, n2: int) -> VmapError:
        return VmapError(
            f"vmap: {self.arg_name(k1)} holds {n1} examples but {self.arg_name(k2)} holds "
            f"{n2}; every mapped argument needs one entry per example"
        )

    def reduced(self, results: list[Any]) -> Any:
        """The per-example ``results`` as ``reduce`` asks: the list, the sum or the mean."""
        if self.reduce is None:
            return results
        for r in results[:1]:
            if not isinstance(r, Value) and not is_real(r):
                raise TypeError(
                    f"vmap: with reduce={self.reduce!r}, {self.__name__} must return one "
                    f"Value (or number) per example, got {type(r).__name__}"
                )
        total = sum_values(results)  # one node, as the losses add up their terms
        return total * (1.0 / len(results)) if self.reduce == "mean" else total

    def __repr__(self) -> str:
        return f"<vmap of {self.__name__}, reduce={self.reduce!r}, in_axes={self.in_axes!r}>"


# -- the examples of one argument -------------------------------------------------


def example_count(arg: Any, name: str) -> int:
    """How many examples ``arg`` (an array or a sequence) holds along its leading axis;
    a :class:`VmapError` for anything else, or for none."""
    shape = getattr(arg, "shape", None)
    if shape is not None and hasattr(arg, "dtype"):
        if not shape:
            raise VmapError(f"vmap: {name} is a 0-d array: it has no leading axis to map")
        n = int(shape[0])
    elif isinstance(arg, Sequence) and not isinstance(arg, (str, bytes)):
        n = len(arg)
    else:
        raise VmapError(
            f"vmap: {name} is a {type(arg).__name__}: a mapped argument must be an array, a "
            "list of rows or a sequence of numbers (in_axes=None passes it whole instead)"
        )
    if n == 0:
        raise VmapError(f"vmap: {name} holds no examples (its leading axis is empty)")
    return n


def _examples(arg: Any, name: str) -> list[Any]:
    """The examples of ``arg`` along its leading axis, checked: an array's rows as
    (nested lists of) floats, a sequence's items as they are."""
    example_count(arg, name)
    if hasattr(arg, "dtype") and hasattr(arg, "tolist"):
        kind = getattr(arg.dtype, "kind", "?")
        if kind not in "iuf":
            raise VmapError(f"vmap: {name} holds {arg.dtype} entries, not numbers")
        examples: list[Any] = arg.astype(float).tolist()
        if kind == "f" and not bool((abs(arg) < math.inf).all()):
            bad = next(i for i, row in enumerate(examples) if not _all_finite(row))
            raise VmapError(f"vmap: {name} holds a non-finite number in example {bad}")
        return examples
    examples = list(arg)
    shape = _shape(examples[0], name, 0)
    for i, item in enumerate(examples):
        if _shape(item, name, i) != shape:
            raise VmapError(
                f"vmap: {name} is ragged: example 0 has shape {shape or 'scalar'} but "
                f"example {i} has shape {_shape(item, name, i) or 'scalar'}"
            )
    return examples


def _all_finite(row: Any) -> bool:
    if isinstance(row, list):
        return all(map(_all_finite, row))
    return math.isfinite(row)


def _shape(item: Any, name: str, i: int) -> tuple[int, ...]:
    """The shape of one example: () for a number or Value, (n, ...) for nested lists."""
    if isinstance(item, Value):
        return ()
    if is_real(item):
        if not math.isfinite(item):
            raise VmapError(f"vmap: {name} holds a non-finite number ({item}) in example {i}")
        return ()
    if isinstance(item, (list, tuple)):
        if not item:
            return (0,)
        inner = _shape(item[0], name, i)
        for x in item:
            if _shape(x, name, i) != inner:
                raise VmapError(f"vmap: {name} is ragged inside example {i}")
        return (len(item), *inner)
    raise VmapError(
        f"vmap: {name} holds a {type(item).__name__} ({item!r:.40}) in example {i}; an "
        "example must be a number, a Value or a list of them"
    )


# -- the hook chainrule.compile installs while it traces -----------------------------

#: ``hook(vmapped, args, axes)``: the result of the call, or ``NotImplemented`` to run
#: the loop as eagerly.
BatchHook: TypeAlias = Callable[[Vmapped, tuple[Any, ...], tuple[int | None, ...]], Any]

_batch_hook: BatchHook | None = None


def set_batch_hook(hook: BatchHook | None) -> BatchHook | None:
    """Install ``hook`` (``None`` clears it), returning the one it replaces.

    While a hook is installed, every vmapped call asks it first; ``chainrule.compile``
    installs one while it traces a function, so that a vmapped call on the function's
    inputs is traced on one example instead of looping. One hook for the process.
    """
    global _batch_hook
    if hook is not None and not callable(hook):
        raise TypeError(f"set_batch_hook: hook must be callable or None, got {hook!r:.60}")
    previous, _batch_hook = _batch_hook, hook
    return previous
