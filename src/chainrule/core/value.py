"""The Value: a scalar in a computational graph, its operations, and ``backward()``.

Start here. :class:`Value` comes first: its arithmetic and functions, each making one
graph node (:func:`make_node`, the one place nodes are made), then copying and pickling,
then :meth:`Value.backward`, the chain rule. Every node records its output (``data``),
its inputs (``_prev``) and the operation's name (``_op``); the **local derivatives** of
every operation are not here but in one table, ``RULES`` in
:mod:`chainrule.core.rules` (``"tanh": ...`` is tanh's), which ``backward()`` looks up
by ``_op``. After the class: the number checks (:func:`is_real`, :func:`to_float`),
node creation (:func:`make_node`, :func:`lift`), the n-ary and two-input ops
(:func:`dot`, :func:`sum_values`, :func:`logsumexp`, :func:`maximum`, :func:`clamp`, ...)
and the tracing hook (:func:`set_detached_hook`) that ``chainrule.compile`` uses.

The import cycle: the rules are written with Values (on Values, a rule builds a graph,
which is what makes ``grad(grad(f))`` work), so :mod:`~chainrule.core.rules` imports this
module, and ``backward()`` needs the rules. The rules and the traversal
(:mod:`~chainrule.core.traverse`) are therefore imported at the **bottom** of this module,
once everything they use from here exists; ``backward()`` reads the rule table through
that module-level name. This reads top to bottom as the lecture does (the Value, then
its derivatives), and leaves no import inside a hot function.

Speed notes (measured in ``bench/``): nodes hold no closures, so a graph has no
reference cycles and is freed by reference counting alone, without waking the cyclic
garbage collector; ``__slots__`` keeps each node small; local derivatives are computed
during ``backward()`` from the stored data, so the forward pass stores nothing extra
(storing them was measured slower: a tuple more per node costs the collector's scans of
the live graph more than the rule call it saves).

This module needs only the standard library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from chainrule.core.grad_mode import GRAD_ENABLED
from chainrule.errors import (
    ChainruleError,
    DivisionByZeroError,
    DomainError,
    NumericOverflowError,
)

__all__ = [
    "DetachedHook",
    "Operand",
    "Value",
    "clamp",
    "dot",
    "fused_dot",
    "identity",
    "is_real",
    "lift",
    "lift_all",
    "logsumexp",
    "make_node",
    "maximum",
    "minimum",
    "set_detached_hook",
    "sum_values",
    "to_float",
]

#: What the arithmetic operators accept: a Value or a real number.
Operand: TypeAlias = "Value | int | float"

_isfinite = math.isfinite
_SQRT_HALF = math.sqrt(0.5)


class Value:
    """A scalar in a computational graph: its value ``data`` and the gradient ``grad``.

    >>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    >>> c = a * b + a
    >>> c.backward()
    >>> a.grad, b.grad
    (-2.0, 2.0)

    ``data`` and ``grad`` are plain floats and may be assigned (training loops write
    ``p.data -= lr * p.grad`` and ``p.grad = 0.0``). ``label`` names the node in
    drawings. ``_op`` is the operation that made the node (``""`` for a leaf) and
    ``_prev`` its inputs in order, duplicates kept.

    micrograd's and the lecture's forms work too. ``Value(data, (a, b), "+")`` (or
    ``_children=``, ``_op=``) makes a node of the op ``"+"`` with those inputs, in
    order: the op must be a row of the rule table (``chainrule.RULES``), whose local
    derivatives ``backward()`` uses. ``Value(2.0, "a")``, an older form, is
    ``Value(2.0, label="a")``. ``v._backward()`` is the lecture's manual step of
    backpropagation: it adds this node's local derivatives times ``v.grad`` to the
    ``grad`` of each input (``+=``, inputs not reset), from the rule table, and does
    nothing on a leaf. Nodes store no closure, so ``out._backward = ...`` is refused:
    a new op is made with ``chainrule.register_op`` (or ``@chainrule.op``).
    """

    __slots__ = ("_arg", "_op", "_prev", "data", "grad", "label")
    __array_ufunc__ = None  # NumPy scalars defer to Value's operators instead of wrapping us

    data: float
    grad: float
    label: str
    _op: str
    _prev: tuple[Value, ...]
    _arg: float | None  # the number in ``x ** number`` and ``number ** x``; else None
    _data: float  # the slot ``data`` under a second name (set below the class)

    def __init__(
        self,
        data: float,
        _children: Sequence[Value] | str = (),
        _op: str = "",
        label: str = "",
    ) -> None:
        children: object = _children
        if isinstance(_children, str) and not _op and not label:  # Value(2.0, "a")
            children, label = (), _children
        if not isinstance(label, str):
            raise TypeError(f"Value: label must be a str, got {type(label).__name__}")
        self.data = to_float(data)
        self.grad = 0.0
        self.label = label
        self._op = ""
        self._prev = ()
        self._arg = None
        if children or _op:
            prev = _checked_inputs(self.data, children, _op)
            if _grad_enabled():
                self._op, self._prev = _op, prev
            elif _on_detached is not None:  # as make_node: chainrule.compile checks it
                _on_detached(prev, "no_grad")

    @property
    def _backward(self) -> Callable[[], None]:
        """The lecture's manual step (``o._backward()``): see the class docs."""
        return self._local_step

    @_backward.setter
    def _backward(self, closure: object) -> None:
        raise AttributeError(
            "Value._backward cannot be assigned: chainrule's nodes store no closures; "
            "backward() takes each node's local derivatives from the rule table "
            "(chainrule.RULES) by its _op. Build the node from existing operations, or "
            "make a new op with chainrule.register_op (or @chainrule.op)"
        )

    def _local_step(self) -> None:
        """Add this node's local derivatives times ``self.grad`` to its inputs' grads."""
        prev = self._prev
        if not prev:
            return
        try:
            local = rule_of(self._op)([p.data for p in prev], self.data, self._arg)
            steps = [d * self.grad for d in local]
        except ArithmeticError:
            steps = [math.nan]
        if not all(map(_isfinite, steps)):
            at = _describe(self._op, [p.data for p in prev], self._arg)
            raise DomainError(f"_backward: the gradient is not finite at {self._op} ({at})")
        for p, step in zip(prev, steps, strict=True):
            p.grad += step

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label})"

    @property
    def arg(self) -> float | None:
        """The number an op keeps besides its inputs (read-only): ``k`` in ``x ** k``,
        ``c`` in ``c ** x``, the bound of ``clamp_min``/``clamp_max``, the tie of ``step``;
        ``None`` for every other node."""
        return self._arg

    # -- arithmetic ---------------------------------------------------------------
    # Each operator returns NotImplemented for an unsupported operand, so Python
    # raises its usual TypeError naming both types.

    def __add__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(self.data + o.data, (self, o), "+")

    def __radd__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(o.data + self.data, (o, self), "+")

    def __sub__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(self.data - o.data, (self, o), "-")

    def __rsub__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(o.data - self.data, (o, self), "-")

    def __mul__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(self.data * o.data, (self, o), "*")

    def __rmul__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else make_node(o.data * self.data, (o, self), "*")

    def __truediv__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else _divide(self, o)

    def __rtruediv__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else _divide(o, self)

    def __pow__(self, other: Operand) -> Value:
        if isinstance(other, Value):
            return _power(self, other)
        if not is_real(other):
            return NotImplemented
        return _power(self, to_float(other, "**"))

    def __rpow__(self, other: Operand) -> Value:
        if not is_real(other):
            return NotImplemented
        return _power(to_float(other, "**"), self)

    def __neg__(self) -> Value:
        return make_node(-self.data, (self,), "neg")

    def __pos__(self) -> Value:
        return self

    def __abs__(self) -> Value:
        """``|x|`` as an op; its derivative is ``sign(x)``, taken as 0 at 0 as in PyTorch."""
        return make_node(abs(self.data), (self,), "abs")

    def abs(self) -> Value:
        """``|x|``, the same node as ``abs(x)`` (PyTorch's ``Tensor.abs``)."""
        return self.__abs__()

    # -- reading the number ---------------------------------------------------------
    # float(v), round(v) and format(v, ".3f") read ``data``: a plain number, off the
    # graph (``chainrule.compile`` counts them as the caller's reads of ``.data``).

    def __float__(self) -> float:
        """``float(v)`` is ``v.data``."""
        return self.data

    def __round__(self, ndigits: int | None = None) -> float | int:
        """``round(v)`` is ``round(v.data)`` (an int); ``round(v, n)`` a float."""
        return round(self.data, ndigits)

    def __format__(self, spec: str) -> str:
        """``format(v, ".3f")`` formats ``data``; an empty spec gives ``str(v)``."""
        return format(self.data, spec) if spec else str(self)

    # -- comparisons ------------------------------------------------------------------
    # ``==`` and hashing stay by identity (Values are keys of sets and dicts).
    # Ordering is refused: ``if a < b`` would branch on data, out of the graph's sight.

    def __lt__(self, other: object) -> bool:
        raise _ordering_error("<", self, other)

    def __le__(self, other: object) -> bool:
        raise _ordering_error("<=", self, other)

    def __gt__(self, other: object) -> bool:
        raise _ordering_error(">", self, other)

    def __ge__(self, other: object) -> bool:
        raise _ordering_error(">=", self, other)

    # -- functions ----------------------------------------------------------------

    def exp(self) -> Value:
        """``e ** x``. Raises :class:`NumericOverflowError` above x ≈ 709.78."""
        try:
            return make_node(math.exp(self.data), (self,), "exp")
        except OverflowError:
            raise NumericOverflowError(
                f"exp: overflow: exp({self.data!r}) is too large for a float "
                "(exp overflows above x ≈ 709.78)"
            ) from None

    def log(self) -> Value:
        """Natural logarithm. Raises :class:`DomainError` unless ``x > 0``."""
        if self.data <= 0.0:
            raise DomainError(f"log: operand must be positive, got log({self.data!r})")
        return make_node(math.log(self.data), (self,), "log")

    def tanh(self) -> Value:
        """Hyperbolic tangent."""
        return make_node(math.tanh(self.data), (self,), "tanh")

    def relu(self) -> Value:
        """``max(0, x)``; its derivative at 0 is taken as 0, as in PyTorch."""
        return make_node(self.data if self.data > 0.0 else 0.0, (self,), "relu")

    def sigmoid(self) -> Value:
        """The logistic function ``1 / (1 + e^-x)``, computed without overflow."""
        x = self.data
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return make_node(s, (self,), "sigmoid")

    def softplus(self) -> Value:
        """``log(1 + e^x)``, a smooth relu; its derivative is ``sigmoid(x)``.

        Computed as ``max(x, 0) + log1p(e^-|x|)``: the exponent is never positive, so a
        large x does not overflow and a very negative x keeps full precision
        (``softplus(-30) ≈ 9.4e-14``). The branch is inside the float computation, so
        code built on ``softplus`` has none. PyTorch: ``torch.nn.functional.softplus``
        (which returns x itself above x = 20).
        """
        x = self.data
        return make_node(max(x, 0.0) + math.log1p(math.exp(-abs(x))), (self,), "softplus")

    # Trigonometric and hyperbolic functions, their inverses, and more logarithms and
    # exponentials: each is one node, its derivative one line of ``RULES`` (in
    # ``core/rules.py``). Outside its domain an operation raises DomainError naming it
    # and the operand, like log.

    def sin(self) -> Value:
        """``sin x``; its derivative is ``cos x``."""
        return make_node(math.sin(self.data), (self,), "sin")

    def cos(self) -> Value:
        """``cos x``; its derivative is ``-sin x``."""
        return make_node(math.cos(self.data), (self,), "cos")

    def tan(self) -> Value:
        """``tan x``; its derivative is ``1 + tan² x``."""
        return make_node(math.tan(self.data), (self,), "tan")

    def asin(self) -> Value:
        """``arcsin x`` for ``-1 <= x <= 1``; its derivative ``1 / √(1 - x²)`` is
        infinite at ±1 (``backward()`` there raises)."""
        if not -1.0 <= self.data <= 1.0:
            raise _domain_error("asin", self, "must be in [-1, 1]")
        return make_node(math.asin(self.data), (self,), "asin")

    def acos(self) -> Value:
        """``arccos x`` for ``-1 <= x <= 1``; its derivative ``-1 / √(1 - x²)`` is
        infinite at ±1."""
        if not -1.0 <= self.data <= 1.0:
            raise _domain_error("acos", self, "must be in [-1, 1]")
        return make_node(math.acos(self.data), (self,), "acos")

    def atan(self) -> Value:
        """``arctan x``; its derivative is ``1 / (1 + x²)``."""
        return make_node(math.atan(self.data), (self,), "atan")

    def sinh(self) -> Value:
        """``sinh x = (e^x - e^-x) / 2``; its derivative is ``cosh x``. Overflows above
        ``|x|`` ≈ 710."""
        return _unary(self, "sinh", math.sinh)

    def cosh(self) -> Value:
        """``cosh x = (e^x + e^-x) / 2``; its derivative is ``sinh x``. Overflows above
        ``|x|`` ≈ 710."""
        return _unary(self, "cosh", math.cosh)

    def asinh(self) -> Value:
        """``arsinh x = log(x + √(x² + 1))``; its derivative is ``1 / √(x² + 1)``."""
        return make_node(math.asinh(self.data), (self,), "asinh")

    def acosh(self) -> Value:
        """``arcosh x`` for ``x >= 1``; its derivative ``1 / √(x² - 1)`` is infinite at 1."""
        if not self.data >= 1.0:
            raise _domain_error("acosh", self, "must be at least 1")
        return make_node(math.acosh(self.data), (self,), "acosh")

    def atanh(self) -> Value:
        """``artanh x`` for ``-1 < x < 1`` (infinite at ±1); its derivative is
        ``1 / (1 - x²)``."""
        if not -1.0 < self.data < 1.0:
            raise _domain_error("atanh", self, "must be in (-1, 1)")
        return make_node(math.atanh(self.data), (self,), "atanh")

    def sqrt(self) -> Value:
        """``√x`` for ``x >= 0``; its derivative ``1 / (2√x)`` is infinite at 0."""
        if self.data < 0.0:
            raise _domain_error("sqrt", self, "must not be negative")
        return make_node(math.sqrt(self.data), (self,), "sqrt")

    def log2(self) -> Value:
        """Base-2 logarithm, for ``x > 0``; its derivative is ``1 / (x log 2)``."""
        if self.data <= 0.0:
            raise _domain_error("log2", self, "must be positive")
        return make_node(math.log2(self.data), (self,), "log2")

    def log10(self) -> Value:
        """Base-10 logarithm, for ``x > 0``; its derivative is ``1 / (x log 10)``."""
        if self.data <= 0.0:
            raise _domain_error("log10", self, "must be positive")
        return make_node(math.log10(self.data), (self,), "log10")

    def log1p(self) -> Value:
        """``log(1 + x)`` for ``x > -1``, exact for tiny x; its derivative is ``1 / (1 + x)``."""
        if self.data <= -1.0:
            raise _domain_error("log1p", self, "must be greater than -1")
        return make_node(math.log1p(self.data), (self,), "log1p")

    def expm1(self) -> Value:
        """``e^x - 1``, exact for tiny x; its derivative is ``e^x``. Overflows above
        x ≈ 709.78."""
        return _unary(self, "expm1", math.expm1)

    def exp2(self) -> Value:
        """``2 ** x``; its derivative is ``2^x log 2``. Overflows from x = 1024."""
        return _unary(self, "exp2", _exp2)

    def square(self) -> Value:
        """``x²``; its derivative is ``2x``."""
        return make_node(self.data * self.data, (self,), "square")

    def reciprocal(self) -> Value:
        """``1 / x``; its derivative is ``-1 / x²``. Raises DivisionByZeroError at 0."""
        if self.data == 0.0:
            raise DivisionByZeroError(f"reciprocal: division by zero: 1 / {self.data!r}")
        return make_node(1.0 / self.data, (self,), "reciprocal")

    def erf(self) -> Value:
        """The error function ``(2/√π) ∫₀ˣ e^(-t²) dt``; its derivative is
        ``(2/√π) e^(-x²)``."""
        return make_node(math.erf(self.data), (self,), "erf")

    # -- activations ----------------------------------------------------------------

    def gelu(self) -> Value:
        """``x Φ(x)``, Φ the standard normal CDF ``(1 + erf(x/√2)) / 2`` (PyTorch's
        exact ``gelu``); its derivative is ``Φ(x) + x φ(x)``, φ the normal density.
        Computed as ``x erfc(-x/√2) / 2``, which keeps full precision for negative x."""
        x = self.data
        return make_node(0.5 * x * math.erfc(-x * _SQRT_HALF), (self,), "gelu")

    def silu(self) -> Value:
        """``x σ(x)``, σ the sigmoid (also called swish); its derivative is
        ``σ(x) (1 + x (1 - σ(x)))``, i.e. ``σ(x) (1 + x - silu(x))``."""
        return make_node(self.data * _logistic(self.data), (self,), "silu")

    def clamp(self, min: float | None = None, max: float | None = None) -> Value:
        """``x`` limited to ``[min, max]``: see :func:`clamp`."""
        return clamp(self, min, max)

    def __mod__(self, other: Operand) -> Value:
        """``x % y`` with the sign of ``y``, as Python's ``%`` and ``torch.remainder``:
        ``x - y floor(x / y)``. Its derivatives are 1 for x and ``-floor(x / y)`` for y."""
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else _remainder(self, o)

    def __rmod__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else lift(other)
        return NotImplemented if o is None else _remainder(o, self)

    # -- copying and pickling -------------------------------------------------------
    # Without recursion, so that deep graphs work; a node used twice stays one node.

    def __copy__(self) -> Value:
        """A new node with the same fields, sharing its inputs (``_prev``) with ``self``.
        A copy of a leaf is a new leaf holding the same number (reported to
        ``chainrule.compile``, which cannot replay it)."""
        if _on_detached is not None and not self._prev:
            _on_detached((self,), "copy")
        return _restore(
            self.data, self.grad, self.label, self._op, self._arg, self._prev, type(self)
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Value:
        """A copy of the whole graph below ``self``. Nodes already copied (by this
        ``deepcopy`` call, e.g. from another Value in the same list) are reused."""
        for node in topological_order(self):
            if id(node) not in memo:
                if _on_detached is not None and not node._prev:
                    _on_detached((node,), "copy")
                prev = tuple([memo[id(p)] for p in node._prev])
                memo[id(node)] = _restore(
                    node.data, node.grad, node.label, node._op, node._arg, prev, type(node)
                )
        return memo[id(self)]  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the graph below ``self`` as flat records, inputs first.

        The leaves (parameters, inputs, constants) are pickled as objects, so pickle's
        memo keeps them shared with the rest of what is pickled (a model's parameters
        stay the model's). Inner nodes are records; a node used twice is restored once.
        Inner nodes of two Values pickled side by side are not shared between them.
        """
        if not self._prev:
            return _restore, (self.data, self.grad, self.label, self._op, self._arg, (), type(self))
        order = topological_order(self)
        leaves = [n for n in order if not n._prev]
        inner = [n for n in order if n._prev]
        index = {n: i for i, n in enumerate(leaves + inner)}
        records = [
            (n.data, n.grad, n.label, n._op, n._arg, tuple([index[p] for p in n._prev]))
            for n in inner
        ]
        return _restore_graph, (leaves, records)

    # -- backpropagation ----------------------------------------------------------

    def backward(self) -> None:
        """Backpropagate: fill ``grad`` of every node this Value depends on.

        Seeds this Value's gradient with 1, then applies the chain rule in reverse
        topological order (computed without recursion, so graphs of any depth work).

        Gradients **accumulate** into leaves (Values you made yourself, such as
        parameters), as in PyTorch: call ``zero_grad()`` or set ``p.grad = 0.0``
        between steps. Intermediate nodes get this pass's gradient afresh.

        A gradient that is not a finite number (a derivative too large for a float,
        such as that of ``1/x`` at ``x = 1e-200``, or ``inf * 0``) is an error naming
        the operation and its operands, never a silent ``inf`` or ``nan``; the grads
        already filled are then left as they are. Numbers lifted into the graph (the
        ``2.0`` in ``x * 2.0``) are not checked: nobody asked for their gradients.
        """
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0
        rules = _TABLE  # the rule table itself (RULES is its read-only view)
        node = self
        try:
            for node in reversed(order):
                prev = node._prev
                g = node.grad  # final: every node that uses this one is done
                if g - g and type(node) is not _Constant:  # inf - inf, nan - nan: nan
                    raise _gradient_error(order, node)
                if not prev:
                    continue
                rule = rules[node._op]
                n = len(prev)
                # Nearly all nodes have one or two inputs: those are written out, with
                # no list of the inputs' data and no loop over them.
                if n == 2:
                    a, b = prev
                    da, db = rule((a.data, b.data), node.data, node._arg)
                    a.grad += da * g
                    b.grad += db * g
                elif n == 1:
                    a = prev[0]
                    (da,) = rule((a.data,), node.data, node._arg)
                    a.grad += da * g
                else:
                    local = rule([p.data for p in prev], node.data, node._arg)
                    for p, d in zip(prev, local, strict=True):
                        p.grad += d * g
        except ChainruleError:
            raise
        except KeyError:
            if node._op not in rules:  # a user-defined op unregistered since
                raise unknown_op_error(node._op) from None
            raise
        except ArithmeticError as exc:  # e.g. the slope of x ** 0.5 at x = 0: infinite
            at = _describe(node._op, [p.data for p in node._prev], node._arg)
            start = f"backward: the gradient is not finite: a derivative of {node._op} at {at}"
            if isinstance(exc, OverflowError):
                raise NumericOverflowError(f"{start} is too large for a float") from None
            raise DomainError(f"{start} is infinite (a division by zero)") from None


#: ``data``'s own slot under a second name, read by the engine's hot loop ``fused_dot``. While
#: ``chainrule.compile`` traces, ``Value.data`` is a watched (Python) descriptor that
#: lets the engine's reads through unnoted; reading the slot as ``_data`` spares those
#: reads the watch entirely. Nothing but the engine reads ``_data``.
Value._data = Value.__dict__["data"]

# -- numbers in, errors out -----------------------------------------------------------


def is_real(x: object) -> bool:
    """True for ints, floats, bools and NumPy real scalars; False for everything else."""
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):  # the ABC check last
        return True
    dtype = getattr(x, "dtype", None)  # NumPy bool_ is not registered as numbers.Real
    return dtype is not None and getattr(x, "ndim", 1) == 0 and dtype.kind in "biuf"


def to_float(x: object, where: str = "Value") -> float:
    """Convert a real number to a finite Python float, or raise a clear error."""
    if type(x) is not float:
        if not is_real(x):
            raise TypeError(
                f"{where}: expected a real number (int, float, bool or NumPy scalar), "
                f"got {type(x).__name__}: {x!r:.60}"
            )
        try:
            x = float(x)  # type: ignore[arg-type]  # a numbers.Real or NumPy scalar
        except OverflowError:
            raise NumericOverflowError(f"{where}: {x!r:.60} is too large for a float") from None
    if not _isfinite(x):
        what = "data must be" if where == "Value" else "expected"
        nan = " (not a number)" if x != x else ""
        raise DomainError(f"{where}: {what} a finite number, got {x}{nan}")
    return x


def _checked_inputs(data: float, children: object, op: object) -> tuple[Value, ...]:
    """The inputs of ``Value(data, children, op)`` (micrograd's form), checked: a tuple
    or list of Values, in order, and an op of the rule table that takes that many."""
    if not isinstance(children, (tuple, list)) or not all(isinstance(c, Value) for c in children):
        raise TypeError(
            "Value: _children must be a tuple of Values (the op's inputs, in order), "
            f"got {children!r:.60}"
        )
    if not isinstance(op, str) or op not in _TABLE or not children:
        raise _node_form_error(op, children)
    try:
        local = _TABLE[op]([c.data for c in children], data, None)
        fits = len(local) == len(children)
    except ArithmeticError:  # a derivative infinite here: backward() says so
        fits = True
    except (TypeError, IndexError, ValueError):  # another arity, or a kept number
        fits = False
    if not fits:
        raise _node_form_error(op, children)
    return tuple(children)


def _node_form_error(op: object, children: Sequence[Value]) -> ChainruleError:
    """Why ``Value(data, children, op)`` cannot be a node: no rule, or not of that form."""
    if not isinstance(op, str) or not op:
        why = f"the op {op!r} is not a name of chainrule.RULES"
    elif op not in _TABLE:
        why = f"the op {op!r} has no derivative rule in chainrule.RULES"
    elif not children:
        why = f"the op {op!r} needs its inputs (_children)"
    else:
        why = f"the op {op!r} is not made from {len(children)} input(s) alone"
    return ChainruleError(
        f"Value: cannot make a node this way: {why}. chainrule takes local derivatives "
        "from its rule table by _op, not from a _backward closure: write the operation "
        "itself (a + b, a.tanh(), ...), or make a new op with chainrule.register_op "
        "(or @chainrule.op)"
    )


def _ordering_error(op: str, a: Value, b: object) -> TypeError:
    """Why ``a < b`` is refused, and what to write instead."""
    shown = f"{b.data!r}" if isinstance(b, Value) else f"{b!r:.40}"
    return TypeError(
        f"{op}: Values cannot be compared ({a.data!r} {op} {shown}): a comparison would "
        "branch on their data, which the graph does not record, so backward(), grad() and "
        "compile() could not see the choice. Compare the numbers explicitly "
        f"(a.data {op} b.data) if that is what you mean; for the larger or smaller of two "
        "Values (max(a, b), min(a, b)) write chainrule.maximum(a, b) or "
        "chainrule.minimum(a, b), which the graph records; or use relu() or abs()."
    )


def _describe(op: str, args: Sequence[float], arg: float | None) -> str:
    """Write an operation with its operands the way a person would, e.g. ``3.0 / 0.0``."""
    if op == "rpow":
        return f"{arg!r} ** {args[0]!r}"
    if op == "**":
        return f"{args[0]!r} ** {arg!r}"
    if len(args) == 2 and op in _INFIX:
        return f"{args[0]!r} {_INFIX[op]} {args[1]!r}"
    shown = ", ".join(repr(a) for a in args[:6]) + (", ..." if len(args) > 6 else "")
    return f"{op}({shown})" if arg is None else f"{op}({shown}, {arg!r})"


#: The binary operations written between their operands, and how.
_INFIX = {"+": "+", "-": "-", "*": "*", "/": "/", "pow": "**", "%": "%"}

# -- building nodes -------------------------------------------------------------------


_new = object.__new__
_grad_enabled = GRAD_ENABLED.get  # grad mode of this thread or task (chainrule.grad_mode)

#: The tracing hook's type: ``hook(sources, how)``, see :func:`set_detached_hook`.
DetachedHook: TypeAlias = "Callable[[tuple[Value, ...], str], None]"

_on_detached: DetachedHook | None = None  # set by set_detached_hook; read on hot paths


def set_detached_hook(hook: DetachedHook | None) -> DetachedHook | None:
    """Install the tracing hook ``hook`` (``None`` clears it); returns the one it replaces.

    The engine calls ``hook(sources, how)`` whenever a plain number is computed from the
    Values ``sources`` out of the graph's sight, with ``how`` saying how:

    - ``"no_grad"``: an operation's result made under ``no_grad()`` (no inputs recorded);
    - ``"copy"``: a leaf copied by ``copy.copy`` or ``copy.deepcopy`` (a new leaf, the
      same number);
    - ``"case"``: a local derivative given case by case (``x ** y`` at 0, ``x % y``'s
      ``floor(x / y)``), a plain number computed by ``gradients()``.

    A program replayed from a trace would freeze such a number, so ``chainrule.compile``
    (through :class:`chainrule.core.watch.Watch`, which sets and clears this hook) and
    :func:`chainrule.grad` refuse it. One hook at a time, for the whole process; with
    none set (the usual case) the engine pays one ``is None`` test per such event.
    """
    global _on_detached
    if hook is not None and not callable(hook):
        raise TypeError(f"set_detached_hook: hook must be callable or None, got {hook!r:.60}")
    previous, _on_detached = _on_detached, hook
    return previous


def make_node(data: float, prev: tuple[Value, ...], op: str, arg: float | None = None) -> Value:
    """Make the result of an operation; the one place where graph nodes are created.

    ``data`` is the result (a float: not finite is an error naming ``op`` and its
    operands), ``prev`` the inputs, ``op`` the name under which ``RULES`` holds the local
    derivatives, ``arg`` a number the op keeps besides its inputs (:attr:`Value.arg`).
    Under ``no_grad()`` the node records no inputs."""
    if not _isfinite(data):
        raise _result_error(data, prev, op, arg)
    v: Value = _new(Value)
    v.data = data
    v.grad = 0.0
    v.label = ""
    if _grad_enabled():
        v._op = op
        v._prev = prev
    else:
        v._op = ""
        v._prev = ()
        if _on_detached is not None and prev:  # chainrule.compile checks no_grad() use
            _on_detached(prev, "no_grad")
    v._arg = arg
    return v


def _restore(
    data: float,
    grad: float,
    label: str,
    op: str,
    arg: float | None,
    prev: tuple[Value, ...] = (),
    cls: type[Value] | None = None,
) -> Value:
    """A node with exactly these fields (for copies and pickles: nothing is recomputed);
    ``cls`` keeps a lifted constant a constant."""
    v: Value = _new(cls or Value)
    v.data = data
    v.grad = grad
    v.label = label
    v._op = op
    v._prev = prev
    v._arg = arg
    return v


def _restore_graph(
    leaves: list[Value],
    records: list[tuple[float, float, str, str, float | None, tuple[int, ...]]],
) -> Value:
    """The last node of a graph pickled by ``Value.__reduce__``, rebuilt without recursion."""
    nodes = list(leaves)
    for data, grad, label, op, arg, prev in records:
        nodes.append(_restore(data, grad, label, op, arg, tuple([nodes[i] for i in prev])))
    return nodes[-1]


class _Constant(Value):
    """A number lifted into the graph by an operator (the ``2.0`` in ``x * 2.0``): a
    leaf like any other, except that ``backward()`` does not check its gradient, which
    nobody asked for (it may overflow where the inputs' gradients do not)."""

    __slots__ = ()


def _result_error(data: float, prev: tuple[Value, ...], op: str, arg: float | None) -> Exception:
    """Why an operation's result is not finite: an operand that is not (a ``data`` set
    by hand to nan or inf), or an overflow."""
    args = [p.data for p in prev]
    shown = _describe(op, args, arg)
    bad = next((a for a in args if not _isfinite(a)), None)
    if bad is not None:
        return DomainError(
            f"{op}: an operand is not a finite number: {shown} (a Value's data was set to {bad!r})"
        )
    if data != data:
        return DomainError(f"{op}: {shown} is undefined (nan)")
    return NumericOverflowError(f"{op}: overflow: {shown} is too large for a float")


def lift(x: object) -> Value | None:
    """A Value as it is; a number as a constant leaf (the ``2.0`` in ``x * 2.0``, which
    ``backward()`` gives no checked gradient); None for anything else."""
    if isinstance(x, Value):
        return x
    if not is_real(x):
        return None
    c: Value = _new(_Constant)
    c.data = to_float(x, "operand")
    c.grad = 0.0
    c.label = ""
    c._op = ""
    c._prev = ()
    c._arg = None
    return c


def _divide(a: Value, b: Value) -> Value:
    if b.data == 0.0:
        raise DivisionByZeroError(f"/: division by zero: {a.data!r} / {b.data!r}")
    return make_node(a.data / b.data, (a, b), "/")


def _power(base: Value | float, exponent: Value | float) -> Value:
    """``base ** exponent`` with the domain checked; at least one of them is a Value.

    A number exponent is kept in ``_arg`` (op ``**``, one input); so is a number base
    (op ``rpow``, the exponent its one input): a number is no input of the graph, so no
    derivative is ever computed with respect to it. A Value base and a Value exponent
    make the op ``pow``, with two inputs.
    """
    x = base.data if isinstance(base, Value) else base
    y = exponent.data if isinstance(exponent, Value) else exponent
    if x == 0.0 and y < 0.0:
        raise DivisionByZeroError(f"**: 0.0 cannot be raised to the negative power {y!r}")
    if x < 0.0:
        if isinstance(exponent, Value):
            raise DomainError(
                f"**: {x!r} ** {y!r}: a negative base needs a plain-number exponent "
                "(the derivative with respect to the exponent involves log(base))"
            )
        if not y.is_integer():
            raise DomainError(
                f"**: {x!r} ** {y!r} has no real value: a negative base needs an integer exponent"
            )
    try:
        out = x**y
    except OverflowError:
        raise NumericOverflowError(
            f"**: overflow: {x!r} ** {y!r} is too large for a float"
        ) from None
    if not isinstance(base, Value):
        return make_node(out, (exponent,), "rpow", base)  # type: ignore[arg-type]
    if isinstance(exponent, Value):
        return make_node(out, (base, exponent), "pow")
    return make_node(out, (base,), "**", exponent)


def lift_all(xs: Sequence[Operand], who: str) -> tuple[Value, ...]:
    """Each of ``xs`` as a Value (numbers lifted to constants), or a ``TypeError`` naming
    ``who`` and the first one that is neither."""
    out = tuple(x if type(x) is Value else lift(x) for x in xs)
    if None in out:
        bad = next(x for x, v in zip(xs, out, strict=True) if v is None)
        raise TypeError(f"{who}: expected Values or real numbers, got {type(bad).__name__}")
    return out  # type: ignore[return-value]


def _domain_error(op: str, x: Value, need: str) -> DomainError:
    return DomainError(f"{op}: operand {need}, got {op}({x.data!r})")


def _unary(x: Value, op: str, fn: Callable[[float], float]) -> Value:
    """``fn(x.data)`` as the node ``op``; an overflow is an error naming the op."""
    try:
        return make_node(fn(x.data), (x,), op)
    except OverflowError:
        raise NumericOverflowError(
            f"{op}: overflow: {op}({x.data!r}) is too large for a float"
        ) from None


def _logistic(x: float) -> float:
    """``1 / (1 + e^-x)`` on a float, without overflow (``silu``'s forward)."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _exp2(x: float) -> float:
    return math.pow(2.0, x)


def _remainder(a: Value, b: Value) -> Value:
    if b.data == 0.0:
        raise DivisionByZeroError(f"%: division by zero: {a.data!r} % {b.data!r}")
    return make_node(a.data % b.data, (a, b), "%")


def maximum(a: Operand, b: Operand) -> Value:
    """The larger of ``a`` and ``b`` (``torch.maximum``). Its gradient goes to the larger
    one; at a tie ``a == b`` it is split, half to each, as in PyTorch."""
    x, y = lift_all((a, b), "maximum")
    return make_node(x.data if x.data >= y.data else y.data, (x, y), "maximum")


def minimum(a: Operand, b: Operand) -> Value:
    """The smaller of ``a`` and ``b`` (``torch.minimum``). Its gradient goes to the
    smaller one; at a tie it is split, half to each, as in PyTorch."""
    x, y = lift_all((a, b), "minimum")
    return make_node(x.data if x.data <= y.data else y.data, (x, y), "minimum")


def clamp(x: Operand, min: float | None = None, max: float | None = None) -> Value:
    """``x`` limited to ``[min, max]`` (``torch.clamp``); either bound may be left out.

    The bounds are plain numbers, as in ``torch.clamp(x, min=0.0, max=1.0)``: each is
    one node, ``clamp_min`` (``max(x, min)``) then ``clamp_max`` (``min(·, max)``), with
    the bound kept in ``_arg``. The derivative is 1 where ``min <= x <= max`` (bounds
    included, as in PyTorch) and 0 outside; if ``min > max`` the result is ``max``
    everywhere, with derivative 0. For a Value bound, use :func:`maximum` and
    :func:`minimum`.
    """
    (v,) = lift_all((x,), "clamp")
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    for name, bound in (("min", min), ("max", max)):
        if isinstance(bound, Value):
            raise TypeError(
                f"clamp: {name} must be a number, got a Value; for a Value bound use "
                "maximum(x, lo) and minimum(x, hi)"
            )
    if min is not None:
        lo = to_float(min, "clamp")
        v = make_node(v.data if v.data >= lo else lo, (v,), "clamp_min", lo)
    if max is not None:
        hi = to_float(max, "clamp")
        v = make_node(v.data if v.data <= hi else hi, (v,), "clamp_max", hi)
    return v


def dot(w: Sequence[Operand], x: Sequence[Operand], bias: Operand = 0.0) -> Value:
    """``w · x + bias`` = ``bias + Σ w_i x_i`` as **one** node (a neuron's weighted sum).

    The same value and gradients as the chain of ``*`` and ``+`` nodes it replaces
    (``∂/∂w_i = x_i``, ``∂/∂x_i = w_i``, ``∂/∂bias = 1``), with one node instead of
    ``2n``: PyTorch's ``Linear`` is likewise one op. Its inputs are ``(*w, *x, bias)``.
    """
    if len(w) != len(x):
        raise ValueError(f"dot: w has {len(w)} entries but x has {len(x)}")
    return fused_dot(lift_all(w, "dot"), lift_all(x, "dot"), lift_all((bias,), "dot")[0])


def fused_dot(w: Sequence[Value], x: Sequence[Value], b: Value) -> Value:
    """:func:`dot` without its input checks, for inputs already known to be Values of
    equal length (``nn``'s hot path: a neuron's weighted sum)."""
    data = b._data + sum([wi._data * xi._data for wi, xi in zip(w, x, strict=True)])
    return make_node(data, (*w, *x, b), "dot")


def sum_values(values: Sequence[Operand]) -> Value:
    """``Σ values`` as **one** node; each input's local derivative is 1."""
    vs = lift_all(values, "sum_values")
    if not vs:
        raise ValueError("sum_values: nothing to add")
    data = [v.data for v in vs]
    try:
        total = math.fsum(data)
    except (OverflowError, ValueError):  # fsum's own: "intermediate overflow", inf - inf
        total = math.inf
    return make_node(total, vs, "sum")


def logsumexp(values: Sequence[Operand]) -> Value:
    """``log Σ exp(z_i)`` as **one** node, stable for any inputs (``torch.logsumexp``).

    Computed as ``m + log(Σ exp(z_i - m))`` with ``m = max z``: every exponent is at
    most 0, so nothing overflows, and the sum is at least 1. Each input's local
    derivative is its softmax weight, ``∂/∂z_i = exp(z_i - out)``. ``log_softmax`` and
    the cross-entropy losses are built on it without ever reading ``data``.
    """
    zs = lift_all(values, "logsumexp")
    if not zs:
        raise ValueError("logsumexp: no values given")
    data = [z.data for z in zs]
    m = max(data)
    # The max's own term is exactly 1: add up the others (rounded once) and use log1p,
    # so that tiny terms still count when one input dominates.
    others = math.fsum([*[math.exp(d - m) for d in data], -1.0])
    return make_node(m + math.log1p(others), zs, "logsumexp")


def identity(x: Value) -> Value:
    """A new node equal to ``x``: lets :func:`chainrule.grad` treat ``x`` as a fresh input."""
    return make_node(x.data, (x,), "id")


def _gradient_error(order: list[Value], bad: Value) -> ChainruleError:
    """The error for ``bad``, whose gradient is not finite: names the operation whose
    contribution made it so (found again, after the fact: only failures pay for it)."""
    for node in reversed(order):
        if node is bad:
            break
        if not node._prev:
            continue
        g = node.grad
        local = rule_of(node._op)([p.data for p in node._prev], node.data, node._arg)
        for i, (p, d) in enumerate(zip(node._prev, local, strict=True), start=1):
            if type(p) is _Constant or _isfinite(d * g):
                continue
            at = _describe(node._op, [q.data for q in node._prev], node._arg)
            where = f"with respect to its input {i} ({p.data!r})"
            if _isfinite(d):  # g is finite (checked): the product overflowed
                return NumericOverflowError(
                    f"backward: the gradient overflows at {node._op} ({at}): the derivative "
                    f"{where}, {d!r}, times the gradient {g!r} is too large for a float"
                )
            if d == d:  # +-inf
                return NumericOverflowError(
                    f"backward: the gradient is not finite: the derivative of {node._op} at "
                    f"{at} {where} is {d!r} (too large for a float)"
                )
            return DomainError(
                f"backward: the gradient is not finite: the derivative of {node._op} at "
                f"{at} {where} is undefined (nan)"
            )
    what = f"{bad._op} ({_describe(bad._op, [p.data for p in bad._prev], bad._arg)})"
    return NumericOverflowError(
        f"backward: the gradient of {what if bad._prev else repr(bad)} is not finite "
        f"({bad.grad!r}): its contributions add up to more than a float holds"
    )


# Pickles name a Value's class and the two restoring functions by module: they keep
# naming them ``chainrule.engine.*`` (the lecture's import path, which re-exports them),
# so that pickles are the same bytes as before the engine moved into ``chainrule.core``,
# and load in either version.
for _pickled in (Value, _Constant, _restore, _restore_graph):
    _pickled.__module__ = "chainrule.engine"
del _pickled

# The rule table and the traversal use Value themselves (see the module docs), so they
# are imported last, when every name they take from here exists.
from chainrule.core.rules import _TABLE, rule_of, unknown_op_error  # noqa: E402
from chainrule.core.traverse import topological_order  # noqa: E402
