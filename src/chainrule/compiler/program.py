"""``compile()``, the compiled function and its result: tracing, planning and running.

One :class:`Program` per input structure holds the buffers and kernels; calls replay
it under a lock, and a step whose numbers go non-finite is rerun eagerly, so the
engine raises its own precise error.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from chainrule.compiler.analysis import Const, Leaf, analyse, param_leaves
from chainrule.compiler.batch_kernels import plan_gradients
from chainrule.compiler.batching import Batched, batch_array
from chainrule.compiler.kernels import Kernel, groups_of, plan
from chainrule.compiler.ops import Array
from chainrule.compiler.tracing import (
    Tracer,
    check,
    fingerprint,
    graph_of,
    rebuild_aux,
    record,
    values_from,
)
from chainrule.core import Value
from chainrule.core.custom import registry_version
from chainrule.core.watch import user_stacklevel
from chainrule.errors import BatchTooLargeError, CompileError, CompileWarning, DomainError

__all__ = ["CompiledFunction", "CompiledLoss", "compile"]

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
        #: Set by the first program: the ids of the Values found captured from outside.
        self.verified: set[int] | None = None
        #: The parameters' program leaves, made by the first program, shared by all.
        self.param_leaves: list[Leaf] | None = None
        self._programs: dict[tuple[tuple[int, ...], ...], _Program] = {}
        #: The user-defined ops' registry as the programs were made (see _program).
        self._ops_version = registry_version()
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

    def value_and_grad(self, *inputs: Any, params: Any = None) -> tuple[Any, Array]:
        """The loss as a float and the gradient as an array, in ``params`` order.

        The array path: no ``grad`` is touched. With ``has_aux``, the first item is
        ``(loss, aux)``. ``params``, an array (or sequence) of one number per compiled
        parameter, replaces their ``data`` for this call: a training loop can keep its
        parameters in an array and update them with NumPy, writing them back to the
        Values only when it needs the model (the Values are not changed here).
        """
        arrays = _as_arrays(inputs)
        program = self._program(arrays)
        values: Any = None
        if params is not None:
            values = np.asarray(params, dtype=np.float64)
            if values.shape != (len(self.params),):
                raise ValueError(
                    f"compile: params= needs {len(self.params)} numbers, one per compiled "
                    f"parameter, got an array of shape {values.shape}"
                )
            if not np.isfinite(values).all():
                raise DomainError("compile: params= holds a non-finite number")
        return program.value_and_grad(arrays, values)

    @property
    def fell_back(self) -> bool:
        """Whether any of its programs runs eagerly (fell back: a graph too narrow for
        replay to pay); :meth:`explain` says why."""
        return any(program.fallback for program in self._programs.values())

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
        if self._ops_version != registry_version():
            # An op was registered, replaced or unregistered since the programs were
            # made: their kernels may hold an op's old forward and derivative.
            with self._lock:
                self._programs.clear()
                self._ops_version = registry_version()
        program = self._programs.get(key) or self._batched_program(arrays)
        if program is None:
            with self._lock:
                program = self._programs.get(key) or self._batched_program(arrays)
                if program is None:
                    program = _Program(self, arrays)
                    self._programs[key] = program
                    self._warn_if_retracing()
        return program

    def _batched_program(self, arrays: list[Array]) -> _Program | None:
        """A program traced with vmapped inputs that serves these arrays' batch size."""
        for program in self._programs.values():
            if program.batch_inputs and program.accepts(arrays):
                return program
        return None

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


def _warn_captured(captured: list[Value], name: str, where: str) -> None:
    """Say (once per compiled function) which outside Values were baked in as constants."""
    shown = ", ".join(_show(v) for v in captured[:3])
    more = f" and {len(captured) - 3} more" if len(captured) > 3 else ""
    warnings.warn(
        f"compile: {name} ({where}) uses {len(captured)} Value(s) made outside "
        f"it that are not parameters: {shown}{more}. They are baked in as "
        "constants: changing their .data later changes nothing. Pass parameters in "
        "params and changing data as inputs.",
        CompileWarning,
        stacklevel=user_stacklevel(),
    )


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
        self.kernels: list[Kernel] = []
        name, where = owner.__name__, _location(owner.fn)
        started = time.perf_counter()
        with Tracer() as tracer:
            first = record(self.fn, arrays, self.has_aux, name)
        graph = graph_of(first, self.params, name)
        check(first, tracer, graph, self.params, name)
        first_program = owner.verified is None
        self.captured = self._captured_constants(graph, arrays, name, where)
        self.trace_seconds = time.perf_counter() - started
        self.traced_nodes = len(graph.order)
        self.aux = first.aux
        self.forward_only = graph.n_loss == 0
        self.in_batch = graph.in_batch
        self.result_shape = first.loss.shape if isinstance(first.loss, Batched) else ()
        self.shapes = [a.shape for a in arrays]
        # The inputs mapped by a vmapped call and used in no other way: their batch size
        # may change from call to call without tracing again.
        whole = set(first.batch.used_whole)
        read = [k for v, k in graph.input_index.items() if v in graph.index]
        whole.update(k for k, n in enumerate(_input_counts(read, arrays)) if n)
        self.mapped = sorted(first.batch.rows)
        self.batch_inputs = [k for k in self.mapped if k not in whole]
        self.batched_nodes = len(graph.batched)
        self.n_inputs = sum(a.size for a in arrays)
        if owner.param_leaves is None:
            owner.param_leaves = param_leaves(len(self.params))
        analysis = analyse(graph, owner.param_leaves, self.n_inputs, name, where)
        self.batch_columns = analysis.batch_columns
        del graph, first
        self.program_nodes = len(analysis.nodes)
        self.levels = max((node.level for node in analysis.nodes), default=0)
        groups = groups_of(analysis)
        # Replay pays per kernel call and per element, eager per node: a narrow graph
        # (a long chain: one node per level) runs eagerly, and keeps no program. A
        # batched node counts once per example of the traced batch (eager loops over it).
        n = arrays[self.mapped[0]].shape[0] if self.mapped else 1
        elements = sum(len(x.inputs) * (n if x.batched else 1) for x in analysis.nodes)
        replay = 2 * len(groups) * _REPLAY_PER_KERNEL + elements * _REPLAY_PER_ELEMENT
        eager = (self.traced_nodes + self.batched_nodes * (n - 1)) * _EAGER_PER_NODE
        if replay > eager and owner.allow_fallback:
            self.fallback = (
                f"runs eagerly: {len(groups)} kernels for {self.traced_nodes} nodes "
                f"(a narrow graph; replay would take ~{replay * 1e3:.2f} ms against "
                f"~{eager * 1e3:.2f} ms eagerly)"
            )
            groups.clear()
        self.kernels, layout = plan(analysis, groups, len(self.params) + self.n_inputs)
        self.vals = np.zeros(layout.size)
        self.grads = np.zeros(layout.size)
        self.vals[layout.const_start : layout.const_end] = [c.value for c in layout.constants]
        for kernel in self.kernels:
            kernel.bind(self.vals, self.grads)
        self.batch_rows = layout.batch_rows
        self.bvals = self.bgrads = np.zeros((0, 0))
        self.zero_rows = plan_gradients(self.kernels, self.batch_rows) if self.mapped else []
        self.outputs = [
            (x.value, -1, x.batched, b) if isinstance(x, Const) else (0.0, x.pos, x.batched, b)
            for x, b in zip(analysis.outputs, self.in_batch, strict=True)
        ]
        # where each input goes: the flat buffer (if read whole) and the batch buffer
        offsets = np.cumsum([0, *(a.size for a in arrays)])[:-1] + len(self.params)
        self.flat_inputs = [
            (k, int(offsets[k])) for k in range(len(arrays)) if k not in self.batch_inputs
        ]
        self.compile_seconds = time.perf_counter() - started
        if self.captured and first_program:  # said once per compiled function
            _warn_captured(self.captured, name, where)

    def _captured_constants(
        self, graph: Any, arrays: list[Array], name: str, where: str
    ) -> list[Value]:
        """The constant leaves of ``graph`` that come from outside the function.

        The function's first program traces it twice: a graph that differs between two
        calls (sampling inside, a counter) is refused, and the constant leaves that are
        the same objects both times come from outside the function. Later input shapes
        trust what the first check found, and trace once.
        """
        owner = self.owner
        if owner.verified is not None:
            return [v for v in graph.constant_leaves if id(v) in owner.verified]
        again = graph_of(record(self.fn, arrays, self.has_aux, name), self.params, name)
        if fingerprint(graph) != fingerprint(again):
            raise CompileError(
                f"compile: {name} ({where}) built a different graph on two calls with "
                "the same inputs (random sampling inside the function, a counter, or "
                "data that changes between calls?). Pass what changes as inputs, so "
                "that every call with the same input shapes builds the same graph."
            )
        seen_again = {id(v) for v in again.constant_leaves}
        captured = [v for v in graph.constant_leaves if id(v) in seen_again]
        owner.verified = {id(v) for v in captured}
        return captured

    # -- running -------------------------------------------------------------------

    def _forward(self, params_data: list[float], arrays: list[Array]) -> list[Any]:
        vals = self.vals
        P = len(params_data)
        vals[:P] = params_data
        for k, at in self.flat_inputs:
            a = arrays[k]
            vals[at : at + a.size] = a.ravel()
        if self.mapped:
            self._fill_batch(arrays)
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            for kernel in self.kernels:
                kernel.forward()
        out = [self._output(*entry) for entry in self.outputs]
        if not self.forward_only and not math.isfinite(out[0]):
            raise FloatingPointError("non-finite loss")
        if self.forward_only and not all(np.isfinite(x).all() for x in out):
            raise FloatingPointError("non-finite result")
        return out

    def _output(self, value: float, pos: int, batched: bool, in_batch: bool) -> Any:
        """An output: a float, or N numbers (a batched node's row, or the same number for
        every example) for one of a Batched's Values."""
        if batched:
            return self.bvals[pos].copy()
        x = value if pos < 0 else float(self.vals[pos])
        return np.full(self.bvals.shape[1], x) if in_batch else x

    def _fill_batch(self, arrays: list[Array]) -> None:
        """Put the mapped inputs' examples into the batch buffer's first rows (allocating
        it, and binding the kernels to it, for a new batch size)."""
        n = arrays[self.mapped[0]].shape[0]
        if self.bvals.shape[1:] != (n,):
            self._bind_batch(n)
        bvals = self.bvals
        for row, (k, j) in enumerate(self.batch_columns):
            a = arrays[k]
            bvals[row] = a.reshape(n, -1)[:, j]

    def _bind_batch(self, n: int) -> None:
        # values (and, for a loss, gradients): one row of n numbers per batched node
        need = (1 if self.forward_only else 2) * 8 * self.batch_rows * n
        available = _available_memory()
        if available is not None and need > available:
            raise BatchTooLargeError(
                f"compile: a batch of {n:,} examples needs {need / 1e9:.1f} GB for the "
                f"{self.batch_rows:,} per-example values of {self.owner.__name__}, more "
                f"than the {available / 1e9:.1f} GB of memory available; use smaller batches"
            )
        self.bvals = self.bgrads = np.zeros((0, 0))  # the old ones go first
        self.bvals = np.zeros((self.batch_rows, n))
        # The gradients' buffer comes with the first backward pass (a call whose loss is
        # only read, such as an evaluation, never needs one); until then the kernels'
        # gradient views point into the values, and are never written.
        self.bgrads = self.bvals
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        for kernel in self.kernels:
            if kernel.batched:
                kernel.bind_batch(self.bvals, self.bgrads)

    def _batch_gradients(self) -> Array:
        """The batch buffer's gradients, allocated (and bound) on first use."""
        if self.bgrads is self.bvals and self.bvals.size:
            n = self.bvals.shape[1]
            need = 8 * self.batch_rows * n
            available = _available_memory()
            if available is not None and need > available:
                raise BatchTooLargeError(
                    f"compile: the gradients of a batch of {n:,} examples need "
                    f"{need / 1e9:.1f} GB, more than the {available / 1e9:.1f} GB of memory "
                    "available; use smaller batches"
                )
            self.bgrads = np.empty_like(self.bvals)
            self._bind_kernels()
        return self.bgrads

    def accepts(self, arrays: list[Array]) -> bool:
        """Whether these input arrays fit this program: the traced shapes, but for the
        leading axis of the inputs mapped by a vmapped call (equal among them)."""
        if len(arrays) != len(self.shapes):
            return False
        sizes = {arrays[k].shape[0] if arrays[k].ndim else -1 for k in self.batch_inputs}
        if len(sizes) != 1 or -1 in sizes or 0 in sizes:
            return False
        batch = self.batch_inputs
        return all(
            a.shape[1:] == s[1:] and a.ndim == len(s) if k in batch else a.shape == s
            for k, (a, s) in enumerate(zip(arrays, self.shapes, strict=True))
        )

    def _backward(self) -> Array:
        grads = self.grads
        grads.fill(0.0)
        bgrads = self._batch_gradients()
        for start, stop in self.zero_rows:  # the rest are assigned before they are read
            bgrads[start:stop] = 0.0
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
        return loss, rebuild_aux(self.aux, iter(outs[1:]))

    def call(self, arrays: list[Array]) -> Any:
        if self.fallback:
            return self._eager(arrays)
        params_data = list(map(_data, self.params))
        with self.lock:
            try:
                outs = self._forward(params_data, arrays)
            except FloatingPointError:
                return self._eager(arrays)  # the engine raises its own precise error
            if self.forward_only:
                return batch_array(outs, self.result_shape)
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

    def value_and_grad(self, arrays: list[Array], values: Array | None) -> tuple[Any, Array]:
        if self.forward_only:
            raise TypeError(
                f"compile: {self.owner.__name__} returns a batch, not a loss: it has no "
                "gradient (call it for its values)"
            )
        params_data = list(map(_data, self.params)) if values is None else values
        if not self.fallback:
            with self.lock:
                try:
                    outs = self._forward(params_data, arrays)
                    self.generation += 1
                    return self._with_aux(outs[0], outs), self._backward()
                except FloatingPointError:
                    pass
        value_and_grads: tuple[Any, Array] = self._eager_gradients(
            params_data, arrays, with_value=True
        )
        return value_and_grads

    # -- eagerly ---------------------------------------------------------------------

    def _eager(self, arrays: list[Array]) -> Any:
        """Run the function on Values, as if it had not been compiled."""
        out = self.fn(*[values_from(a, []) for a in arrays])
        if self.forward_only:  # a vmapped call's list of per-example results
            return np.array(_nested_data(out), dtype=np.float64)
        if self.has_aux:
            loss, aux = out
            return loss, _floats_like(self.aux, aux)
        return out

    def _eager_gradients(
        self, params_data: Any, arrays: list[Array], with_value: bool = False
    ) -> Any:
        """The gradient computed by the engine at ``params_data`` (and, ``with_value``,
        the loss before it), leaving every ``data`` and ``grad`` as it was."""
        saved = [(p.data, p.grad) for p in self.params]
        try:
            for p, d in zip(self.params, list(params_data), strict=True):
                p.data, p.grad = d, 0.0
            out = self._eager(arrays)
            loss = out[0] if self.has_aux else out
            loss.backward()
            grads = np.array([p.grad for p in self.params])
        finally:
            for p, (d, g) in zip(self.params, saved, strict=True):
                p.data, p.grad = d, g
        if not with_value:
            return grads
        value = loss.data
        return self._with_aux(value, [value, *_flat_aux(out[1])] if self.has_aux else []), grads

    # -- reporting -------------------------------------------------------------------

    def report(self) -> list[str]:
        matmuls = sum(k.kind == "matmul" for k in self.kernels)
        lines = []
        if self.mapped:
            over = "N, any batch size" if self.batch_inputs else "the traced batch size only"
            lines.append(
                f"traced 1 example: {self.batched_nodes:,} per-example nodes; replayed over "
                f"{over} (inputs {', '.join(map(str, self.mapped))} mapped by vmap)"
            )
        lines += [
            f"traced {self.traced_nodes} nodes and checked in "
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


def _input_counts(read: list[int], arrays: list[Array]) -> list[int]:
    """How many of each input's numbers are among ``read`` (indices into all the inputs'
    numbers, flattened one input after another)."""
    ends = np.cumsum([a.size for a in arrays])
    counts = [0] * len(arrays)
    for k in np.searchsorted(ends, read, side="right").tolist():
        counts[k] += 1
    return counts


def _floats_like(traced: Any, aux: Any) -> Any:
    """An eager run's ``aux`` as the compiled call returns it: Values as floats, and
    where the trace had a batch (a vmapped call's results), its list as an array."""
    if isinstance(traced, Batched):
        return np.array(_nested_data(aux), dtype=np.float64)
    if isinstance(aux, Value):
        return aux.data
    items = [_floats_like(t, a) for t, a in zip(traced, aux, strict=True)]
    if isinstance(aux, tuple) and hasattr(aux, "_fields"):  # a namedtuple: fields by position
        return type(aux)(*items)
    return type(aux)(items)


def _nested_data(x: Any) -> Any:
    """Values (in nested lists) as floats."""
    if isinstance(x, (list, tuple)):
        return [_nested_data(v) for v in x]
    return x.data if isinstance(x, Value) else float(x)


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


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
