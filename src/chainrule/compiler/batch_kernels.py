"""The kernels of batched nodes: each value a row of N numbers, one per example.

A vmapped call is traced on one example (``batching.py``); its nodes are *batched*. The
batch buffer holds one row of N numbers per batched node, ``[batch leaves | computed
nodes, group by group]``, beside the flat buffer of the unbatched values (parameters,
constants, the L2 term, the loss). A kernel's inputs may come from either: an
unbatched input is one number per node, broadcast over the N examples, and its
gradient is summed over them. A group of dot nodes that all meet the same batched row
with unbatched weights -- a layer applied to one example -- is one matrix product over
the whole batch: ``W @ X``, with X the batch buffer's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.compiler.analysis import Node
from chainrule.compiler.kernels import Kernel, Layout, _Slot, _strided
from chainrule.compiler.ops import ARRAY_RULES, FORWARD, Array
from chainrule.core.rules import RULES

__all__ = ["BatchKernel", "BatchLayout", "batch_kernels", "plan_gradients"]


class BatchLayout:
    """Rows of the batch buffer: the batch leaves first, then computed nodes.

    ``uses`` counts, per batched node, the nodes that take it as an input (and twice
    for an output of the program): a relu whose input rows nothing else reads is
    computed in place, on those rows (see :class:`_BElementwise`)."""

    def __init__(self, n_leaves: int, analysis: Any) -> None:
        self.next = n_leaves
        self.uses: Counter[Any] = Counter(
            x for node in analysis.nodes if node.batched for x in node.inputs if x.batched
        )
        self.uses.update(x for x in analysis.outputs for _ in range(2))

    def in_place(self, op: str, nodes: Sequence[Node]) -> bool:
        """Whether ``nodes`` (a group of one-input ``op``) may overwrite their inputs'
        rows: a relu whose inputs are computed by kernels that never read their own
        results again (dots, sums), used by nothing else, and laid out as one block."""
        if op != "relu":
            return False
        ins = [node.inputs[0] for node in nodes]
        if not all(
            isinstance(x, Node) and x.op in _OUT_UNREAD and x.batched and self.uses[x] == 1
            for x in ins
        ):
            return False
        rows = sorted(x.pos for x in ins)
        return rows == list(range(rows[0], rows[0] + len(rows)))

    def place(self, nodes: Sequence[Node]) -> None:
        for row, node in enumerate(nodes, self.next):
            node.pos = row
        self.next += len(nodes)


#: The ops whose kernels' backward passes never read their own results (``out``).
_OUT_UNREAD = ("dot", "lin")


def _batched(x: Any) -> bool:
    return bool(x.batched)


def _where(items: Sequence[Any]) -> tuple[tuple[bool, int], ...]:
    return tuple((x.batched, x.pos) for x in items)


def _sort(nodes: list[Node], part: slice = slice(None)) -> None:
    """Lay nodes out in the order of their inputs (of ``part`` of them), so that the
    next group often reads its inputs as a plain block of rows (a view, not a copy)."""
    nodes.sort(key=lambda node: _where(node.inputs[part]))


class _BSlot:
    """One input of every node of a batched group, shaped ``(*shape, N)``: rows of the
    batch buffer, unbatched numbers (shaped ``(*shape, 1)``, broadcast over the batch),
    or a mix of both.

    Gradients are added into the batch buffer's rows; a slot that is the first to
    receive its rows' gradients in a backward pass *assigns* them instead (``assign``,
    set by :func:`plan_gradients`), so the buffer needs no zeroing before each pass."""

    def __init__(self, items: Sequence[Any], shape: tuple[int, ...], layout: Layout) -> None:
        self.shape = shape
        self.needs_grad = any(x.needs_grad for x in items)
        self.assign = False
        flags = [x.batched for x in items]
        self.kind = "rows" if all(flags) else "flat" if not any(flags) else "mixed"
        self.rows: list[int] = [x.pos for x in items if x.batched]
        self.grid = None
        if self.kind == "flat":
            self.flat = _Slot(items, shape, layout)
            return
        self.row_pos = np.array(self.rows, dtype=np.int64)
        self.unique = len(set(self.rows)) == len(self.rows)
        if self.kind == "rows":
            self.grid = _strided(self.rows, shape)
        else:
            self.b_at = np.array([i for i, f in enumerate(flags) if f], dtype=np.int64)
            self.f_at = np.array([i for i, f in enumerate(flags) if not f], dtype=np.int64)
            self.f_pos = np.array([x.pos for x in items if not x.batched], dtype=np.int64)

    @property
    def has_gview(self) -> bool:
        """Whether gradients go into a view of the buffer (a regular grid of distinct rows)."""
        return self.grid is not None and self.unique

    def bind(self, vals: Array, grads: Array, bvals: Array, bgrads: Array) -> None:
        if self.kind == "flat":
            self.flat.bind(vals, grads)
            return
        self.vals, self.grads, self.bvals, self.bgrads = vals, grads, bvals, bgrads
        self.n = n = bvals.shape[1]
        self.view = self.gview = None
        if self.grid is not None:
            start, steps = self.grid
            self.view = _rows_view(bvals, start, self.shape, steps, n)
            if self.unique:
                self.gview = _rows_view(bgrads, start, self.shape, steps, n)

    def get(self) -> Array:
        """The inputs: ``(*shape, N)``, or ``(*shape, 1)`` for unbatched numbers."""
        if self.kind == "flat":
            return self.flat.get()[..., None]
        if self.view is not None:
            return self.view
        rows = np.take(self.bvals, self.row_pos, axis=0)
        if self.kind == "rows":
            return rows.reshape(*self.shape, self.n)
        out = np.empty((len(self.b_at) + len(self.f_at), self.n))
        out[self.b_at] = rows
        out[self.f_at] = self.vals[self.f_pos][:, None]
        return out.reshape(*self.shape, self.n)

    def target(self) -> Array | None:
        """Where a kernel may write this slot's gradient directly (``out=``), if it is
        assigned into a view; else None (use :meth:`add`)."""
        return self.gview if self.assign else None

    def add(self, c: Array) -> None:
        """Add ``c`` (broadcast to ``(*shape, N)``) into these inputs' gradients; an
        unbatched input gets the sum over the batch."""
        if self.kind == "flat":
            c = np.asarray(c)
            self.flat.add(c.sum(axis=-1) if c.shape[-1:] != (1,) else c[..., 0])
            return
        if self.gview is not None:
            if self.assign:
                self.gview[...] = c
            else:
                self.gview += c
            return
        full = np.broadcast_to(c, (*self.shape, self.n)).reshape(-1, self.n)
        if self.kind == "mixed":
            np.add.at(self.bgrads, self.row_pos, full[self.b_at])
            np.add.at(self.grads, self.f_pos, full[self.f_at].sum(axis=1))
        elif self.unique:
            self.bgrads[self.row_pos] += full
        else:
            np.add.at(self.bgrads, self.row_pos, full)


def _rows_view(
    buf: Array, start: int, shape: tuple[int, ...], steps: tuple[int, ...], n: int
) -> Array:
    """The view of rows ``start + Σ i·step`` of the 2-D buffer ``buf`` (N columns)."""
    strides = (*(8 * n * s for s in steps), 8)
    return np.ndarray((*shape, n), np.float64, buffer=buf, offset=8 * n * start, strides=strides)


class BatchKernel(Kernel):
    """A kernel over batched nodes: its outputs are rows of the batch buffer."""

    batched = True

    def bind(self, vals: Array, grads: Array) -> None:
        self.vals, self.grads = vals, grads

    def bind_batch(self, bvals: Array, bgrads: Array) -> None:
        for slot in self.bslots():
            slot.bind(self.vals, self.grads, bvals, bgrads)
        self.out = bvals[self.start : self.start + self.size]
        self.gout = bgrads[self.start : self.start + self.size]

    def bslots(self) -> list[_BSlot]:
        return []

    def grad_slots(self) -> list[_BSlot]:
        """The slots that receive gradients in :meth:`backward`, in the order it adds."""
        return [s for s in self.bslots() if s.needs_grad]

    def out_rows(self) -> range:
        """The batch buffer's rows this kernel writes (whose gradients it reads)."""
        return range(self.start, self.start + self.size)


def _relu_into(x: Array, out: Array) -> None:
    np.maximum(x, 0.0, out=out)


#: Forwards written straight into the output rows (no temporary): the common ops.
_INTO: dict[str, Any] = {
    "relu": _relu_into,
    "*": np.multiply,
    "/": np.divide,
    **{op: getattr(np, op) for op in ("exp", "tanh", "log", "sin", "cos", "sqrt", "square")},
}


class _BElementwise(BatchKernel):
    """``out = op(x, y)`` per node and example, as one NumPy expression."""

    def __init__(
        self, op: str, k: Any, nodes: list[Node], layout: BatchLayout, flat: Layout
    ) -> None:
        _sort(nodes)
        #: Computed on its input's rows, which nothing else reads: relu's mask is then
        #: taken from its result (x > 0 exactly where relu(x) > 0), and its gradient
        #: turned into the input's in place.
        self.in_place = layout.in_place(op, nodes)
        if self.in_place:
            for node in nodes:
                node.pos = node.inputs[0].pos
        else:
            layout.place(nodes)
        self.kind, self.k, self.size, self.start = op, k, len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        arity = len(nodes[0].inputs)
        self.ins = [_BSlot([n.inputs[s] for n in nodes], (self.size,), flat) for s in range(arity)]
        self.fn = FORWARD[op]
        self.into = _INTO.get(op)
        self.rule = ARRAY_RULES.get(op) or RULES[op]

    def bslots(self) -> list[_BSlot]:
        return self.ins

    def forward(self) -> None:
        self.xs = [s.get() for s in self.ins]
        if self.into is not None:
            self.into(*self.xs, out=self.out)
        else:
            self.out[...] = self.fn(self.xs, self.k)

    def grad_slots(self) -> list[_BSlot]:
        return [] if self.in_place else super().grad_slots()

    def backward(self) -> None:
        g = self.gout
        if self.in_place:  # the input's gradient, on the same rows
            np.multiply(g, self.out > 0.0, out=g)
            return
        if self.kind == "relu":  # the mask itself: one pass fewer than 1.0 * (x > 0)
            slot = self.ins[0]
            target = slot.target()
            if target is not None:
                np.multiply(g, self.xs[0] > 0.0, out=target)
            else:
                slot.add(g * (self.xs[0] > 0.0))
            return
        local = self.rule(self.xs, self.out, self.k)
        for slot, d in zip(self.ins, local, strict=True):
            if slot.needs_grad:
                slot.add(d * g)


class _BTerms(BatchKernel):
    """Batched n-ary nodes, each reducing its own terms: the terms as one array of rows
    ``(T, N)``, cut into each node's segment."""

    def __init__(self, nodes: list[Node], layout: BatchLayout, flat: Layout) -> None:
        _sort(nodes)
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        counts = [len(n.inputs) for n in nodes]
        self.width = counts[0] if len(set(counts)) == 1 else 0
        self.counts = np.array(counts)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.owner = np.repeat(np.arange(self.size), counts)
        self.terms = _BSlot([x for n in nodes for x in n.inputs], (sum(counts),), flat)

    def bslots(self) -> list[_BSlot]:
        return [self.terms]

    def _total(self, x: Array, fn: Any = np.add) -> Array:
        """Each node's reduction of its terms' rows: ``(size, N)``."""
        if self.width:
            return fn.reduce(x.reshape(self.size, self.width, -1), axis=1)
        return fn.reduceat(x, self.starts, axis=0)

    def _spread(self, a: Array) -> Array:
        """One row per node, repeated for each of its terms."""
        return a[self.owner]


class _BSum(_BTerms):
    """``out = offset + Σ coef·x`` per node and example."""

    kind = "sum"

    def __init__(self, nodes: list[Node], layout: BatchLayout, flat: Layout) -> None:
        super().__init__(nodes, layout, flat)
        coefs = np.array([c for n in nodes for c in n.arg[0]])
        self.coefs: Array | None = None if (coefs == 1.0).all() else coefs[:, None]
        self.offsets = np.array([n.arg[1] for n in nodes])[:, None]
        self.has_offset = bool(self.offsets.any())

    def forward(self) -> None:
        x = self.terms.get()
        if x.shape[-1] != self.out.shape[1]:  # every term unbatched: cannot be, but safe
            x = np.broadcast_to(x, (x.shape[0], self.out.shape[1]))
        total = self._total(x if self.coefs is None else x * self.coefs)
        if self.has_offset:
            total += self.offsets
        self.out[...] = total

    def backward(self) -> None:
        if self.terms.needs_grad:
            c = self._spread(self.gout)
            self.terms.add(c if self.coefs is None else c * self.coefs)


class _BLogSumExp(_BTerms):
    """``out = log Σ exp(x)`` per node and example; local derivatives: the softmax."""

    kind = "logsumexp"

    def forward(self) -> None:
        x = self.terms.get()
        x = self.x = np.broadcast_to(x, (x.shape[0], self.out.shape[1]))
        top = self._total(x, np.maximum)
        self.out[...] = top + np.log(self._total(np.exp(x - self._spread(top))))

    def backward(self) -> None:
        if self.terms.needs_grad:
            self.terms.add(np.exp(self.x - self._spread(self.out)) * self._spread(self.gout))


class _BDot(BatchKernel):
    """``out = w · x + b`` per node and example, for dot nodes with batched inputs that
    do not form a matrix product (e.g. two per-example vectors, as in attention)."""

    kind = "dot"

    def __init__(self, nodes: list[Node], layout: BatchLayout, flat: Layout) -> None:
        _sort(nodes)
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        n = (len(nodes[0].inputs) - 1) // 2
        shape = (self.size, n)
        self.w = _BSlot([x for nd in nodes for x in nd.inputs[:n]], shape, flat)
        self.x = _BSlot([x for nd in nodes for x in nd.inputs[n : 2 * n]], shape, flat)
        self.b = _BSlot([nd.inputs[-1] for nd in nodes], (self.size,), flat)

    def bslots(self) -> list[_BSlot]:
        return [self.w, self.x, self.b]

    def forward(self) -> None:
        self.wv, self.xv = self.w.get(), self.x.get()  # (nodes, n, N or 1)
        self.out[...] = np.einsum("knb,knb->kb", *np.broadcast_arrays(self.wv, self.xv))
        self.out += self.b.get()

    def backward(self) -> None:
        g = self.gout[:, None, :]
        if self.w.needs_grad:
            self.w.add(g * self.xv)
        if self.x.needs_grad:
            self.x.add(g * self.wv)
        if self.b.needs_grad:
            self.b.add(self.gout)


class _BMatMul(BatchKernel):
    """A layer applied to one example, over the batch: ``out = W @ X + b``.

    The group's nodes meet the same batched row ``X`` (``n`` rows of the batch buffer)
    with unbatched weight rows ``W`` (``m × n``) and unbatched biases."""

    kind = "matmul"

    def __init__(
        self, nodes: list[Node], n: int, flipped: bool, layout: BatchLayout, flat: Layout
    ) -> None:
        _sort(nodes, slice(n, 2 * n) if flipped else slice(0, n))
        layout.place(nodes)
        self.size, self.start = len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        w_part, x_part = (
            (slice(n, 2 * n), slice(0, n)) if flipped else (slice(0, n), slice(n, 2 * n))
        )
        self.weights = _Slot([x for nd in nodes for x in nd.inputs[w_part]], (self.size, n), flat)
        self.rows = _BSlot(nodes[0].inputs[x_part], (n,), flat)
        self.bias = _Slot([nd.inputs[-1] for nd in nodes], (self.size,), flat)
        self.add_bias = not (self.bias.constant is not None and not np.any(self.bias.constant))

    def bind(self, vals: Array, grads: Array) -> None:
        super().bind(vals, grads)
        self.weights.bind(vals, grads)
        self.bias.bind(vals, grads)

    def bslots(self) -> list[_BSlot]:
        return [self.rows]

    def forward(self) -> None:
        # a small copy of the weights, so that BLAS takes them whatever their strides
        w = self.wv = np.ascontiguousarray(self.weights.get())
        x = self.xv = self.rows.get()
        np.matmul(w, x, out=self.out)
        if self.add_bias:
            self.out += self.bias.get()[:, None]

    def backward(self) -> None:
        g = self.gout
        if self.weights.needs_grad:
            self.weights.add(g @ self.xv.T)
        if self.rows.needs_grad:
            target = self.rows.target()
            if target is not None:
                np.matmul(self.wv.T, g, out=target)
            else:
                self.rows.add(self.wv.T @ g)
        if self.bias.needs_grad:
            self.bias.add(g.sum(axis=1))


class _BReduce(BatchKernel):
    """``batch_sum`` / ``batch_mean``: a batched row collapsed to one number (an
    unbatched result, in the flat buffer)."""

    def __init__(self, op: str, nodes: list[Node], flat: Layout) -> None:
        flat.place(nodes)
        self.kind, self.size, self.start = op, len(nodes), nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        self.mean = op == "batch_mean"
        self.x = _BSlot([nd.inputs[0] for nd in nodes], (self.size,), flat)

    def bind(self, vals: Array, grads: Array) -> None:
        super().bind(vals, grads)
        self.out = vals[self.start : self.start + self.size]
        self.gout = grads[self.start : self.start + self.size]

    def bind_batch(self, bvals: Array, bgrads: Array) -> None:
        self.x.bind(self.vals, self.grads, bvals, bgrads)
        self.n = bvals.shape[1]

    def bslots(self) -> list[_BSlot]:
        return [self.x]

    def out_rows(self) -> range:
        return range(0)  # its results are unbatched numbers, in the flat buffer

    def forward(self) -> None:
        x = self.x.get()
        total = x.sum(axis=1) if x.shape[1] == self.n else x[:, 0] * self.n
        self.out[...] = total / self.n if self.mean else total

    def backward(self) -> None:
        g = self.gout[:, None] / self.n if self.mean else self.gout[:, None]
        self.x.add(np.broadcast_to(g, (self.size, self.n)))


def _dot_kernels(nodes: list[Node], layout: BatchLayout, flat: Layout) -> list[Kernel]:
    """Matrix products for the dots that pair unbatched weights with one shared batched
    row (either side), and one generic kernel for the rest."""
    n = (len(nodes[0].inputs) - 1) // 2
    by_row: dict[tuple[tuple[Any, ...], bool], list[Node]] = {}
    rest: list[Node] = []
    for node in nodes:
        w, x, b = node.inputs[:n], node.inputs[n : 2 * n], node.inputs[-1]
        if b.batched:
            rest.append(node)
        elif all(map(_batched, x)) and not any(map(_batched, w)):
            by_row.setdefault((tuple(x), False), []).append(node)
        elif all(map(_batched, w)) and not any(map(_batched, x)):
            by_row.setdefault((tuple(w), True), []).append(node)
        else:
            rest.append(node)
    kernels: list[Kernel] = [
        _BMatMul(group, n, flipped, layout, flat) for (_, flipped), group in by_row.items()
    ]
    if rest:
        kernels.append(_BDot(rest, layout, flat))
    return kernels


def batch_kernels(
    op: str, arg: Any, nodes: list[Node], layout: BatchLayout, flat: Layout
) -> list[Kernel]:
    """The kernels of one group of batched nodes (or of batch reductions)."""
    if op in ("batch_sum", "batch_mean"):
        return [_BReduce(op, nodes, flat)]
    if op == "lin":
        return [_BSum(nodes, layout, flat)]
    if op == "logsumexp":
        return [_BLogSumExp(nodes, layout, flat)]
    if op == "dot":
        return _dot_kernels(nodes, layout, flat)
    return [_BElementwise(op, arg, nodes, layout, flat)]


def plan_gradients(kernels: Sequence[Kernel], n_rows: int) -> list[tuple[int, int]]:
    """Decide, for one backward pass through ``kernels`` (run in reverse), which slots
    assign their gradients (the first to reach their rows, through a view) and which
    add; return the ranges of rows that must be zeroed before the pass instead: rows
    added into before anything assigned them, and outputs no gradient reaches."""
    written = [False] * n_rows
    zero: set[int] = set()
    for kernel in reversed(kernels):
        if not kernel.needs_grad or not isinstance(kernel, BatchKernel):
            continue
        for row in kernel.out_rows():
            if not written[row]:
                zero.add(row)
                written[row] = True
        for slot in kernel.grad_slots():
            if slot.kind == "flat":
                continue
            fresh = not any(written[r] for r in slot.rows)
            slot.assign = fresh and slot.has_gview
            if not slot.assign:
                zero.update(r for r in slot.rows if not written[r])
            for r in slot.rows:
                written[r] = True
    return _ranges(sorted(zero))


def _ranges(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as ``[start, stop)`` ranges of consecutive rows."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and out[-1][1] == r:
            out[-1] = (out[-1][0], r + 1)
        else:
            out.append((r, r + 1))
    return out
