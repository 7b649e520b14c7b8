"""From a traced graph to program nodes: constants folded, chains of sums folded.

Nodes that depend on no parameter and no input are constants (their traced value).
A ``+``/``-``/``neg``/``sum`` node used only by another such node is folded into it, so
Python's ``sum()`` over Values -- a chain of hundreds of ``+`` -- becomes one n-ary sum
(``lin``: ``offset + Σ coef·x``), found in linear time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import chain, filterfalse
from operator import attrgetter
from typing import Any

from chainrule.compiler.batching import BATCH_REDUCE
from chainrule.compiler.ops import FORWARD, LINEAR, NARY
from chainrule.compiler.tracing import Graph
from chainrule.core import Value
from chainrule.core.custom import no_numpy_form, registered_ops
from chainrule.errors import CompileError

__all__ = ["Analysis", "Const", "Leaf", "Node", "analyse", "param_leaves"]


@dataclass(eq=False, slots=True)
class Node:
    """A node of the program: its op, its inputs (program nodes or constants), its arg."""

    op: str
    inputs: list[Any]  # Node, Leaf or Const
    arg: Any = None  # k of x ** k; (coefs, offset) of "lin"
    needs_grad: bool = False
    level: int = 0
    pos: int = -1  # in the flat buffer; a batched node's: its row in the batch buffer
    batched: bool = False  # a row of N numbers, one per example (see batching.py)


@dataclass(eq=False, slots=True)
class Leaf:
    kind: str  # "param", "input" or "batch" (a number of each example of a vmapped input)
    index: int
    needs_grad: bool
    level: int = 0
    pos: int = -1
    batched: bool = False


@dataclass(eq=False, slots=True)
class Const:
    """A number the program never changes (a node that depends on no parameter or input)."""

    value: float
    pos: int = -1
    needs_grad = False
    level = 0
    batched = False


@dataclass
class Analysis:
    nodes: list[Node]  # the program's nodes, each after its inputs
    outputs: list[Any]  # loss, then aux: Node, Leaf or Const
    constants: list[Const]
    batch_leaves: list[Leaf]  # rows 0.. of the batch buffer, input by input
    batch_columns: list[tuple[int, int]]  # per batch leaf: (input, position in a row)


def param_leaves(n_params: int) -> list[Leaf]:
    """The program leaves of the parameters: the same for every program of a function
    (a leaf is never changed once made), so made once."""
    return [Leaf("param", k, True, pos=k) for k in range(n_params)]


def analyse(graph: Graph, params: list[Leaf], n_inputs: int, name: str, where: str) -> Analysis:
    """Turn the graph into program nodes: constants folded, chains of sums folded.
    ``params`` are the parameters' leaves (:func:`param_leaves`)."""
    n_params = len(params)
    order, fixed, frozen = graph.order, graph.fixed, graph.frozen

    # A + or - used once, by another + or -, is folded into that one: Python's sum()
    # over Values becomes one n-ary sum instead of a chain of hundreds of levels.
    linear = [v for v in order if v._op in LINEAR and v not in fixed]
    is_linear = set(linear).__contains__
    by_linear = Counter(filter(is_linear, chain.from_iterable(map(_prev, linear))))
    # used by a node that is not linear (or an output): never folded away
    kept = set(linear).intersection(chain.from_iterable(map(_prev, filterfalse(is_linear, order))))
    kept.update(order[k] for k in graph.outputs)
    inlined = {v for v, n in by_linear.items() if n == 1 and v not in kept}

    # the program node, leaf or constant of each trace node
    made: dict[Value, Any] = dict(zip(graph.param_index, params, strict=True))
    made.update(
        (v, Leaf("input", k, False, pos=n_params + k)) for v, k in graph.input_index.items()
    )
    # batch leaves: the first rows of the batch buffer, by input then position in a row
    in_graph = [v for v in graph.batch_index if v in graph.index]
    in_graph.sort(key=graph.batch_index.__getitem__)
    columns = [graph.batch_index[v] for v in in_graph]
    batch_leaves = [
        Leaf("batch", k, False, pos=row, batched=True) for row, (k, _) in enumerate(columns)
    ]
    made.update(zip(in_graph, batch_leaves, strict=True))
    batched = graph.batched
    start = n_params + n_inputs
    fixed_nodes = list(filter(fixed.__contains__, order))
    constants = [Const(v.data, pos=p) for p, v in enumerate(fixed_nodes, start)]
    made.update(zip(fixed_nodes, constants, strict=True))
    nodes: list[Node] = []
    level = attrgetter("level")
    skipped = (fixed | inlined).__contains__
    for v in filterfalse(skipped, filter(_prev, order)):  # computed nodes, in order
        prev = v._prev
        op = v._op
        if op in LINEAR:
            terms: list[Any] = []
            coefs: list[float] = []
            offset = 0.0
            stack = list(zip(prev, LINEAR[op](len(prev)), strict=True))[::-1]
            while stack:
                u, c = stack.pop()
                if u in inlined:
                    sub = zip(u._prev, LINEAR[u._op](len(u._prev)), strict=True)
                    stack.extend((q, c * cq) for q, cq in reversed(list(sub)))
                elif u in fixed:
                    offset += c * u.data
                else:
                    terms.append(made[u])
                    coefs.append(c)
            node = Node("lin", terms, (coefs, offset), v not in frozen, 1 + max(map(level, terms)))
        else:
            if op not in FORWARD and op not in NARY and op not in BATCH_REDUCE:
                if op in registered_ops():
                    raise CompileError(f"compile: {name} ({where}): {no_numpy_form(op)}")
                raise CompileError(
                    f"compile: {name} ({where}) uses the operation {op!r}, which has "
                    "no array form for the compiler; run this loss eagerly"
                )
            inputs = list(map(made.__getitem__, prev))
            node = Node(op, inputs, v.arg, v not in frozen, 1 + max(map(level, inputs)))
        node.batched = v in batched
        made[v] = node
        nodes.append(node)
    outputs = [made[order[k]] for k in graph.outputs]
    return Analysis(nodes, outputs, constants, batch_leaves, columns)


_prev = attrgetter("_prev")
