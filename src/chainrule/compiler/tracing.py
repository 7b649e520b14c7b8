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
    loss: Value
    aux: Any
    leaves: list[Value]  # the input Values, flattened in C order


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


def record(fn: Callable[..., Any], arrays: list[Array], has_aux: bool, name: str) -> Trace:
    leaves: list[Value] = []
    args = [values_from(a, leaves) for a in arrays]
    with enable_grad():
        out = fn(*args)
    aux = None
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"compile: with has_aux=True, {name} must return (loss, aux)")
        out, aux = out
    if not isinstance(out, Value):
        raise TypeError(f"compile: {name} must return a Value (the loss), got {type(out).__name__}")
    return Trace(out, aux, leaves)


def aux_values(aux: Any, name: str) -> list[Value]:
    """The Values in ``aux`` (a Value or nested lists/tuples of them), flattened."""
    out: list[Value] = []
    stack = [aux]
    while stack:
        x = stack.pop()
        if isinstance(x, Value):
            out.append(x)
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


def graph_of(trace: Trace, params: list[Value], name: str) -> Graph:
    auxes = aux_values(trace.aux, name) if trace.aux is not None else []
    order = topological_order(trace.loss)
    index = dict(zip(order, range(len(order)), strict=True))
    for a in auxes:  # aux outside the loss's graph: add their own graphs
        if a not in index:
            for v in topological_order(a):
                if v not in index:
                    index[v] = len(order)
                    order.append(v)
    param_index = dict(zip(params, range(len(params)), strict=True))
    input_index = dict(zip(trace.leaves, range(len(trace.leaves)), strict=True))
    # One pass in topological order. A node is fixed if all its inputs are, frozen if
    # all its inputs are; nearly every node fails both tests at its first input.
    fixed: set[Value] = set()
    frozen: set[Value] = set()
    constant_leaves = []
    is_fixed, is_frozen = fixed.__contains__, frozen.__contains__
    fix, freeze = fixed.add, frozen.add
    for v in order:
        prev = v._prev
        if prev:
            if all(map(is_frozen, prev)):
                freeze(v)
                if all(map(is_fixed, prev)):
                    fix(v)
        elif v in param_index:
            pass
        elif v in input_index:
            freeze(v)
        else:
            fix(v)
            freeze(v)
            constant_leaves.append(v)
    outputs = [index[r] for r in [trace.loss, *auxes]]
    return Graph(order, index, fixed, frozen, param_index, input_index, outputs, constant_leaves)


def fingerprint(graph: Graph) -> list[Any]:
    """The graph's structure, compared between two traces: per node its op, argument
    and inputs' positions, or what leaf it is (a constant with its value)."""
    at = graph.index.__getitem__
    params, inputs = graph.param_index, graph.input_index
    out: list[Any] = []
    for v in graph.order:
        if v._prev:
            out.append((v._op, v.arg, tuple(map(at, v._prev))))
        elif v in params:
            out.append(("param", params[v]))
        elif v in inputs:
            out.append(("input", inputs[v]))
        else:
            out.append(("constant", DATA_SLOT.__get__(v, Value)))
    out.append(("outputs", graph.outputs))
    return out


def check(trace: Trace, tracer: Watch, graph: Graph, params: list[Value], name: str) -> None:
    """Refuse ``.data`` reads of traced Values and ``no_grad()`` results that depend on
    the parameters or inputs: the replay would silently get them wrong."""
    if not tracer.reads and not tracer.detached:
        return
    sources = {id(p) for p in params} | {id(v) for v in trace.leaves}
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
