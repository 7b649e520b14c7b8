"""Tracing: run the loss once on Values, record its graph, and refuse what would not
replay faithfully.

While a trace runs, a :class:`chainrule.core.watch.Watch` sees the loss's reads of Values'
numbers (``.data``, ``float(v)``, ``round(v)``, ``format(v, spec)``: Python control flow
on a number that the replay will not see change) and the numbers it computes out of the
graph's sight (under ``no_grad()``, copies of leaves, derivatives given case by case).
Each is refused only if what was read or detached depends on the parameters or inputs.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainrule.compiler.batching import (
    BATCH_REDUCE,
    Batched,
    BatchTrace,
    InputRows,
    batch_array,
    values_from,
)
from chainrule.compiler.ops import Array
from chainrule.core import Value, enable_grad, topological_order
from chainrule.core.watch import DATA_SLOT, Watch
from chainrule.errors import CompileError

__all__ = [
    "Graph",
    "Trace",
    "Tracer",
    "aux_values",
    "check",
    "fingerprint",
    "graph_of",
    "rebuild_aux",
    "record",
    "values_from",
]


class Tracer(Watch):
    """What one trace read and detached (a :class:`~chainrule.core.watch.Watch` that records)."""


@dataclass
class Trace:
    loss: Value | Batched  # a Batched: a forward over a batch, no loss
    aux: Any
    inputs: list[Any]  # per input: a Value (a number) or its InputRows
    sizes: list[int]  # per input: how many numbers it holds
    batch: BatchTrace  # the batch leaves of vmapped calls on the inputs

    def input_index(self) -> dict[Value, int]:
        """The Values made of the inputs' numbers, each with its position among all the
        inputs' numbers (flattened in C order, one input after another)."""
        index: dict[Value, int] = {}
        at = 0
        for x, size in zip(self.inputs, self.sizes, strict=True):
            leaves = [x] if isinstance(x, Value) else x.leaves
            index.update(zip(leaves, range(at, at + len(leaves)), strict=True))
            at += size
        return index


def record(fn: Callable[..., Any], arrays: list[Array], has_aux: bool, name: str) -> Trace:
    """Run ``fn`` on the ``arrays`` as Values; a vmapped call on them is traced on one
    example (:class:`~chainrule.compiler.batching.BatchTrace`)."""
    batch = BatchTrace(arrays)
    args = [
        Value(float(a)) if a.ndim == 0 else InputRows(a, k, batch) for k, a in enumerate(arrays)
    ]
    with enable_grad(), batch:
        out = fn(*args)
    aux = None
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"compile: with has_aux=True, {name} must return (loss, aux)")
        out, aux = out
    if not isinstance(out, Value) and not (isinstance(out, Batched) and not has_aux):
        raise TypeError(
            f"compile: {name} must return a Value (the loss) or the batch of a vmapped "
            f"call (a forward over a batch), got {type(out).__name__}"
        )
    return Trace(out, aux, args, [a.size for a in arrays], batch)


def aux_values(aux: Any, name: str) -> list[Value]:
    """The Values in ``aux`` (a Value or nested lists/tuples of them), flattened."""
    out: list[Value] = []
    stack = [aux]
    while stack:
        x = stack.pop()
        if isinstance(x, Value):
            out.append(x)
        elif isinstance(x, Batched):
            out.extend(x.values)
        elif isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            raise TypeError(
                f"compile: {name}'s aux must be a Value or nested lists of Values, "
                f"found {type(x).__name__}"
            )
    return out


def rebuild_aux(aux: Any, it: Any) -> Any:
    """``aux`` with each Value replaced by the next item of ``it``, every list and tuple
    rebuilt as its own type (a namedtuple as that namedtuple)."""
    if isinstance(aux, Value):
        return next(it)
    if isinstance(aux, Batched):
        return batch_array([next(it) for _ in aux.values], aux.shape)
    items = [rebuild_aux(x, it) for x in aux]
    if isinstance(aux, tuple) and hasattr(aux, "_fields"):  # a namedtuple: fields by position
        return type(aux)(*items)
    return type(aux)(items)


@dataclass
class Graph:
    """A trace's graph: its nodes in topological order, and what each depends on.

    Values hash by identity, so the sets and dicts below are keyed by the Values
    themselves.
    """

    order: list[Value]
    index: dict[Value, int]  # position in order
    fixed: set[Value]  # depends on no parameter and no input: a constant
    frozen: set[Value]  # depends on no parameter: needs no gradient (``fixed`` included)
    param_index: dict[Value, int]
    input_index: dict[Value, int]
    outputs: list[int]  # the loss, then the aux Values
    constant_leaves: list[Value]
    batch_index: dict[Value, tuple[int, int]]  # batch leaf -> (input, position in a row)
    batched: set[Value]  # holds a row of N numbers in the replay (see batching.py)
    n_loss: int  # how many of the outputs are the loss: 1, or 0 for a forward
    in_batch: list[bool]  # per output: one of a Batched's Values (comes back as N numbers)


def graph_of(trace: Trace, params: list[Value], name: str) -> Graph:
    auxes = aux_values(trace.aux, name) if trace.aux is not None else []
    roots = trace.loss.values if isinstance(trace.loss, Batched) else [trace.loss]
    order: list[Value] = []
    index: dict[Value, int] = {}
    for a in [*roots, *auxes]:  # each output's graph, after the loss's
        if a not in index:
            for v in topological_order(a):
                if v not in index:
                    index[v] = len(order)
                    order.append(v)
    param_index = dict(zip(params, range(len(params)), strict=True))
    input_index = trace.input_index()
    batch_index = trace.batch.leaf_index
    # One pass in topological order. A node is fixed if all its inputs are, frozen if
    # all its inputs are; nearly every node fails both tests at its first input. A node
    # is batched if one of its inputs is, unless it reduces the batch axis (whose
    # result, depending on N, is never fixed).
    fixed: set[Value] = set()
    frozen: set[Value] = set()
    batched: set[Value] = set()
    constant_leaves = []
    is_fixed, is_frozen, is_batched = fixed.__contains__, frozen.__contains__, batched.__contains__
    fix, freeze = fixed.add, frozen.add
    for v in order:
        prev = v._prev
        if prev:
            if all(map(is_frozen, prev)):
                freeze(v)
                if all(map(is_fixed, prev)) and v._op not in BATCH_REDUCE:
                    fix(v)
            if batched and v._op not in BATCH_REDUCE and any(map(is_batched, prev)):
                batched.add(v)
        elif v in param_index:
            pass
        elif v in input_index:
            freeze(v)
        elif v in batch_index:
            freeze(v)
            batched.add(v)
        else:
            fix(v)
            freeze(v)
            constant_leaves.append(v)
    outputs = [index[r] for r in [*roots, *auxes]]
    n_loss = 0 if isinstance(trace.loss, Batched) else 1
    if n_loss and trace.loss in batched:
        raise _escaped("loss", name)
    in_batch = [not n_loss] * len(roots) + [_in_batch(a, trace.aux) for a in auxes]
    if any(v in batched and not b for v, b in zip(auxes, in_batch[len(roots) :], strict=True)):
        raise _escaped("aux", name)
    return Graph(
        order,
        index,
        fixed,
        frozen,
        param_index,
        input_index,
        outputs,
        constant_leaves,
        batch_index,
        batched,
        n_loss,
        in_batch,
    )


def _in_batch(v: Value, aux: Any) -> bool:
    """Whether ``v`` is one of the Values of a :class:`Batched` inside ``aux``."""
    stack = [aux]
    while stack:
        x = stack.pop()
        if isinstance(x, Batched):
            if any(u is v for u in x.values):
                return True
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return False


def _escaped(what: str, name: str) -> CompileError:
    """The error for per-example values used outside their vmapped call unreduced."""
    return CompileError(
        f"compile: {name}'s {what} depends on per-example values of a vmapped call that "
        "were not reduced: give the vmapped call reduce='sum' or 'mean', or return its "
        "batch (reduce=None) as the result, or in the aux, to get one row per example"
    )


def fingerprint(graph: Graph) -> list[Any]:
    """The graph's structure, compared between two traces: per node its op, argument
    and inputs' positions, or what leaf it is (a constant with its value)."""
    at = graph.index.__getitem__
    params, inputs, batch = graph.param_index, graph.input_index, graph.batch_index
    out: list[Any] = []
    for v in graph.order:
        if v._prev:
            out.append((v._op, v.arg, tuple(map(at, v._prev))))
        elif v in params:
            out.append(("param", params[v]))
        elif v in inputs:
            out.append(("input", inputs[v]))
        elif v in batch:
            out.append(("batch", batch[v]))
        else:
            out.append(("constant", DATA_SLOT.__get__(v, Value)))
    out.append(("outputs", graph.outputs))
    return out


def check(trace: Trace, tracer: Watch, graph: Graph, params: list[Value], name: str) -> None:
    """Refuse ``.data`` reads of traced Values and ``no_grad()`` results that depend on
    the parameters or inputs: the replay would silently get them wrong."""
    if not tracer.reads and not tracer.detached:
        return
    sources = {id(p) for p in params} | set(map(id, trace.input_index()))
    sources.update(map(id, trace.batch.leaf_index))
    index, fixed = graph.index, graph.fixed
    for v, at in tracer.reads:
        if _depends(v, index, fixed, sources):
            raise CompileError(
                f"compile: {at}: {name} reads .data of a traced Value "
                f"({DATA_SLOT.__get__(v, Value)!r}, computed from the parameters or "
                "inputs). The compiled program replays the graph of the first call, so "
                "Python code that branches on a traced number would be silently wrong at "
                "other values. Write it with Value operations (relu, softplus, logsumexp, "
                f"...) or run this loss eagerly.{_rewrite_hint(at)}"
            )
    for prev, how, at in tracer.detached:
        if any(_depends(p, index, fixed, sources) for p in prev):
            raise CompileError(f"compile: {at}: {name} {_DETACHED[how]}")


def _rewrite_hint(at: str) -> str:
    """The exact rewrite for a known pattern on the line ``at`` ("file:line ..."): the
    maximum subtracted from logits for a stable softmax, as small scalar GPTs write it."""
    where = at.split(" (in ", 1)[0]
    path, _, line = where.rpartition(":")
    text = linecache.getline(path, int(line)) if line.isdigit() else ""
    if "max(" not in text or ".data" not in text:
        return ""
    return (
        " This line takes a maximum of numbers read from Values, as a stable softmax "
        "subtracts it: write the softmax as chainrule.losses.softmax(logits) (or "
        "log_softmax, built on logsumexp: stable with no maximum read), or take the "
        "maximum on the graph with chainrule.maximum(a, b)."
    )


#: Why each kind of detached number is refused (see :func:`chainrule.core.value.set_detached_hook`).
_DETACHED = {
    "no_grad": (
        "computes a value under no_grad() from the parameters or inputs; the compiled "
        "program would freeze it at its traced value. Compute it without no_grad(), or "
        "outside the function and pass it as an input."
    ),
    "copy": (
        "copies a parameter or input, or a Value computed from them (copy.copy, "
        "copy.deepcopy): the copy is a new leaf holding the traced number, which the "
        "compiled program would freeze. Use the Values themselves, or copy outside the "
        "function."
    ),
    "case": (
        "takes a derivative (grad or gradients inside the loss) of x % y with respect to "
        "y, or of x ** y at x = 0, whose local derivative there is a plain number given "
        "case by case; the compiled program would freeze it at its traced value. Run "
        "this loss eagerly."
    ),
}


def _depends(v: Value, index: dict[Value, int], fixed: set[Value], sources: set[int]) -> bool:
    """Whether ``v`` (in the graph or not) depends on a parameter or an input."""
    seen: set[int] = set()
    stack = [v]
    while stack:
        u = stack.pop()
        if u in index:
            if u not in fixed:
                return True
        elif id(u) in sources:
            return True
        elif id(u) not in seen:
            seen.add(id(u))
            stack.extend(u._prev)
    return False
