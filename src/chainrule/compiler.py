"""``chainrule.compile``: trace a scalar loss once, replay it as NumPy array kernels.

The lecture's code builds a fresh graph of scalar Values at every step, and that is
what makes it slow. But a training step builds the *same* graph every time: only the
numbers change. So :func:`compile` runs the loss function once on Values (a *trace*),
flattens the recorded graph into arrays, and at every later call replays it with
NumPy -- forward, then backward -- reading the parameters' current ``data`` and
adding into their ``grad`` exactly as :meth:`Value.backward` does::

    step = chainrule.compile(loss_fn, model.parameters())
    for k in range(100):
        loss = step()              # replays the graph: loss.data is a float
        model.zero_grad()
        loss.backward()            # adds into every p.grad, as Value.backward() does
        for p in model.parameters():
            p.data -= 0.1 * p.grad

How the replay is organised: every node gets a slot in one flat array; nodes at the
same depth (*level*) of the graph that do the same operation form a *group*, and each
group is one vectorised kernel. A group of ``dot`` nodes that pairs every row of
weights with every row of inputs -- a layer applied to a batch -- is one matrix
product. Chains of ``+``/``-`` (Python's ``sum()`` over Values) are folded into one
n-ary sum first. Each operation's local derivative comes from the engine's own rule
table, called with arrays instead of floats.

It refuses, with :class:`~chainrule.errors.CompileError` naming the file and line
responsible, what it cannot replay faithfully: Python control flow on traced numbers
(reading ``.data`` inside the loss), results of ``no_grad()`` computed from
parameters or inputs, graphs that differ between two calls, bad parameter lists and
operations it has no array form for. Graphs too narrow to gain from arrays (long
chains) run eagerly instead; :meth:`CompiledFunction.explain` says what happened.

After a replay there are no intermediate Values: no intermediate ``.grad`` and
nothing for :func:`~chainrule.draw_dot` to draw. Use the eager engine for that.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from chainrule import engine
from chainrule.engine import _RULES, Value, enable_grad, topological_order
from chainrule.errors import CompileError, CompileWarning, DomainError

__all__ = ["CompiledFunction", "CompiledLoss", "compile"]

Array = Any  # numpy.ndarray; kept loose so that the kernels read like the math

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_data = attrgetter("data")

# How eager and replay are weighed against each other (seconds, measured on 2 cores):
# eager pays per node, replay per kernel call and per element.
_EAGER_PER_NODE = 1.5e-6
_REPLAY_PER_KERNEL = 4e-6
_REPLAY_PER_ELEMENT = 2e-8

#: After this many input structures, a warning says that the function keeps re-tracing.
RETRACE_WARNING = 8


def compile(
    fn: Callable[..., Any],
    params: Iterable[Value],
    *,
    has_aux: bool = False,
    fallback: bool = True,
) -> CompiledFunction:
    """Compile ``fn``, a function returning a scalar loss Value, for ``params``.

    ``params`` are the leaf Values to differentiate (usually ``model.parameters()``);
    their ``data`` is read at every call, so any update rule works. ``fn`` may take
    inputs -- numbers, sequences of numbers or NumPy arrays, such as a mini-batch and
    its labels -- which it receives as Values (nested lists of them). With
    ``has_aux=True``, ``fn`` returns ``(loss, aux)`` where ``aux`` is a Value or a
    (nested) list of Values, returned as floats beside the loss (e.g. the model's
    outputs, to compute accuracy without a second forward pass).

    A graph too narrow to gain from array kernels (a long chain, a handful of nodes)
    runs eagerly instead, unless ``fallback=False``; :meth:`CompiledFunction.explain`
    says which.

    >>> from chainrule import Value
    >>> w = Value(2.0)
    >>> step = compile(lambda x: (w * x - 1.0) ** 2, [w])
    >>> loss = step(3.0)
    >>> loss.data
    25.0
    >>> loss.backward()
    >>> w.grad
    30.0
    """
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    return CompiledFunction(fn, params, has_aux=has_aux, fallback=fallback)


# -- the result of a call -------------------------------------------------------------


class CompiledLoss:
    """The loss of one compiled call: ``data`` and a ``backward()`` like a Value's.

    ``backward()`` computes the gradients with the array program and **adds** them
    into each parameter's ``grad`` (call ``zero_grad()`` between steps, as with
    Values). Intermediate nodes have no Values and so no ``grad``.
    """

    __slots__ = ("_call", "data")

    data: float

    def __init__(self, data: float, call: _Call) -> None:
        self.data = data
        self._call = call

    def backward(self) -> None:
        """Add ``∂loss/∂p`` into ``p.grad`` for every compiled parameter ``p``."""
        call = self._call
        grads = call.program.gradients(call)
        for p, g in zip(call.program.params, grads.tolist(), strict=True):
            p.grad += g

    def item(self) -> float:
        """``data``, as PyTorch's ``Tensor.item()``."""
        return self.data

    def __float__(self) -> float:
        return self.data

    def __repr__(self) -> str:
        return f"CompiledLoss(data={self.data!r})"


@dataclass
class _Call:
    """What one call replayed with: enough to replay it again for ``backward()``."""

    program: _Program
    generation: int
    params_data: list[float]
    inputs: list[Array]


# -- the compiled function ------------------------------------------------------------


class CompiledFunction:
    """A loss function compiled by :func:`compile`; call it like the function.

    One program is kept per input structure (the shapes of the inputs): a call with a
    new structure traces again, as ``jax.jit`` does.
    """

    def __init__(
        self, fn: Callable[..., Any], params: Iterable[Value], *, has_aux: bool, fallback: bool
    ) -> None:
        self.fn = fn
        self.params = _check_params(params)
        self.has_aux = has_aux
        self.allow_fallback = fallback
        self._programs: dict[tuple[tuple[int, ...], ...], _Program] = {}
        self._lock = threading.Lock()
        self._warned = False
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *inputs: Any) -> Any:
        """Replay the loss at the current parameters: a :class:`CompiledLoss`.

        With ``has_aux``, ``(loss, aux)`` with ``aux`` as floats. A program that fell
        back to eager returns the eager :class:`Value` itself.
        """
        arrays = _as_arrays(inputs)
        program = self._program(arrays)
        return program.call(arrays)

    def value_and_grad(self, *inputs: Any) -> tuple[Any, Array]:
        """The loss as a float and the gradient as an array, in ``params`` order.

        The array path: no ``grad`` is touched. With ``has_aux``, the first item is
        ``(loss, aux)``.
        """
        arrays = _as_arrays(inputs)
        program = self._program(arrays)
        return program.value_and_grad(arrays)

    def explain(self) -> str:
        """A short report: per input structure, the nodes, levels, kernels, fallbacks
        and trace time, and any constants baked in."""
        if not self._programs:
            return f"compiled {self.__name__}: not traced yet (call it once)"
        parts = [f"compiled {self.__name__}, {len(self.params)} parameters:"]
        for key, program in self._programs.items():
            shapes = ", ".join(str(s) for s in key) or "no inputs"
            parts.append(f"- inputs {shapes}:")
            parts.extend(f"    {line}" for line in program.report())
        return "\n".join(parts)

    def _program(self, arrays: list[Array]) -> _Program:
        key = tuple(a.shape for a in arrays)
        program = self._programs.get(key)
        if program is None:
            with self._lock:
                program = self._programs.get(key)
                if program is None:
                    program = _build(self, arrays)
                    self._programs[key] = program
                    self._warn_if_retracing()
        return program

    def _warn_if_retracing(self) -> None:
        n = len(self._programs)
        if n >= RETRACE_WARNING and not self._warned:
            self._warned = True
            shapes = "; ".join(
                ", ".join(str(s) for s in key) or "()" for key in list(self._programs)[-4:]
            )
            warnings.warn(
                f"compile: {self.__name__} has been traced for {n} different input "
                f"structures (recent: {shapes}); each new shape traces and compiles again. "
                "Keep input shapes fixed (e.g. equal batch sizes, dropping the last "
                "partial batch).",
                CompileWarning,
                stacklevel=3,
            )

    def __repr__(self) -> str:
        return f"<compiled {self.__name__}: {len(self._programs)} program(s)>"


def _check_params(params: Iterable[Value]) -> list[Value]:
    if isinstance(params, Value):
        params = [params]
    ps = list(params)
    seen: dict[int, int] = {}
    for i, p in enumerate(ps):
        if not isinstance(p, Value):
            raise TypeError(f"compile: params[{i}] is a {type(p).__name__}, not a Value")
        if p._prev:
            raise CompileError(
                f"compile: params[{i}] is not a leaf: it was computed by {p._op!r}. "
                "Pass the Values that you update (e.g. model.parameters())."
            )
        if id(p) in seen:
            raise CompileError(
                f"compile: params[{i}] is the same Value as params[{seen[id(p)]}]; "
                "list each parameter once"
            )
        seen[id(p)] = i
    return ps


def _as_arrays(inputs: Sequence[Any]) -> list[Array]:
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, Value):
            raise TypeError(
                f"compile: input {i} is a Value; pass numbers or arrays (e.g. x.data). "
                "Values to differentiate are params, given to compile()."
            )
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"compile: input {i} must be a number, a (nested) sequence of numbers of "
                f"equal lengths, or a NumPy array ({exc})"
            ) from None
        if not np.isfinite(a).all():
            raise DomainError(f"compile: input {i} holds a non-finite number")
        out.append(a)
    return out


# -- tracing ------------------------------------------------------------------------


_DATA_SLOT = Value.__dict__["data"]  # the slot's own descriptor
_ENGINE_GLOBALS = engine.__dict__
_tracers: dict[int, _Tracer] = {}  # thread id -> the trace running in it
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
    ) -> Any:
        if obj is None:
            return self
        frame = _frame(1)
        if frame.f_globals is not _engine:  # the engine's own reads are its business
            tracer = _tracers.get(threading.get_ident())
            if tracer is not None:
                tracer.note_read(obj, frame)
        return _slot(obj, owner)

    def __set__(self, obj: Any, value: Any) -> None:
        _DATA_SLOT.__set__(obj, value)


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


class _Tracer:
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

    def __enter__(self) -> _Tracer:
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
class _Trace:
    loss: Value
    aux: Any
    leaves: list[Value]  # the input Values, flattened in C order


def _values_from(a: Array, leaves: list[Value]) -> Any:
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


def _trace(fn: Callable[..., Any], arrays: list[Array], has_aux: bool, name: str) -> _Trace:
    leaves: list[Value] = []
    args = [_values_from(a, leaves) for a in arrays]
    with enable_grad():
        out = fn(*args)
    aux = None
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"compile: with has_aux=True, {name} must return (loss, aux)")
        out, aux = out
    if not isinstance(out, Value):
        raise TypeError(f"compile: {name} must return a Value (the loss), got {type(out).__name__}")
    return _Trace(out, aux, leaves)


def _aux_values(aux: Any, name: str) -> list[Value]:
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


def _rebuild_aux(aux: Any, it: Any) -> Any:
    if isinstance(aux, Value):
        return next(it)
    return type(aux)(_rebuild_aux(x, it) for x in aux)


# -- from a trace to a program --------------------------------------------------------


#: Ops that are linear combinations of their inputs, with their coefficients.
_LINEAR: dict[str, Callable[[int], tuple[float, ...]]] = {
    "+": lambda n: (1.0, 1.0),
    "-": lambda n: (1.0, -1.0),
    "neg": lambda n: (-1.0,),
    "id": lambda n: (1.0,),
    "sum": lambda n: (1.0,) * n,
}


def _sigmoid(x: Array) -> Array:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x: Array) -> Array:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


#: The array form of each elementwise op: forward from the inputs (and ``k`` for
#: ``x ** number``). Their local derivatives come from the engine's ``_RULES``,
#: called with arrays, except where ``_ARRAY_RULES`` gives a branch-free form.
_FORWARD: dict[str, Callable[..., Array]] = {
    "*": lambda x, k: x[0] * x[1],
    "/": lambda x, k: x[0] / x[1],
    "**": lambda x, k: x[0] ** k if k is not None else x[0] ** x[1],
    "exp": lambda x, k: np.exp(x[0]),
    "log": lambda x, k: np.log(x[0]),
    "tanh": lambda x, k: np.tanh(x[0]),
    "relu": lambda x, k: np.maximum(x[0], 0.0),
    "sigmoid": lambda x, k: _sigmoid(x[0]),
    "softplus": lambda x, k: _softplus(x[0]),
}

_ARRAY_RULES: dict[str, Callable[[Sequence[Array], Array, Any], Sequence[Array]]] = {
    "relu": lambda x, out, k: ((x[0] > 0.0) * 1.0,),
    "**": lambda x, out, k: (
        (k * x[0] ** (k - 1),)
        if k is not None
        else (
            x[1] * x[0] ** (x[1] - 1.0),
            np.where(x[0] > 0.0, out * np.log(np.where(x[0] > 0.0, x[0], 1.0)), 0.0),
        )
    ),
}

#: Ops with a structure of their own (n-ary): handled by dedicated kernels.
_NARY = {"dot", "logsumexp"}


def compilable_ops() -> set[str]:
    """Every op name the compiler can replay (the rest are refused)."""
    return set(_LINEAR) | set(_FORWARD) | _NARY


@dataclass(eq=False)
class _Node:
    """A node of the program: its op, its inputs (program nodes or constants), its arg."""

    op: str
    inputs: list[Any]  # _Node, _Leaf or _Const
    arg: Any = None  # k of x ** k; (coefs, offset) of "lin"
    needs_grad: bool = False
    level: int = 0
    pos: int = -1


@dataclass(eq=False)
class _Leaf:
    kind: str  # "param" or "input"
    index: int
    needs_grad: bool
    level: int = 0
    pos: int = -1


@dataclass(eq=False)
class _Const:
    """A number the program never changes (a node that depends on no parameter or input)."""

    value: float
    pos: int = -1
    needs_grad = False
    level = 0


@dataclass
class _Graph:
    """A trace's graph as lists indexed by topological position."""

    order: list[Value]
    index: dict[int, int]  # id(Value) -> position in order
    prevs: list[tuple[int, ...]]
    varies: list[bool]  # depends on a parameter or an input
    grad_needed: list[bool]  # depends on a parameter
    outputs: list[int]  # the loss, then the aux Values
    fingerprint: list[Any]  # compared between two traces
    constant_leaves: list[Value]


def _graph(trace: _Trace, params: list[Value], name: str) -> _Graph:
    aux_values = _aux_values(trace.aux, name) if trace.aux is not None else []
    order = topological_order(trace.loss)
    index = {id(v): i for i, v in enumerate(order)}
    for a in aux_values:  # aux outside the loss's graph: add their own graphs
        if id(a) not in index:
            for v in topological_order(a):
                if id(v) not in index:
                    index[id(v)] = len(order)
                    order.append(v)
    param_index = {id(p): i for i, p in enumerate(params)}
    input_index = {id(v): i for i, v in enumerate(trace.leaves)}
    n = len(order)
    varies = [False] * n
    grad_needed = [False] * n
    prevs: list[tuple[int, ...]] = [()] * n
    fingerprint: list[Any] = [None] * n
    constant_leaves = []
    at = index.__getitem__
    for i, v in enumerate(order):
        prev = v._prev
        if prev:
            ks = prevs[i] = tuple(map(at, map(id, prev)))
            varies[i] = any(varies[k] for k in ks)
            grad_needed[i] = any(grad_needed[k] for k in ks)
            fingerprint[i] = (v._op, v._arg, ks)
        elif id(v) in param_index:
            varies[i] = grad_needed[i] = True
            fingerprint[i] = ("param", param_index[id(v)])
        elif id(v) in input_index:
            varies[i] = True
            fingerprint[i] = ("input", input_index[id(v)])
        else:
            constant_leaves.append(v)
            fingerprint[i] = ("constant", v.data)
    outputs = [index[id(r)] for r in [trace.loss, *aux_values]]
    fingerprint.append(("outputs", outputs))
    return _Graph(order, index, prevs, varies, grad_needed, outputs, fingerprint, constant_leaves)


@dataclass
class _Analysis:
    nodes: list[_Node]  # the program's nodes, each after its inputs
    outputs: list[Any]  # loss, then aux: _Node, _Leaf or _Const
    constants: list[_Const]


def _check(trace: _Trace, tracer: _Tracer, graph: _Graph, params: list[Value], name: str) -> None:
    """Refuse ``.data`` reads of traced Values and ``no_grad()`` results that depend on
    the parameters or inputs: the replay would silently get them wrong."""
    sources = {id(p) for p in params} | {id(v) for v in trace.leaves}
    index, varies = graph.index, graph.varies
    for v, at in tracer.reads:
        if _depends(v, index, varies, sources):
            raise CompileError(
                f"compile: {at}: {name} reads .data of a traced Value "
                f"({_DATA_SLOT.__get__(v, Value)!r}, computed from the parameters or "
                "inputs). The compiled program replays the graph of the first call, so "
                "Python code that branches on a traced number would be silently wrong at "
                "other values. Write it with Value operations (relu, softplus, logsumexp, "
                "...) or run this loss eagerly."
            )
    for prev, at in tracer.detached:
        if any(_depends(p, index, varies, sources) for p in prev):
            raise CompileError(
                f"compile: {at}: {name} computes a value under no_grad() from the "
                "parameters or inputs; the compiled program would freeze it at its traced "
                "value. Compute it without no_grad(), or outside the function and pass it "
                "as an input."
            )


def _analyse(graph: _Graph, n_params: int, n_inputs: int, name: str, where: str) -> _Analysis:
    """Turn the graph into program nodes: constants folded, chains of sums folded."""
    order, prevs, varies, grad_needed = graph.order, graph.prevs, graph.varies, graph.grad_needed
    n = len(order)
    uses = [0] * n
    for i in range(n):
        if varies[i]:
            for k in prevs[i]:
                uses[k] += 1
    for k in graph.outputs:
        uses[k] += 2  # outputs are never folded away

    # A + or - used once, by another + or -, is folded into that one: Python's sum()
    # over Values becomes one n-ary sum instead of a chain of hundreds of levels.
    linear = [varies[i] and v._op in _LINEAR for i, v in enumerate(order)]
    inlined = [False] * n
    for i in range(n):
        if linear[i]:
            for k in prevs[i]:
                if linear[k] and uses[k] == 1:
                    inlined[k] = True

    made: list[Any] = [None] * n  # the program node, leaf or constant of each trace node
    nodes: list[_Node] = []
    constants: list[_Const] = []
    level = attrgetter("level")
    for i, v in enumerate(order):
        if not varies[i]:
            made[i] = const = _Const(v.data, pos=n_params + n_inputs + len(constants))
            constants.append(const)
            continue
        if inlined[i]:
            continue
        kind = graph.fingerprint[i][0]
        if kind == "param":
            k = graph.fingerprint[i][1]
            made[i] = _Leaf("param", k, True, pos=k)
            continue
        if kind == "input":
            k = graph.fingerprint[i][1]
            made[i] = _Leaf("input", k, False, pos=n_params + k)
            continue
        if linear[i]:
            terms: list[Any] = []
            coefs: list[float] = []
            offset = 0.0
            stack = list(zip(prevs[i], _LINEAR[v._op](len(prevs[i])), strict=True))[::-1]
            while stack:
                k, c = stack.pop()
                if inlined[k]:
                    sub = zip(prevs[k], _LINEAR[order[k]._op](len(prevs[k])), strict=True)
                    stack.extend((q, c * cq) for q, cq in reversed(list(sub)))
                elif not varies[k]:
                    offset += c * order[k].data
                else:
                    terms.append(made[k])
                    coefs.append(c)
            node = _Node("lin", terms, (coefs, offset))
        else:
            if v._op not in _FORWARD and v._op not in _NARY:
                raise CompileError(
                    f"compile: {name} ({where}) uses the operation {v._op!r}, which has "
                    "no array form for the compiler; run this loss eagerly"
                )
            node = _Node(v._op, [made[k] for k in prevs[i]], v._arg)
        node.needs_grad = grad_needed[i]
        node.level = 1 + max(map(level, node.inputs))
        made[i] = node
        nodes.append(node)
    return _Analysis(nodes, [made[k] for k in graph.outputs], constants)


def _depends(v: Value, index: dict[int, int], varies: list[bool], sources: set[int]) -> bool:
    """Whether ``v`` (in the graph or not) depends on a parameter or an input."""
    seen: set[int] = set()
    stack = [v]
    while stack:
        u = stack.pop()
        k = index.get(id(u))
        if k is not None:
            if varies[k]:
                return True
        elif id(u) in sources:
            return True
        elif id(u) not in seen:
            seen.add(id(u))
            stack.extend(u._prev)
    return False


# -- the array program ----------------------------------------------------------------


def _strided(pos: Array) -> tuple[int, tuple[int, ...]] | None:
    """``(start, strides)`` if ``pos`` is a regular grid of buffer positions, else None."""
    if pos.size == 0:
        return None
    start = int(pos.flat[0])
    strides = []
    expected = np.full(pos.shape, start, dtype=np.int64)
    for axis, n in enumerate(pos.shape):
        step = 0
        if n > 1:
            step = int(pos[(0,) * axis + (1,) + (0,) * (pos.ndim - axis - 1)]) - start
            if step < 0:
                return None
            shape = [1] * pos.ndim
            shape[axis] = n
            expected = expected + (np.arange(n) * step).reshape(shape)
        strides.append(step)
    if not np.array_equal(expected, pos):
        return None
    return start, tuple(strides)


class _Slot:
    """One input of every node of a group, as an array: a view, a gather or constants."""

    def __init__(
        self, items: Sequence[Any], shape: tuple[int, ...], layout: _Layout, scalar: bool = False
    ) -> None:
        self.shape = shape
        self.constant: Array | float | None = None
        self.needs_grad = any(map(_needs_grad, items))
        self.pos = np.fromiter(map(_pos, items), np.int64, len(items)).reshape(shape)
        lo, hi = layout.const_start, layout.const_end
        if items and self.pos.min() >= lo and self.pos.max() < hi:  # constants: fixed
            values = np.array([x.value for x in items], dtype=np.float64).reshape(shape)
            same = scalar and (values == values.flat[0]).all()
            self.constant = float(values.flat[0]) if same else values
            return
        self.unique = np.unique(self.pos).size == self.pos.size

    def bind(self, vals: Array, grads: Array) -> None:
        if self.constant is not None:
            return
        grid = _strided(self.pos)
        self.view = self.gview = None
        if grid is not None:
            start, steps = grid
            strides = tuple(8 * s for s in steps)
            self.view = np.lib.stride_tricks.as_strided(vals[start:], self.shape, strides)
            if self.unique:
                self.gview = np.lib.stride_tricks.as_strided(grads[start:], self.shape, strides)
        self.vals, self.grads = vals, grads

    @property
    def is_view(self) -> bool:
        return self.constant is not None or self.view is not None

    def get(self) -> Array:
        if self.constant is not None:
            return self.constant
        if self.view is not None:
            return self.view
        return np.take(self.vals, self.pos)

    def add(self, contribution: Array) -> None:
        """Add ``contribution`` into the gradients of this slot's nodes."""
        if self.gview is not None:
            self.gview += contribution
        elif self.unique:
            self.grads[self.pos] += contribution
        else:
            np.add.at(self.grads, self.pos, np.broadcast_to(contribution, self.shape))


class _Layout:
    """Where each value lives in the program's one flat buffer:
    ``[parameters | inputs | constants | computed nodes, group by group]``."""

    def __init__(self, start: int, constants: list[_Const], n_nodes: int) -> None:
        self.constants = constants
        self.const_start = start
        self.next = self.const_end = start + len(constants)
        self.size = self.next + n_nodes

    def place(self, nodes: Sequence[_Node]) -> None:
        for pos, node in enumerate(nodes, self.next):
            node.pos = pos
        self.next += len(nodes)


_pos = attrgetter("pos")
_needs_grad = attrgetter("needs_grad")


def _sort_key(node: _Node) -> tuple[int, ...]:
    """Nodes are laid out in the order of their inputs, so that a group's inputs are
    often a plain slice of the buffer (a view, not a copy)."""
    return tuple(map(_pos, node.inputs))


class _Kernel:
    """One vectorised operation over a group of nodes: its forward and backward."""

    kind = "?"
    needs_grad = False
    size = 0
    start = 0

    def bind(self, vals: Array, grads: Array) -> None:
        for slot in self.slots():
            slot.bind(vals, grads)
        self.out = vals[self.start : self.start + self.size]
        self.gout = grads[self.start : self.start + self.size]

    def slots(self) -> list[_Slot]:
        return []

    def forward(self) -> None:
        raise NotImplementedError

    def backward(self) -> None:
        raise NotImplementedError


class _Elementwise(_Kernel):
    """``out = op(x, y)`` for each node of the group, as one NumPy expression."""

    def __init__(self, op: str, k: Any, nodes: list[_Node], layout: _Layout) -> None:
        nodes.sort(key=_sort_key)
        layout.place(nodes)
        self.kind, self.k, self.size = op, k, len(nodes)
        self.start = nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        arity = len(nodes[0].inputs)
        self.ins = [
            _Slot([n.inputs[s] for n in nodes], (self.size,), layout, scalar=True)
            for s in range(arity)
        ]
        self.fn = _FORWARD[op]
        self.rule = _ARRAY_RULES.get(op) or _RULES[op]

    def slots(self) -> list[_Slot]:
        return self.ins

    def forward(self) -> None:
        self.xs = [s.get() for s in self.ins]
        self.out[...] = self.fn(self.xs, self.k)

    def backward(self) -> None:
        g = self.gout
        local = self.rule(self.xs, self.out, self.k)
        for slot, d in zip(self.ins, local, strict=True):
            if slot.needs_grad:
                slot.add(d * g)


class _Sum(_Kernel):
    """``out = offset + Σ coef·x`` per node: the folded ``+``/``-`` chains and ``sum``."""

    kind = "sum"

    def __init__(self, nodes: list[_Node], layout: _Layout) -> None:
        nodes.sort(key=_sort_key)
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        counts = [len(n.inputs) for n in nodes]
        self.width = counts[0] if len(set(counts)) == 1 else 0
        shape = (self.size, self.width) if self.width else (sum(counts),)
        self.terms = _Slot([x for n in nodes for x in n.inputs], shape, layout)
        coefs = np.array([c for n in nodes for c in n.arg[0]]).reshape(shape)
        self.coefs: Array | None = None if (coefs == 1.0).all() else coefs
        offsets = np.array([n.arg[1] for n in nodes])
        self.offsets: Array | float = (
            float(offsets[0]) if (offsets == offsets[0]).all() else offsets
        )
        self.counts = np.array(counts)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def slots(self) -> list[_Slot]:
        return [self.terms]

    def forward(self) -> None:
        x = self.terms.get()
        if self.coefs is not None:
            x = x * self.coefs
        if self.width == 1:
            total = x[:, 0]
        elif self.width:
            total = x.sum(axis=1)
        else:
            total = np.add.reduceat(x, self.starts)
        self.out[...] = total + self.offsets if self.offsets is not None else total

    def backward(self) -> None:
        if not self.terms.needs_grad:
            return
        g = self.gout
        c = (
            np.broadcast_to(g[:, None], self.terms.shape)
            if self.width
            else np.repeat(g, self.counts)
        )
        self.terms.add(c * self.coefs if self.coefs is not None else c)


class _LogSumExp(_Kernel):
    """``out = log Σ exp(x)`` per node; each input's local derivative is its softmax."""

    kind = "logsumexp"

    def __init__(self, nodes: list[_Node], layout: _Layout) -> None:
        nodes.sort(key=_sort_key)
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        counts = [len(n.inputs) for n in nodes]
        self.width = counts[0] if len(set(counts)) == 1 else 0
        shape = (self.size, self.width) if self.width else (sum(counts),)
        self.terms = _Slot([x for n in nodes for x in n.inputs], shape, layout)
        self.counts = np.array(counts)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def slots(self) -> list[_Slot]:
        return [self.terms]

    def _spread(self, a: Array) -> Array:
        return a[:, None] if self.width else np.repeat(a, self.counts)

    def forward(self) -> None:
        x = self.x = self.terms.get()
        top = x.max(axis=1) if self.width else np.maximum.reduceat(x, self.starts)
        e = np.exp(x - self._spread(top))
        total = e.sum(axis=1) if self.width else np.add.reduceat(e, self.starts)
        self.out[...] = top + np.log(total)

    def backward(self) -> None:
        if self.terms.needs_grad:
            self.terms.add(np.exp(self.x - self._spread(self.out)) * self._spread(self.gout))


class _Dot(_Kernel):
    """``out = w · x + b`` per node, for dot nodes that do not form a matrix product."""

    kind = "dot"

    def __init__(self, nodes: list[_Node], layout: _Layout) -> None:
        nodes.sort(key=_sort_key)
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        n = (len(nodes[0].inputs) - 1) // 2
        shape = (self.size, n)
        self.w = _Slot([x for nd in nodes for x in nd.inputs[:n]], shape, layout)
        self.x = _Slot([x for nd in nodes for x in nd.inputs[n : 2 * n]], shape, layout)
        self.b = _Slot([nd.inputs[-1] for nd in nodes], (self.size,), layout)

    def slots(self) -> list[_Slot]:
        return [self.w, self.x, self.b]

    def forward(self) -> None:
        self.wv, self.xv = np.broadcast_to(self.w.get(), self.w.shape), self.x.get()
        self.out[...] = np.einsum("ij,ij->i", self.wv, self.xv) + self.b.get()

    def backward(self) -> None:
        g = self.gout[:, None]
        if self.w.needs_grad:
            self.w.add(g * self.xv)
        if self.x.needs_grad:
            self.x.add(g * self.wv)
        if self.b.needs_grad:
            self.b.add(self.gout)


class _MatMul(_Kernel):
    """A layer applied to a batch: ``out[j, i] = rows[j] · weights[i] + bias[i]``.

    Found when a group of dot nodes pairs each of ``m`` weight rows with each of ``r``
    input rows exactly once, the bias going with the weight row.
    """

    kind = "matmul"

    def __init__(self, grid: list[list[_Node]], n: int, bias_by_row: bool, layout: _Layout) -> None:
        # grid[j][i]: the node pairing input row j with weight row i
        r, m = len(grid), len(grid[0])
        self.shape = (r, m)
        flat = [node for row in grid for node in row]
        layout.place(flat)
        self.size, self.start = len(flat), flat[0].pos
        self.needs_grad = flat[0].needs_grad
        self.weights = _Slot([x for node in grid[0] for x in node.inputs[:n]], (m, n), layout)
        self.rows = _Slot([x for row in grid for x in row[0].inputs[n : 2 * n]], (r, n), layout)
        self.bias_by_row = bias_by_row
        if bias_by_row:
            self.bias = _Slot([row[0].inputs[-1] for row in grid], (r, 1), layout)
        else:
            self.bias = _Slot([node.inputs[-1] for node in grid[0]], (m,), layout)

    def slots(self) -> list[_Slot]:
        return [self.weights, self.rows, self.bias]

    def bind(self, vals: Array, grads: Array) -> None:
        super().bind(vals, grads)
        self.out = self.out.reshape(self.shape)
        self.gout = self.gout.reshape(self.shape)

    def forward(self) -> None:
        self.wv, self.xv = self.weights.get(), self.rows.get()
        np.matmul(self.xv, np.transpose(self.wv), out=self.out)
        self.out += self.bias.get()

    def backward(self) -> None:
        g = self.gout
        if self.weights.needs_grad:
            self.weights.add(g.T @ self.xv)
        if self.rows.needs_grad:
            self.rows.add(g @ self.wv)
        if self.bias.needs_grad:
            self.bias.add(g.sum(axis=1, keepdims=True) if self.bias_by_row else g.sum(axis=0))


def _dot_kernels(nodes: list[_Node], layout: _Layout) -> list[_Kernel]:
    """Split a group of same-size dot nodes into matrix products and the rest.

    Weight rows that meet exactly the same set of input rows, each pair once, form a
    grid: a layer applied to a batch, one matrix product.
    """
    n = (len(nodes[0].inputs) - 1) // 2
    by_weights: dict[tuple[int, ...], list[_Node]] = {}
    for node in nodes:
        by_weights.setdefault(tuple(map(id, node.inputs[:n])), []).append(node)
    by_rows: dict[frozenset[tuple[int, ...]], list[list[_Node]]] = {}
    rest: list[_Node] = []
    for members in by_weights.values():
        rows = frozenset(tuple(map(id, node.inputs[n : 2 * n])) for node in members)
        if len(rows) == len(members):
            by_rows.setdefault(rows, []).append(members)
        else:  # the same weights meet the same inputs twice
            rest.extend(members)
    kernels: list[_Kernel] = []
    for columns in by_rows.values():
        grid = _as_grid(columns, n)
        if grid is None or len(grid) * len(grid[0][0]) < 2:
            rest.extend(node for column in columns for node in column)
        else:
            kernels.append(_MatMul(grid[0], n, grid[1], layout))
    if rest:
        kernels.append(_Dot(rest, layout))
    return kernels


def _as_grid(columns: list[list[_Node]], n: int) -> tuple[list[list[_Node]], bool] | None:
    """``columns`` (one list of nodes per weight row, all meeting the same input rows)
    as ``grid[input row][weight row]``, and whether the bias follows the input row;
    None if the bias follows neither."""
    columns.sort(key=lambda column: _positions(column[0].inputs[:n]))
    for column in columns:
        column.sort(key=lambda node: _positions(node.inputs[n : 2 * n]))
    grid = [list(row) for row in zip(*columns, strict=True)]
    top = grid[0]
    if all(row[i].inputs[-1] is top[i].inputs[-1] for row in grid for i in range(len(top))):
        return grid, False
    if all(node.inputs[-1] is row[0].inputs[-1] for row in grid for node in row):
        return grid, True
    return None


def _positions(items: Sequence[Any]) -> tuple[int, ...]:
    return tuple(map(_pos, items))


def _group_key(node: _Node) -> tuple[Any, ...]:
    if node.op == "dot":
        extra: Any = len(node.inputs)
    elif node.op == "**":
        extra = ("k", node.arg) if node.arg is not None else "value"
    else:
        extra = None
    return (node.level, node.op, repr(extra), node.needs_grad)


def _plan(analysis: _Analysis, start: int) -> tuple[list[_Kernel], _Layout]:
    """Group the nodes by (level, op) and make one kernel (or a few) per group."""
    groups: dict[tuple[Any, ...], list[_Node]] = {}
    for node in analysis.nodes:
        groups.setdefault(_group_key(node), []).append(node)
    layout = _Layout(start, analysis.constants, len(analysis.nodes))
    kernels: list[_Kernel] = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3])):
        nodes = groups[key]
        op = nodes[0].op
        if op == "lin":
            kernels.append(_Sum(nodes, layout))
        elif op == "logsumexp":
            kernels.append(_LogSumExp(nodes, layout))
        elif op == "dot":
            kernels.extend(_dot_kernels(nodes, layout))
        else:
            kernels.append(_Elementwise(op, nodes[0].arg, nodes, layout))
    return kernels, layout


class _Program:
    """The compiled program of one input structure: buffers, kernels, and how to run them."""

    def __init__(self, owner: CompiledFunction, arrays: list[Array]) -> None:
        self.owner = owner
        self.params = owner.params
        self.fn = owner.fn
        self.has_aux = owner.has_aux
        self.lock = threading.Lock()
        self.generation = 0
        self.fallback = ""
        self.captured: list[Value] = []
        self.kernels: list[_Kernel] = []
        name, where = owner.__name__, _location(owner.fn)
        started = time.perf_counter()
        with _Tracer() as tracer:
            first = _trace(self.fn, arrays, self.has_aux, name)
        graph = _graph(first, self.params, name)
        _check(first, tracer, graph, self.params, name)
        again = _graph(_trace(self.fn, arrays, self.has_aux, name), self.params, name)
        if graph.fingerprint != again.fingerprint:
            raise CompileError(
                f"compile: {name} ({where}) built a different graph on two calls with the "
                "same inputs (random sampling inside the function, a counter, or data that "
                "changes between calls?). Pass what changes as inputs, so that every call "
                "with the same input shapes builds the same graph."
            )
        seen_again = {id(v) for v in again.constant_leaves}
        self.captured = [v for v in graph.constant_leaves if id(v) in seen_again]
        self.trace_seconds = time.perf_counter() - started
        self.traced_nodes = len(graph.order)
        self.aux = first.aux
        self.n_inputs = sum(a.size for a in arrays)
        analysis = _analyse(graph, len(self.params), self.n_inputs, name, where)
        del graph, again, first
        self.kernels, layout = _plan(analysis, len(self.params) + self.n_inputs)
        self.program_nodes = len(analysis.nodes)
        self.levels = max((node.level for node in analysis.nodes), default=0)
        elements = sum(k.size for k in self.kernels)
        replay = 2 * len(self.kernels) * _REPLAY_PER_KERNEL + elements * _REPLAY_PER_ELEMENT
        eager = self.traced_nodes * _EAGER_PER_NODE
        if replay > eager and owner.allow_fallback:
            self.fallback = (
                f"runs eagerly: {len(self.kernels)} kernels for {self.traced_nodes} nodes "
                f"(a narrow graph; replay would take ~{replay * 1e3:.2f} ms against "
                f"~{eager * 1e3:.2f} ms eagerly)"
            )
        self.vals = np.zeros(layout.size)
        self.grads = np.zeros(layout.size)
        self.vals[layout.const_start : layout.const_end] = [c.value for c in layout.constants]
        for kernel in self.kernels:
            kernel.bind(self.vals, self.grads)
        self.outputs = [
            (x.value, -1) if isinstance(x, _Const) else (0.0, x.pos) for x in analysis.outputs
        ]
        self.compile_seconds = time.perf_counter() - started
        if self.captured:
            shown = ", ".join(_show(v) for v in self.captured[:3])
            more = f" and {len(self.captured) - 3} more" if len(self.captured) > 3 else ""
            warnings.warn(
                f"compile: {name} ({where}) uses {len(self.captured)} Value(s) made outside "
                f"it that are not parameters: {shown}{more}. They are baked in as "
                "constants: changing their .data later changes nothing. Pass parameters in "
                "params and changing data as inputs.",
                CompileWarning,
                stacklevel=5,
            )

    # -- running -------------------------------------------------------------------

    def _forward(self, params_data: list[float], arrays: list[Array]) -> list[float]:
        vals = self.vals
        P = len(params_data)
        vals[:P] = params_data
        at = P
        for a in arrays:
            vals[at : at + a.size] = a.ravel()
            at += a.size
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            for kernel in self.kernels:
                kernel.forward()
        out = [value if pos < 0 else float(vals[pos]) for value, pos in self.outputs]
        if not math.isfinite(out[0]):
            raise FloatingPointError("non-finite loss")
        return out

    def _backward(self) -> Array:
        grads = self.grads
        grads.fill(0.0)
        pos = self.outputs[0][1]
        if pos >= 0:
            grads[pos] = 1.0
            with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                for kernel in reversed(self.kernels):
                    if kernel.needs_grad:
                        kernel.backward()
        out = grads[: len(self.params)].copy()
        if not np.isfinite(out).all():
            raise FloatingPointError("non-finite gradient")
        return out

    def _with_aux(self, loss: Any, outs: list[float]) -> Any:
        if not self.has_aux:
            return loss
        return loss, _rebuild_aux(self.aux, iter(outs[1:]))

    def call(self, arrays: list[Array]) -> Any:
        if self.fallback:
            return self._eager(arrays)
        params_data = list(map(_data, self.params))
        with self.lock:
            try:
                outs = self._forward(params_data, arrays)
            except FloatingPointError:
                return self._eager(arrays)  # the engine raises its own precise error
            self.generation += 1
            call = _Call(self, self.generation, params_data, arrays)
        return self._with_aux(CompiledLoss(outs[0], call), outs)

    def gradients(self, call: _Call) -> Array:
        with self.lock:
            try:
                if self.generation != call.generation:  # another call ran in between
                    self._forward(call.params_data, call.inputs)
                    self.generation += 1
                    call.generation = self.generation
                return self._backward()
            except FloatingPointError:
                pass
        return self._eager_gradients(call.params_data, call.inputs)

    def value_and_grad(self, arrays: list[Array]) -> tuple[Any, Array]:
        params_data = list(map(_data, self.params))
        if not self.fallback:
            with self.lock:
                try:
                    outs = self._forward(params_data, arrays)
                    self.generation += 1
                    return self._with_aux(outs[0], outs), self._backward()
                except FloatingPointError:
                    pass
        loss = self._eager(arrays)
        value = loss[0].data if self.has_aux else loss.data
        grads = self._eager_gradients(params_data, arrays)
        return self._with_aux(value, [value, *_flat_aux(loss[1])] if self.has_aux else []), grads

    # -- eagerly ---------------------------------------------------------------------

    def _eager(self, arrays: list[Array]) -> Any:
        """Run the function on Values, as if it had not been compiled."""
        out = self.fn(*[_values_from(a, []) for a in arrays])
        if self.has_aux:
            loss, aux = out
            floats = iter(v.data for v in _aux_values(aux, self.owner.__name__))
            return loss, _rebuild_aux(aux, floats)
        return out

    def _eager_gradients(self, params_data: list[float], arrays: list[Array]) -> Array:
        """The gradient computed by the engine, leaving every ``grad`` as it was."""
        saved = [(p.data, p.grad) for p in self.params]
        try:
            for p, d in zip(self.params, params_data, strict=True):
                p.data, p.grad = d, 0.0
            out = self._eager(arrays)
            loss = out[0] if self.has_aux else out
            loss.backward()
            return np.array([p.grad for p in self.params])
        finally:
            for p, (d, g) in zip(self.params, saved, strict=True):
                p.data, p.grad = d, g

    # -- reporting -------------------------------------------------------------------

    def report(self) -> list[str]:
        matmuls = sum(isinstance(k, _MatMul) for k in self.kernels)
        lines = [
            f"traced {self.traced_nodes} nodes twice and checked in "
            f"{self.trace_seconds * 1e3:.1f} ms; "
            f"compiled in {self.compile_seconds * 1e3:.1f} ms in all",
            f"program: {self.program_nodes} nodes after folding sums, {self.levels} levels, "
            f"{len(self.kernels)} kernels ({matmuls} matrix products), "
            f"{len(self.params)} parameters, {self.n_inputs} input numbers",
        ]
        if self.fallback:
            lines.append(f"fallback: {self.fallback}")
        if self.captured:
            lines.append(
                f"baked in as constants: {len(self.captured)} Value(s) from outside the "
                f"function, e.g. {', '.join(_show(v) for v in self.captured[:3])}"
            )
        return lines


def _flat_aux(aux: Any) -> list[float]:
    out: list[float] = []
    stack = [aux]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def _show(v: Value) -> str:
    label = f"{v.label!r} " if v.label else ""
    return f"{label}(data {v.data!r})"


def _location(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        code = getattr(getattr(type(fn), "__call__", None), "__code__", None)  # noqa: B004
    if code is None:
        return "?"
    return f"{code.co_filename}:{code.co_firstlineno}"


def _build(owner: CompiledFunction, arrays: list[Array]) -> _Program:
    return _Program(owner, arrays)
