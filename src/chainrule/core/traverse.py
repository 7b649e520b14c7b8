"""Walking the graph: :func:`topological_order`, :func:`gradients`, :func:`backward_steps`.

:func:`topological_order` puts every node a Value depends on after its inputs, without
recursion (``backward()``, copying, pickling and drawing all start from it).
:func:`gradients` is the chain rule written with Value operations, so that gradients
are graphs themselves (``grad(grad(f))``); :func:`backward_steps` is ``backward()`` one
node at a time, each chain-rule term spelled out (the explorer shows it). Both take the
local derivatives from the one rule table, :data:`chainrule.core.rules.RULES`.

This module needs only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import isfinite as _isfinite
from typing import NamedTuple

from chainrule.core.rules import rule_of
from chainrule.core.value import Value, _Constant, _gradient_error, lift

__all__ = ["BackwardStep", "BackwardTerm", "backward_steps", "gradients", "topological_order"]


def topological_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, each after all of its inputs, ``root`` last.

    Iterative depth-first search: no recursion, so a chain of a million nodes is fine.
    A node is pushed again under a ``None`` marker; when the marker comes off the
    stack, all of the node's inputs are done and the node itself is.
    """
    order: list[Value] = []
    visited: set[Value] = set()
    stack: list[Value | None] = [root]
    push, pop, visit, emit = stack.append, stack.pop, visited.add, order.append
    push_all = stack.extend
    while stack:
        node = pop()
        if node is None:
            emit(pop())  # type: ignore[arg-type]
        elif node not in visited:
            visit(node)
            push(node)
            push(None)
            push_all(node._prev)  # in C; inputs already visited are skipped when popped
    return order


def gradients(root: Value, wrt: Sequence[Value]) -> list[Value]:
    """The gradients ``∂root/∂w`` for each ``w`` in ``wrt``, as Values with graphs of their own.

    The chain rule of :meth:`Value.backward`, written with Value operations: each node
    ``n`` gets an adjoint ``ḡ(n) = ∂root/∂n``, starting from ``ḡ(root) = 1`` and
    summing over the nodes ``m`` that use ``n`` as an input::

        ḡ(n) = Σ_m  ḡ(m) · ∂m/∂n

    Each local derivative ``∂m/∂n`` comes from the rule table and each product is a
    Value operation, so the results can be differentiated again (``grad(grad(f))``).
    Only nodes on a path from ``root`` down to some ``w`` are visited: a node that
    depends on no ``w`` contributes nothing, so its rule is never called. A ``w`` that
    ``root`` does not depend on gets the constant 0. ``grad`` attributes are left
    untouched. Under :func:`no_grad` the results are plain leaves with the right values.

    What is checked: the graph is given already built, so ``gradients`` cannot know how
    the code that built it got its numbers. A number read from a Value there (``.data``,
    ``float()``, ``math.sin(x)``) is a constant to it, whose derivative is silently
    missing; :func:`chainrule.grad` and ``value_and_grad`` run the function themselves
    and refuse such reads (:class:`~chainrule.errors.DataReadError`). The local
    derivatives it builds are graph nodes, those that jump (relu's, abs's, maximum's,
    clamp's) included, so its results are right wherever they are evaluated again
    (``chainrule.compile`` replays them); only ``%``'s in y and ``x ** y``'s at x = 0 are
    plain numbers, given case by case, which ``compile`` refuses to freeze. A
    user-defined op's derivative that reads its input's number gives a constant here:
    right as a first derivative, and refused by an enclosing ``grad`` or ``compile``.

    >>> x, y = Value(3.0), Value(-2.0)
    >>> dx, dy = gradients(x * x * y, [x, y])
    >>> dx.data, dy.data  # 2xy, x²
    (-12.0, 9.0)
    """
    if not isinstance(root, Value):
        raise TypeError(f"gradients: root must be a Value, got {type(root).__name__}")
    for i, w in enumerate(wrt):
        if not isinstance(w, Value):
            raise TypeError(f"gradients: wrt[{i}] must be a Value, got {type(w).__name__}")
    # Keep the nodes that depend on some w (inputs come first in topological order).
    targets = set(wrt)
    live: set[Value] = set()
    path: list[Value] = []
    for node in topological_order(root):
        if node in targets or not live.isdisjoint(node._prev):
            live.add(node)
            path.append(node)
    adjoint: dict[Value, Value] = {root: lift(1.0)}  # type: ignore[dict-item]
    for node in reversed(path):
        g = adjoint.get(node)
        if g is None or not node._prev:
            continue
        local = rule_of(node._op)(node._prev, node, node._arg)
        for p, d in zip(node._prev, local, strict=True):
            if p in live:
                contribution = d * g
                before = adjoint.get(p)
                adjoint[p] = contribution if before is None else before + contribution
    zero = lift(0.0)
    return [adjoint.get(w, zero) for w in wrt]  # type: ignore[misc]


class BackwardTerm(NamedTuple):
    """One chain-rule term of a :class:`BackwardStep`: what a node passes to one input.

    ``contribution = local * upstream`` is added to the input's gradient, which goes
    from ``before`` to ``after``; an input used twice (``a * a``, or by two nodes)
    gets several terms, and ``before`` shows the running sum.
    """

    input: Value
    local: float  # ∂node/∂input, from the rule table
    upstream: float  # ∂root/∂node: the node's final gradient
    contribution: float
    before: float
    after: float


class BackwardStep(NamedTuple):
    """One node of a backward pass: the node, its final gradient and its terms (none for a leaf)."""

    node: Value
    grad: float
    terms: tuple[BackwardTerm, ...]


def backward_steps(root: Value) -> Iterator[BackwardStep]:
    """:meth:`Value.backward`, one node at a time: for seeing the chain rule at work.

    Yields a :class:`BackwardStep` for every node ``root`` depends on, in reverse
    topological order (``root`` first): when a node comes up, every node that uses it
    is done, so its gradient is final; the step then adds ``local * upstream`` to each
    input's gradient, with ``local`` from the same rule table ``backward()`` uses.
    Gradients are set exactly as ``backward()`` sets them (seeded with 1 at ``root``,
    intermediate nodes afresh, leaves accumulating), as each step is taken; stopping
    early leaves a partial pass.

    >>> a = Value(3.0, label="a")
    >>> steps = list(backward_steps(a * a))
    >>> [(t.local, t.before, t.after) for t in steps[0].terms]
    [(3.0, 0.0, 3.0), (3.0, 3.0, 6.0)]
    >>> a.grad
    6.0
    """
    if not isinstance(root, Value):
        raise TypeError(f"backward_steps: root must be a Value, got {type(root).__name__}")
    order = topological_order(root)
    for node in order:
        if node._prev:
            node.grad = 0.0
    root.grad += 1.0
    for node in reversed(order):
        g = node.grad
        if not _isfinite(g) and type(node) is not _Constant:
            raise _gradient_error(order, node)
        terms: list[BackwardTerm] = []
        if node._prev:
            local = rule_of(node._op)([p.data for p in node._prev], node.data, node._arg)
            for p, d in zip(node._prev, local, strict=True):
                before = p.grad
                p.grad = before + d * g
                terms.append(BackwardTerm(p, d, g, d * g, before, p.grad))
        yield BackwardStep(node, g, tuple(terms))
