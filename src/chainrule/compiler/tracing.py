"""Tracing: run the loss once on Values, record its graph, and refuse what would not
replay faithfully.

While a trace runs, ``Value.data`` is watched: a read of a traced Value's data made
outside the engine (or through ``float(v)``, ``round(v)``, ``format(v, spec)``) is
Python control flow on a number that the replay will not see change. ``no_grad()``
results are watched too, through the engine's ``_on_detached`` hook. Both are refused
only if what was read or detached depends on the parameters or inputs. Other threads
keep reading and writing ``data`` as before, a little slower while a trace runs.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainrule import custom, engine
from chainrule.compiler.ops import Array
from chainrule.engine import Value, enable_grad, topological_order
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

#: The folder of the chainrule package: frames inside it are not the user's code.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_DATA_SLOT = Value.__dict__["data"]  # the slot's own descriptor
_ENGINE_GLOBALS = engine.__dict__
#: User-defined ops (chainrule.custom) read their inputs' data as the engine's ops do.
_CUSTOM_GLOBALS = custom.__dict__
#: Engine functions whose reads of ``data`` are the caller's: ``float(v)``, ``round(v)``
#: and ``format(v, spec)`` hand the number to the user's code.
_FLOAT, _ROUND, _FORMAT = (f.__code__ for f in (Value.__float__, Value.__round__, Value.__format__))
_tracers: dict[int, Tracer] = {}  # thread id -> the trace running in it
_install_lock = threading.Lock()


class _DataWatch:
    """Stands in for ``Value.data`` while a trace runs: notes who reads a Value's data.

    Values read and written are the slot's own; only reads made by the tracing thread
    outside the engine are noted, so other threads see nothing but a slower ``.data``.
    """

    def __get__(
        self,
        obj: Any,
        owner: Any = None,
        _slot: Any = _DATA_SLOT.__get__,
        _frame: Any = sys._getframe,
        _engine: Any = _ENGINE_GLOBALS,
        _custom: Any = _CUSTOM_GLOBALS,
        _float: Any = _FLOAT,
        _round: Any = _ROUND,
        _format: Any = _FORMAT,
    ) -> Any:
        # Called for every read of every Value's data while a trace runs (tens of
        # thousands per trace, nearly all by the engine): identity tests only.
        if obj is None:
            return self
        frame = _frame(1)
        where = frame.f_globals
        if where is _engine:
            # The engine's own reads are its business, except those that pass the
            # number on to the caller.
            code = frame.f_code
            if code is not _float and code is not _round and code is not _format:
                return _slot(obj, owner)
        elif where is _custom:  # user-defined ops read their inputs as the engine does
            return _slot(obj, owner)
        tracer = _tracers.get(threading.get_ident())
        if tracer is not None:
            tracer.note_read(obj, frame)
        return _slot(obj, owner)

    #: Writes go straight to the slot (a C function: no Python frame per new node).
    __set__ = staticmethod(_DATA_SLOT.__set__)


_WATCH = _DataWatch()


def _where(frame: Any) -> str:
    """``file:line`` of the user's code for ``frame``: its first caller outside chainrule,
    and the chainrule function in between, if any."""
    inner = None
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        inner = inner or f"chainrule.{frame.f_globals.get('__name__', '?').split('.')[-1]}"
        inner = f"{inner}.{frame.f_code.co_name}" if inner.count(".") == 1 else inner
        frame = frame.f_back
    if frame is None:
        return inner or "chainrule"
    here = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return f"{here} (in {inner})" if inner else here


class Tracer:
    """Records, during one trace, the ``.data`` reads and ``no_grad()`` results."""

    def __init__(self) -> None:
        self.reads: list[tuple[Value, str]] = []
        self.detached: list[tuple[tuple[Value, ...], str]] = []

    def note_read(self, v: Value, frame: Any) -> None:
        if len(self.reads) < 1000:
            self.reads.append((v, _where(frame)))

    def note_detached(self, v: Value, prev: tuple[Value, ...]) -> None:
        if prev and len(self.detached) < 1000:
            self.detached.append((prev, _where(sys._getframe(2))))

    def __enter__(self) -> Tracer:
        with _install_lock:
            if not _tracers:
                Value.data = _WATCH  # type: ignore[assignment,misc]
                engine._on_detached = _note_detached
            _tracers[threading.get_ident()] = self
        return self

    def __exit__(self, *exc: object) -> None:
        with _install_lock:
            del _tracers[threading.get_ident()]
            if not _tracers:
                Value.data = _DATA_SLOT  # type: ignore[misc]
                engine._on_detached = None


def _note_detached(v: Value, prev: tuple[Value, ...]) -> None:
    tracer = _tracers.get(threading.get_ident())
    if tracer is not None:
        tracer.note_detached(v, prev)


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
    if isinstance(aux, Value):
        return next(it)
    return type(aux)(rebuild_aux(x, it) for x in aux)


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
            out.append((v._op, v._arg, tuple(map(at, v._prev))))
        elif v in params:
            out.append(("param", params[v]))
        elif v in inputs:
            out.append(("input", inputs[v]))
        else:
            out.append(("constant", _DATA_SLOT.__get__(v, Value)))
    out.append(("outputs", graph.outputs))
    return out


def check(trace: Trace, tracer: Tracer, graph: Graph, params: list[Value], name: str) -> None:
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
                f"({_DATA_SLOT.__get__(v, Value)!r}, computed from the parameters or "
                "inputs). The compiled program replays the graph of the first call, so "
                "Python code that branches on a traced number would be silently wrong at "
                "other values. Write it with Value operations (relu, softplus, logsumexp, "
                "...) or run this loss eagerly."
            )
    for prev, at in tracer.detached:
        if any(_depends(p, index, fixed, sources) for p in prev):
            raise CompileError(
                f"compile: {at}: {name} computes a value under no_grad() from the "
                "parameters or inputs; the compiled program would freeze it at its traced "
                "value. Compute it without no_grad(), or outside the function and pass it "
                "as an input."
            )


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
