"""From a traced graph to program nodes: constants folded, chains of sums folded.

Nodes that depend on no parameter and no input are constants (their traced value).
A ``+``/``-``/``neg``/``sum`` node used only by another such node is folded into it, so
Python's ``sum()`` over Values -- a chain of hundreds of ``+`` -- becomes one n-ary sum
(``lin``: ``offset + Σ coef·x``), found in linear time.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from chainrule.compiler.ops import FORWARD, LINEAR, NARY
from chainrule.compiler.tracing import Graph
from chainrule.custom import no_numpy_form, registered_ops
from chainrule.errors import CompileError

__all__ = ["Analysis", "Const", "Leaf", "Node", "analyse"]


@dataclass(eq=False, slots=True)
class Node:
    """A node of the program: its op, its inputs (program nodes or constants), its arg."""

    op: str
    inputs: list[Any]  # Node, Leaf or Const
    arg: Any = None  # k of x ** k; (coefs, offset) of "lin"
    needs_grad: bool = False
    level: int = 0
    pos: int = -1


@dataclass(eq=False, slots=True)
class Leaf:
    kind: str  # "param" or "input"
    index: int
    needs_grad: bool
    level: int = 0
    pos: int = -1


@dataclass(eq=False, slots=True)
class Const:
    """A number the program never changes (a node that depends on no parameter or input)."""

    value: float
    pos: int = -1
    needs_grad = False
    level = 0


@dataclass
class Analysis:
    nodes: list[Node]  # the program's nodes, each after its inputs
    outputs: list[Any]  # loss, then aux: Node, Leaf or Const
    constants: list[Const]


def analyse(graph: Graph, n_params: int, n_inputs: int, name: str, where: str) -> Analysis:
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
    linear = [varies[i] and v._op in LINEAR for i, v in enumerate(order)]
    inlined = [False] * n
    for i in range(n):
        if linear[i]:
            for k in prevs[i]:
                if linear[k] and uses[k] == 1:
                    inlined[k] = True

    made: list[Any] = [None] * n  # the program node, leaf or constant of each trace node
    nodes: list[Node] = []
    constants: list[Const] = []
    level = attrgetter("level")
    for i, v in enumerate(order):
        if not varies[i]:
            made[i] = const = Const(v.data, pos=n_params + n_inputs + len(constants))
            constants.append(const)
            continue
        if inlined[i]:
            continue
        kind = graph.fingerprint[i][0]
        if kind == "param":
            k = graph.fingerprint[i][1]
            made[i] = Leaf("param", k, True, pos=k)
            continue
        if kind == "input":
            k = graph.fingerprint[i][1]
            made[i] = Leaf("input", k, False, pos=n_params + k)
            continue
        if linear[i]:
            terms: list[Any] = []
            coefs: list[float] = []
            offset = 0.0
            stack = list(zip(prevs[i], LINEAR[v._op](len(prevs[i])), strict=True))[::-1]
            while stack:
                k, c = stack.pop()
                if inlined[k]:
                    sub = zip(prevs[k], LINEAR[order[k]._op](len(prevs[k])), strict=True)
                    stack.extend((q, c * cq) for q, cq in reversed(list(sub)))
                elif not varies[k]:
                    offset += c * order[k].data
                else:
                    terms.append(made[k])
                    coefs.append(c)
            node = Node("lin", terms, (coefs, offset))
        else:
            if v._op not in FORWARD and v._op not in NARY:
                if v._op in registered_ops():
                    raise CompileError(f"compile: {name} ({where}): {no_numpy_form(v._op)}")
                raise CompileError(
                    f"compile: {name} ({where}) uses the operation {v._op!r}, which has "
                    "no array form for the compiler; run this loss eagerly"
                )
            node = Node(v._op, list(map(made.__getitem__, prevs[i])), v._arg)
        node.needs_grad = grad_needed[i]
        node.level = 1 + max(map(level, node.inputs))
        made[i] = node
        nodes.append(node)
    return Analysis(nodes, [made[k] for k in graph.outputs], constants)
