"""The baseline for the ``gpt`` workload: the smallest fast scalar ``Value`` one writes.

Written for this benchmark in the style of the single-file scalar GPTs: ``__slots__``,
each op stores its local derivatives in the forward pass, no closures, no checks of
any kind, and ``-``, ``/`` built from ``+``, ``*`` and ``**``. ``backward()`` sorts the
graph with a recursive depth-first search, as such code does (a module-level function,
not a nested one: a nested recursive function is a reference cycle that would keep
each step's graph alive until the cyclic collector runs).
"""

from __future__ import annotations

import math
from typing import Any


class Value:
    __slots__ = ("_children", "_local_grads", "data", "grad")

    def __init__(self, data: float, children: tuple[Any, ...] = (), local_grads: Any = ()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other: Any) -> Value:
        o = other if isinstance(other, Value) else Value(other)
        return Value(self.data + o.data, (self, o), (1.0, 1.0))

    def __mul__(self, other: Any) -> Value:
        o = other if isinstance(other, Value) else Value(other)
        return Value(self.data * o.data, (self, o), (o.data, self.data))

    def __pow__(self, k: float) -> Value:
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self) -> Value:
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def relu(self) -> Value:
        positive = self.data > 0.0
        return Value(self.data if positive else 0.0, (self,), (1.0 if positive else 0.0,))

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Any) -> Value:
        return self + (-other)

    def __rsub__(self, other: Any) -> Value:
        return other + (-self)

    def __truediv__(self, other: Any) -> Value:
        return self * other**-1

    def __rtruediv__(self, other: Any) -> Value:
        return other * self**-1

    def backward(self) -> None:
        order: list[Value] = []
        _visit(self, set(), order)
        self.grad = 1.0
        for v in reversed(order):
            for child, local in zip(v._children, v._local_grads):  # noqa: B905
                child.grad += local * v.grad


def _visit(v: Value, seen: set[Value], order: list[Value]) -> None:
    """Depth-first: append ``v`` to ``order`` after everything it depends on."""
    if v not in seen:
        seen.add(v)
        for child in v._children:
            _visit(child, seen, order)
        order.append(v)
