"""The array program: one flat buffer of values, and one kernel per group of nodes.

Nodes at the same level that do the same op form a group; each group is one
vectorised NumPy operation (a kernel) that reads its inputs from the buffer -- as a
view where the layout allows, else a gather -- and writes its outputs to a contiguous
slice. Dot nodes that pair every weight row with every input row are one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from chainrule.compiler.analysis import Analysis, Const, Node
from chainrule.compiler.ops import ARRAY_RULES, FORWARD, Array
from chainrule.core.rules import RULES

__all__ = ["Kernel", "Layout", "MatMul", "groups_of", "plan"]


def _strided(ps: list[int], shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]] | None:
    """``(start, strides)`` if the positions ``ps`` (C order, of ``shape``) are a regular
    grid of buffer positions, else None."""
    if not ps:
        return None
    start = ps[0]
    strides = []
    inner = len(ps)
    for n in shape:
        inner //= n
        step = ps[inner] - start if n > 1 else 0
        if step < 0:
            return None
        strides.append(step)
    if len(shape) == 1:  # compared as lists: no arrays to build
        step = strides[0]
        if step == 0:
            return (start, (0,)) if ps.count(start) == len(ps) else None
        return (start, (step,)) if ps == list(range(start, start + len(ps) * step, step)) else None
    expected = np.full(shape, start, dtype=np.int64)
    for axis, (n, step) in enumerate(zip(shape, strides, strict=True)):
        if step:
            expected += (np.arange(n) * step).reshape(
                (1,) * axis + (n,) + (1,) * (len(shape) - axis - 1)
            )
    if not (expected.ravel() == ps).all():
        return None
    return start, tuple(strides)


def _view(a: Array, start: int, shape: tuple[int, ...], steps: tuple[int, ...]) -> Array:
    """The view of ``a`` (a flat float64 array) at ``start`` with element strides ``steps``."""
    strides = tuple(8 * s for s in steps)
    return np.ndarray(shape, np.float64, buffer=a, offset=8 * start, strides=strides)


class _Slot:
    """One input of every node of a group, as an array: a view, a gather or constants."""

    def __init__(
        self, items: Sequence[Any], shape: tuple[int, ...], layout: Layout, scalar: bool = False
    ) -> None:
        self.shape = shape
        self.constant: Array | float | None = None
        self.needs_grad = any(map(_needs_grad, items))
        ps = self.ps = list(map(_pos, items))
        self.pos = np.array(ps, dtype=np.int64).reshape(shape)
        if ps and min(ps) >= layout.const_start and max(ps) < layout.const_end:  # constants
            values = np.array([x.value for x in items], dtype=np.float64).reshape(shape)
            same = scalar and (values == values.flat[0]).all()
            self.constant = float(values.flat[0]) if same else values
            return
        self.unique = len(set(ps)) == len(ps)

    def bind(self, vals: Array, grads: Array) -> None:
        if self.constant is not None:
            return
        grid = _strided(self.ps, self.shape)
        self.view = self.gview = None
        if grid is not None:
            start, steps = grid
            self.view = _view(vals, start, self.shape, steps)
            if self.unique:
                self.gview = _view(grads, start, self.shape, steps)
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


class Layout:
    """Where each value lives in the program's one flat buffer:
    ``[parameters | inputs | constants | computed nodes, group by group]``."""

    def __init__(self, start: int, constants: list[Const], n_nodes: int) -> None:
        self.constants = constants
        self.const_start = start
        self.next = self.const_end = start + len(constants)
        self.size = self.next + n_nodes
        self.batch_rows = 0  # rows of the batch buffer, set by plan()

    def place(self, nodes: Sequence[Node]) -> None:
        for pos, node in enumerate(nodes, self.next):
            node.pos = pos
        self.next += len(nodes)


_pos = attrgetter("pos")
_needs_grad = attrgetter("needs_grad")


def _sort_key(node: Node) -> tuple[int, ...]:
    """Nodes are laid out in the order of their inputs, so that a group's inputs are
    often a plain slice of the buffer (a view, not a copy)."""
    return tuple(map(_pos, node.inputs))


def _first_pos(node: Node) -> int:
    return node.inputs[0].pos  # type: ignore[no-any-return]


def _sort_by_inputs(nodes: list[Node]) -> None:
    """Sort ``nodes`` by :func:`_sort_key`. When their first inputs all differ, that
    order is the order of the first inputs' positions: sorted by those alone."""
    firsts = list(map(_first_pos, nodes))
    if len(set(firsts)) == len(firsts):
        nodes.sort(key=_first_pos)
    else:
        nodes.sort(key=_sort_key)


class Kernel:
    """One vectorised operation over a group of nodes: its forward and backward."""

    kind = "?"
    needs_grad = False
    size = 0
    start = 0
    batched = False  # reads or writes the batch buffer (batch_kernels.py)

    def bind(self, vals: Array, grads: Array) -> None:
        for slot in self.slots():
            slot.bind(vals, grads)
        self.out = vals[self.start : self.start + self.size]
        self.gout = grads[self.start : self.start + self.size]

    def bind_batch(self, bvals: Array, bgrads: Array) -> None:
        """Bind to the batch buffer (one row per batched node, one column per example)."""

    def slots(self) -> list[_Slot]:
        return []

    def forward(self) -> None:
        raise NotImplementedError

    def backward(self) -> None:
        raise NotImplementedError


class _Elementwise(Kernel):
    """``out = op(x, y)`` for each node of the group, as one NumPy expression."""

    def __init__(self, op: str, k: Any, nodes: list[Node], layout: Layout) -> None:
        _sort_by_inputs(nodes)
        layout.place(nodes)
        self.kind, self.k, self.size = op, k, len(nodes)
        self.start = nodes[0].pos
        self.needs_grad = nodes[0].needs_grad
        arity = len(nodes[0].inputs)
        self.ins = [
            _Slot([n.inputs[s] for n in nodes], (self.size,), layout, scalar=True)
            for s in range(arity)
        ]
        self.fn = FORWARD[op]
        self.rule = ARRAY_RULES.get(op) or RULES[op]

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


class _PerNodeReduction(Kernel):
    """A group of n-ary nodes, each reducing its own inputs (its *terms*) to one value.

    When every node has the same number of terms the terms form a matrix, one row per
    node; otherwise they are one flat array cut into segments (``np.*.reduceat``).
    """

    def __init__(self, nodes: list[Node], layout: Layout) -> None:
        _sort_by_inputs(nodes)
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
        """One value per node, repeated for each of its terms."""
        return a[:, None] if self.width else np.repeat(a, self.counts)

    def _total(self, x: Array) -> Array:
        """The sum of each node's terms."""
        if self.width == 1:
            return x[:, 0]
        return x.sum(axis=1) if self.width else np.add.reduceat(x, self.starts)


class _Sum(_PerNodeReduction):
    """``out = offset + Σ coef·x`` per node: the folded ``+``/``-`` chains and ``sum``."""

    kind = "sum"

    def __init__(self, nodes: list[Node], layout: Layout) -> None:
        super().__init__(nodes, layout)
        coefs = np.array([c for n in nodes for c in n.arg[0]]).reshape(self.terms.shape)
        self.coefs: Array | None = None if (coefs == 1.0).all() else coefs
        offsets = np.array([n.arg[1] for n in nodes])
        same = (offsets == offsets[0]).all()
        self.offsets: Array | float = float(offsets[0]) if same else offsets

    def forward(self) -> None:
        x = self.terms.get()
        self.out[...] = self._total(x if self.coefs is None else x * self.coefs) + self.offsets

    def backward(self) -> None:
        if self.terms.needs_grad:
            c = self._spread(self.gout)  # broadcast over each node's terms by the add
            self.terms.add(c if self.coefs is None else c * self.coefs)


class _LogSumExp(_PerNodeReduction):
    """``out = log Σ exp(x)`` per node; each input's local derivative is its softmax."""

    kind = "logsumexp"

    def forward(self) -> None:
        x = self.x = self.terms.get()
        top = x.max(axis=1) if self.width else np.maximum.reduceat(x, self.starts)
        self.out[...] = top + np.log(self._total(np.exp(x - self._spread(top))))

    def backward(self) -> None:
        if self.terms.needs_grad:
            self.terms.add(np.exp(self.x - self._spread(self.out)) * self._spread(self.gout))


class _Dot(Kernel):
    """``out = w · x + b`` per node, for dot nodes that do not form a matrix product."""

    kind = "dot"

    def __init__(self, nodes: list[Node], layout: Layout) -> None:
        _sort_by_inputs(nodes)
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
        self.wv, self.xv = self.w.get(), self.x.get()  # both of shape (nodes, n)
        self.out[...] = np.einsum("ij,ij->i", self.wv, self.xv) + self.b.get()

    def backward(self) -> None:
        g = self.gout[:, None]
        if self.w.needs_grad:
            self.w.add(g * self.xv)
        if self.x.needs_grad:
            self.x.add(g * self.wv)
        if self.b.needs_grad:
            self.b.add(self.gout)


class MatMul(Kernel):
    """A layer applied to a batch: ``out[j, i] = rows[j] · weights[i] + bias[j, i]``.

    Found when a group of dot nodes pairs each of ``m`` weight rows with each of ``r``
    input rows exactly once. The bias goes with the weight row (a layer's bias), with
    the input row, or is any number per node (``bias_by`` is ``"weight"``, ``"row"`` or
    ``"node"``): e.g. the zeros of several bias-free layers applied to the same rows.
    """

    kind = "matmul"

    def __init__(self, grid: list[list[Node]], n: int, bias_by: str, layout: Layout) -> None:
        # grid[j][i]: the node pairing input row j with weight row i
        r, m = len(grid), len(grid[0])
        self.shape = (r, m)
        flat = [node for row in grid for node in row]
        layout.place(flat)
        self.size, self.start = len(flat), flat[0].pos
        self.needs_grad = flat[0].needs_grad
        self.weights = _Slot([x for node in grid[0] for x in node.inputs[:n]], (m, n), layout)
        self.rows = _Slot([x for row in grid for x in row[0].inputs[n : 2 * n]], (r, n), layout)
        self.bias_by = bias_by
        if bias_by == "row":
            self.bias = _Slot([row[0].inputs[-1] for row in grid], (r, 1), layout)
        elif bias_by == "weight":
            self.bias = _Slot([node.inputs[-1] for node in grid[0]], (m,), layout)
        else:
            self.bias = _Slot([node.inputs[-1] for node in flat], (r, m), layout)
        # A bias of constant zeros (``Linear(bias=False)``, attention) is not added:
        # adding 0.0 changes nothing but the sign of a zero.
        zeros = self.bias.constant is not None and not np.any(self.bias.constant)
        self.add_bias = not zeros

    def slots(self) -> list[_Slot]:
        return [self.weights, self.rows, self.bias]

    def bind(self, vals: Array, grads: Array) -> None:
        super().bind(vals, grads)
        self.out = self.out.reshape(self.shape)
        self.gout = self.gout.reshape(self.shape)

    def forward(self) -> None:
        w = self.wv = self.weights.get()
        x = self.xv = self.rows.get()
        np.matmul(x, w.T, out=self.out)
        if self.add_bias:
            self.out += self.bias.get()

    def backward(self) -> None:
        g = self.gout
        if self.weights.needs_grad:
            self.weights.add(g.T @ self.xv)
        if self.rows.needs_grad:
            self.rows.add(g @ self.wv)
        if self.bias.needs_grad:
            if self.bias_by == "row":
                self.bias.add(g.sum(axis=1, keepdims=True))
            else:
                self.bias.add(g.sum(axis=0) if self.bias_by == "weight" else g)


def _dot_kernels(nodes: list[Node], layout: Layout) -> list[Kernel]:
    """Split a group of same-size dot nodes into matrix products and the rest.

    Weight rows that meet exactly the same set of input rows, each pair once, form a
    grid: a layer applied to a batch, one matrix product.
    """
    n = (len(nodes[0].inputs) - 1) // 2
    # program nodes, leaves and constants hash by identity: tuples of them are keys
    by_weights: dict[tuple[Any, ...], list[Node]] = {}
    for node in nodes:
        by_weights.setdefault(tuple(node.inputs[:n]), []).append(node)
    by_rows: dict[frozenset[tuple[Any, ...]], list[list[Node]]] = {}
    rest: list[Node] = []
    for members in by_weights.values():
        rows = frozenset([tuple(node.inputs[n : 2 * n]) for node in members])
        if len(rows) == len(members):
            by_rows.setdefault(rows, []).append(members)
        else:  # the same weights meet the same inputs twice
            rest.extend(members)
    kernels: list[Kernel] = []
    for columns in by_rows.values():
        grid, bias_by = _as_grid(columns, n)
        if len(grid) * len(grid[0]) < 2:
            rest.extend(node for column in columns for node in column)
        else:
            kernels.append(MatMul(grid, n, bias_by, layout))
    if rest:
        kernels.append(_Dot(rest, layout))
    return kernels


def _as_grid(columns: list[list[Node]], n: int) -> tuple[list[list[Node]], str]:
    """``columns`` (one list of nodes per weight row, all meeting the same input rows)
    as ``grid[input row][weight row]``, and what the bias follows: ``"weight"``,
    ``"row"`` or neither (``"node"``)."""
    _sort_by(columns, lambda column: column[0].inputs[0].pos, lambda c: _positions(c[0].inputs[:n]))
    for column in columns:
        _sort_by(
            column, lambda node: node.inputs[n].pos, lambda node: _positions(node.inputs[n : 2 * n])
        )
    grid = [list(row) for row in zip(*columns, strict=True)]
    top = grid[0]
    if all(row[i].inputs[-1] is top[i].inputs[-1] for row in grid for i in range(len(top))):
        return grid, "weight"
    if all(node.inputs[-1] is row[0].inputs[-1] for row in grid for node in row):
        return grid, "row"
    return grid, "node"


def _sort_by(items: list[Any], first: Callable[[Any], int], full: Callable[[Any], Any]) -> None:
    """Sort ``items`` by ``full`` (a tuple of positions); when the tuples' first entries,
    ``first``, all differ, by those alone: the same order, at a fraction of the cost."""
    firsts = list(map(first, items))
    items.sort(key=first if len(set(firsts)) == len(firsts) else full)


def _positions(items: Sequence[Any]) -> tuple[int, ...]:
    return tuple(map(_pos, items))


def _group_key(node: Node) -> tuple[Any, ...]:
    if node.op == "dot":
        extra: Any = len(node.inputs)
    elif node.op in FORWARD:  # the number of x ** k, c ** x, clamp_min(x, k): a kernel each
        extra = node.arg
    else:
        extra = None
    # batched nodes apart; an elementwise op's inputs batched alike in a group
    pattern = "".join("b" if x.batched else "f" for x in node.inputs) if node.batched else ""
    if node.op in ("lin", "dot", "logsumexp"):
        pattern = ""
    return (node.level, node.op, repr(extra), node.needs_grad, node.batched, pattern)


def groups_of(analysis: Analysis) -> dict[tuple[Any, ...], list[Node]]:
    """The program's nodes grouped by (level, op): each group becomes one kernel or a few."""
    groups: dict[tuple[Any, ...], list[Node]] = {}
    for node in analysis.nodes:
        groups.setdefault(_group_key(node), []).append(node)
    return groups


def plan(
    analysis: Analysis, groups: dict[tuple[Any, ...], list[Node]], start: int
) -> tuple[list[Kernel], Layout]:
    """Lay the values out in one buffer and make the kernels, level by level."""
    layout = Layout(start, analysis.constants, len(analysis.nodes))
    kernels: list[Kernel] = []
    batch_layout: Any = None
    for key in sorted(groups):
        nodes = groups[key]
        op = nodes[0].op
        if key[4] or op in ("batch_sum", "batch_mean"):  # batched, or reducing a batch
            from chainrule.compiler.batch_kernels import BatchLayout, batch_kernels

            if batch_layout is None:
                batch_layout = BatchLayout(len(analysis.batch_leaves), analysis)
            kernels.extend(batch_kernels(op, nodes[0].arg, nodes, batch_layout, layout))
        elif op == "lin":
            kernels.append(_Sum(nodes, layout))
        elif op == "logsumexp":
            kernels.append(_LogSumExp(nodes, layout))
        elif op == "dot":
            kernels.extend(_dot_kernels(nodes, layout))
        else:
            kernels.append(_Elementwise(op, nodes[0].arg, nodes, layout))
    layout.batch_rows = (
        batch_layout.next if batch_layout is not None else len(analysis.batch_leaves)
    )
    return kernels, layout
