"""The autograd engine: :class:`Value`, its operations and ``backward()``.

Every operation on Values records a node: its output (``data``), its inputs
(``_prev``) and the operation's name (``_op``). The **local derivatives** of every
operation -- how much its output moves per unit move of each input -- are written
once, in the table ``_RULES`` below. ``backward()`` visits the nodes in reverse
topological order and hands each input ``local derivative * grad of the output``,
adding (``+=``) where several paths meet. That loop is the chain rule, and it is the
whole engine.

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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeAlias

from chainrule.errors import (
    ChainruleError,
    DivisionByZeroError,
    DomainError,
    NumericOverflowError,
)
from chainrule.grad_mode import (
    GRAD_ENABLED,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "BackwardStep",
    "BackwardTerm",
    "Value",
    "backward_steps",
    "clamp",
    "dot",
    "enable_grad",
    "gradients",
    "is_grad_enabled",
    "logsumexp",
    "maximum",
    "minimum",
    "no_grad",
    "set_grad_enabled",
    "sum_values",
    "topological_order",
]

#: What the arithmetic operators accept: a Value or a real number.
Operand: TypeAlias = "Value | int | float"

_isfinite = math.isfinite
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_BY_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _is_real(x: object) -> bool:
    """True for ints, floats, bools and NumPy real scalars; False for everything else."""
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):  # the ABC check last
        return True
    dtype = getattr(x, "dtype", None)  # NumPy bool_ is not registered as numbers.Real
    return dtype is not None and getattr(x, "ndim", 1) == 0 and dtype.kind in "biuf"


def _to_float(x: object, where: str = "Value") -> float:
    """Convert a real number to a finite Python float, or raise a clear error."""
    if type(x) is not float:
        if not _is_real(x):
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


def _ordering_error(op: str, a: Value, b: object) -> TypeError:
    """Why ``a < b`` is refused, and what to write instead."""
    shown = f"{b.data!r}" if isinstance(b, Value) else f"{b!r:.40}"
    return TypeError(
        f"{op}: Values cannot be compared ({a.data!r} {op} {shown}): a comparison would "
        "branch on their data, which the graph does not record, so backward(), grad() and "
        "compile() could not see the choice. Compare the numbers explicitly "
        f"(a.data {op} b.data) if that is what you mean, or express it with Value operations "
        "such as relu() or abs()."
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

    def __init__(self, data: float, label: str = "") -> None:
        if not isinstance(label, str):
            raise TypeError(f"Value: label must be a str, got {type(label).__name__}")
        self.data = _to_float(data)
        self.grad = 0.0
        self.label = label
        self._op = ""
        self._prev = ()
        self._arg = None

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label})"

    # -- arithmetic ---------------------------------------------------------------
    # Each operator returns NotImplemented for an unsupported operand, so Python
    # raises its usual TypeError naming both types.

    def __add__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(self.data + o.data, (self, o), "+")

    def __radd__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(o.data + self.data, (o, self), "+")

    def __sub__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(self.data - o.data, (self, o), "-")

    def __rsub__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(o.data - self.data, (o, self), "-")

    def __mul__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(self.data * o.data, (self, o), "*")

    def __rmul__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _node(o.data * self.data, (o, self), "*")

    def __truediv__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _divide(self, o)

    def __rtruediv__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _divide(o, self)

    def __pow__(self, other: Operand) -> Value:
        if isinstance(other, Value):
            return _power(self, other)
        if not _is_real(other):
            return NotImplemented
        return _power(self, _to_float(other, "**"))

    def __rpow__(self, other: Operand) -> Value:
        if not _is_real(other):
            return NotImplemented
        return _power(_to_float(other, "**"), self)

    def __neg__(self) -> Value:
        return _node(-self.data, (self,), "neg")

    def __pos__(self) -> Value:
        return self

    def __abs__(self) -> Value:
        """``|x|`` as an op; its derivative is ``sign(x)``, taken as 0 at 0 as in PyTorch."""
        return _node(abs(self.data), (self,), "abs")

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
            return _node(math.exp(self.data), (self,), "exp")
        except OverflowError:
            raise NumericOverflowError(
                f"exp: overflow: exp({self.data!r}) is too large for a float "
                "(exp overflows above x ≈ 709.78)"
            ) from None

    def log(self) -> Value:
        """Natural logarithm. Raises :class:`DomainError` unless ``x > 0``."""
        if self.data <= 0.0:
            raise DomainError(f"log: operand must be positive, got log({self.data!r})")
        return _node(math.log(self.data), (self,), "log")

    def tanh(self) -> Value:
        """Hyperbolic tangent."""
        return _node(math.tanh(self.data), (self,), "tanh")

    def relu(self) -> Value:
        """``max(0, x)``; its derivative at 0 is taken as 0, as in PyTorch."""
        return _node(self.data if self.data > 0.0 else 0.0, (self,), "relu")

    def sigmoid(self) -> Value:
        """The logistic function ``1 / (1 + e^-x)``, computed without overflow."""
        x = self.data
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return _node(s, (self,), "sigmoid")

    def softplus(self) -> Value:
        """``log(1 + e^x)``, a smooth relu; its derivative is ``sigmoid(x)``.

        Computed as ``max(x, 0) + log1p(e^-|x|)``: the exponent is never positive, so a
        large x does not overflow and a very negative x keeps full precision
        (``softplus(-30) ≈ 9.4e-14``). The branch is inside the float computation, so
        code built on ``softplus`` has none. PyTorch: ``torch.nn.functional.softplus``
        (which returns x itself above x = 20).
        """
        x = self.data
        return _node(max(x, 0.0) + math.log1p(math.exp(-abs(x))), (self,), "softplus")

    # Trigonometric and hyperbolic functions, their inverses, and more logarithms and
    # exponentials: each is one node, its derivative one line of ``_RULES``. Outside its
    # domain an operation raises DomainError naming it and the operand, like log.

    def sin(self) -> Value:
        """``sin x``; its derivative is ``cos x``."""
        return _node(math.sin(self.data), (self,), "sin")

    def cos(self) -> Value:
        """``cos x``; its derivative is ``-sin x``."""
        return _node(math.cos(self.data), (self,), "cos")

    def tan(self) -> Value:
        """``tan x``; its derivative is ``1 + tan² x``."""
        return _node(math.tan(self.data), (self,), "tan")

    def asin(self) -> Value:
        """``arcsin x`` for ``-1 <= x <= 1``; its derivative ``1 / √(1 - x²)`` is
        infinite at ±1 (``backward()`` there raises)."""
        if not -1.0 <= self.data <= 1.0:
            raise _domain_error("asin", self, "must be in [-1, 1]")
        return _node(math.asin(self.data), (self,), "asin")

    def acos(self) -> Value:
        """``arccos x`` for ``-1 <= x <= 1``; its derivative ``-1 / √(1 - x²)`` is
        infinite at ±1."""
        if not -1.0 <= self.data <= 1.0:
            raise _domain_error("acos", self, "must be in [-1, 1]")
        return _node(math.acos(self.data), (self,), "acos")

    def atan(self) -> Value:
        """``arctan x``; its derivative is ``1 / (1 + x²)``."""
        return _node(math.atan(self.data), (self,), "atan")

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
        return _node(math.asinh(self.data), (self,), "asinh")

    def acosh(self) -> Value:
        """``arcosh x`` for ``x >= 1``; its derivative ``1 / √(x² - 1)`` is infinite at 1."""
        if not self.data >= 1.0:
            raise _domain_error("acosh", self, "must be at least 1")
        return _node(math.acosh(self.data), (self,), "acosh")

    def atanh(self) -> Value:
        """``artanh x`` for ``-1 < x < 1`` (infinite at ±1); its derivative is
        ``1 / (1 - x²)``."""
        if not -1.0 < self.data < 1.0:
            raise _domain_error("atanh", self, "must be in (-1, 1)")
        return _node(math.atanh(self.data), (self,), "atanh")

    def sqrt(self) -> Value:
        """``√x`` for ``x >= 0``; its derivative ``1 / (2√x)`` is infinite at 0."""
        if self.data < 0.0:
            raise _domain_error("sqrt", self, "must not be negative")
        return _node(math.sqrt(self.data), (self,), "sqrt")

    def log2(self) -> Value:
        """Base-2 logarithm, for ``x > 0``; its derivative is ``1 / (x log 2)``."""
        if self.data <= 0.0:
            raise _domain_error("log2", self, "must be positive")
        return _node(math.log2(self.data), (self,), "log2")

    def log10(self) -> Value:
        """Base-10 logarithm, for ``x > 0``; its derivative is ``1 / (x log 10)``."""
        if self.data <= 0.0:
            raise _domain_error("log10", self, "must be positive")
        return _node(math.log10(self.data), (self,), "log10")

    def log1p(self) -> Value:
        """``log(1 + x)`` for ``x > -1``, exact for tiny x; its derivative is ``1 / (1 + x)``."""
        if self.data <= -1.0:
            raise _domain_error("log1p", self, "must be greater than -1")
        return _node(math.log1p(self.data), (self,), "log1p")

    def expm1(self) -> Value:
        """``e^x - 1``, exact for tiny x; its derivative is ``e^x``. Overflows above
        x ≈ 709.78."""
        return _unary(self, "expm1", math.expm1)

    def exp2(self) -> Value:
        """``2 ** x``; its derivative is ``2^x log 2``. Overflows from x = 1024."""
        return _unary(self, "exp2", _exp2)

    def square(self) -> Value:
        """``x²``; its derivative is ``2x``."""
        return _node(self.data * self.data, (self,), "square")

    def reciprocal(self) -> Value:
        """``1 / x``; its derivative is ``-1 / x²``. Raises DivisionByZeroError at 0."""
        if self.data == 0.0:
            raise DivisionByZeroError(f"reciprocal: division by zero: 1 / {self.data!r}")
        return _node(1.0 / self.data, (self,), "reciprocal")

    def erf(self) -> Value:
        """The error function ``(2/√π) ∫₀ˣ e^(-t²) dt``; its derivative is
        ``(2/√π) e^(-x²)``."""
        return _node(math.erf(self.data), (self,), "erf")

    # -- activations ----------------------------------------------------------------

    def gelu(self) -> Value:
        """``x Φ(x)``, Φ the standard normal CDF ``(1 + erf(x/√2)) / 2`` (PyTorch's
        exact ``gelu``); its derivative is ``Φ(x) + x φ(x)``, φ the normal density.
        Computed as ``x erfc(-x/√2) / 2``, which keeps full precision for negative x."""
        x = self.data
        return _node(0.5 * x * math.erfc(-x * _SQRT_HALF), (self,), "gelu")

    def silu(self) -> Value:
        """``x σ(x)``, σ the sigmoid (also called swish); its derivative is
        ``σ(x) (1 + x (1 - σ(x)))``, i.e. ``σ(x) (1 + x - silu(x))``."""
        return _node(self.data * _sigmoid(self.data), (self,), "silu")

    def clamp(self, min: float | None = None, max: float | None = None) -> Value:
        """``x`` limited to ``[min, max]``: see :func:`clamp`."""
        return clamp(self, min, max)

    def __mod__(self, other: Operand) -> Value:
        """``x % y`` with the sign of ``y``, as Python's ``%`` and ``torch.remainder``:
        ``x - y floor(x / y)``. Its derivatives are 1 for x and ``-floor(x / y)`` for y."""
        o = other if isinstance(other, Value) else _lift(other)
        return NotImplemented if o is None else _remainder(self, o)

    def __rmod__(self, other: Operand) -> Value:
        o = other if isinstance(other, Value) else _lift(other)
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
        rules = _RULES
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
                raise _unknown_op_error(node._op) from None
            raise
        except ArithmeticError as exc:  # e.g. the slope of x ** 0.5 at x = 0: infinite
            at = _describe(node._op, [p.data for p in node._prev], node._arg)
            start = f"backward: the gradient is not finite: a derivative of {node._op} at {at}"
            if isinstance(exc, OverflowError):
                raise NumericOverflowError(f"{start} is too large for a float") from None
            raise DomainError(f"{start} is infinite (a division by zero)") from None


#: ``data``'s own slot under a second name, read by the engine's hot loop ``_dot``. While
#: ``chainrule.compile`` traces, ``Value.data`` is a watched (Python) descriptor that
#: lets the engine's reads through unnoted; reading the slot as ``_data`` spares those
#: reads the watch entirely. Nothing but the engine reads ``_data``.
Value._data = Value.__dict__["data"]


def _gradient_error(order: list[Value], bad: Value) -> ChainruleError:
    """The error for ``bad``, whose gradient is not finite: names the operation whose
    contribution made it so (found again, after the fact: only failures pay for it)."""
    for node in reversed(order):
        if node is bad:
            break
        if not node._prev:
            continue
        g = node.grad
        local = _rule_of(node._op)([p.data for p in node._prev], node.data, node._arg)
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


# -- building nodes -------------------------------------------------------------------


_new = object.__new__
_grad_enabled = GRAD_ENABLED.get  # grad mode of this thread or task (chainrule.grad_mode)

#: Set while ``chainrule.watch`` watches (``chainrule.compile`` traces): called with the
#: Values that a plain number was computed from, out of the graph's sight, and how:
#: ``"no_grad"`` (a result computed under ``no_grad()``), ``"copy"`` (a leaf copied by
#: ``copy.copy`` or ``copy.deepcopy``), ``"case"`` (a local derivative given case by
#: case). A replayed program would freeze such a number, so the compiler refuses it.
_on_detached: Callable[[tuple[Value, ...], str], None] | None = None


def _node(data: float, prev: tuple[Value, ...], op: str, arg: float | None = None) -> Value:
    """Make the result of an operation; the one place where graph nodes are created."""
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


def _lift(x: object) -> Value | None:
    """A Value as it is; a number as a constant leaf; None for anything else."""
    if isinstance(x, Value):
        return x
    if not _is_real(x):
        return None
    c: Value = _new(_Constant)
    c.data = _to_float(x, "operand")
    c.grad = 0.0
    c.label = ""
    c._op = ""
    c._prev = ()
    c._arg = None
    return c


def _divide(a: Value, b: Value) -> Value:
    if b.data == 0.0:
        raise DivisionByZeroError(f"/: division by zero: {a.data!r} / {b.data!r}")
    return _node(a.data / b.data, (a, b), "/")


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
        return _node(out, (exponent,), "rpow", base)  # type: ignore[arg-type]
    if isinstance(exponent, Value):
        return _node(out, (base, exponent), "pow")
    return _node(out, (base,), "**", exponent)


def _lift_all(xs: Sequence[Operand], who: str) -> tuple[Value, ...]:
    out = tuple(x if type(x) is Value else _lift(x) for x in xs)
    if None in out:
        bad = next(x for x, v in zip(xs, out, strict=True) if v is None)
        raise TypeError(f"{who}: expected Values or real numbers, got {type(bad).__name__}")
    return out  # type: ignore[return-value]


def _domain_error(op: str, x: Value, need: str) -> DomainError:
    return DomainError(f"{op}: operand {need}, got {op}({x.data!r})")


def _unary(x: Value, op: str, fn: Callable[[float], float]) -> Value:
    """``fn(x.data)`` as the node ``op``; an overflow is an error naming the op."""
    try:
        return _node(fn(x.data), (x,), op)
    except OverflowError:
        raise NumericOverflowError(
            f"{op}: overflow: {op}({x.data!r}) is too large for a float"
        ) from None


def _exp2(x: float) -> float:
    return math.pow(2.0, x)


def _remainder(a: Value, b: Value) -> Value:
    if b.data == 0.0:
        raise DivisionByZeroError(f"%: division by zero: {a.data!r} % {b.data!r}")
    return _node(a.data % b.data, (a, b), "%")


def maximum(a: Operand, b: Operand) -> Value:
    """The larger of ``a`` and ``b`` (``torch.maximum``). Its gradient goes to the larger
    one; at a tie ``a == b`` it is split, half to each, as in PyTorch."""
    x, y = _lift_all((a, b), "maximum")
    return _node(x.data if x.data >= y.data else y.data, (x, y), "maximum")


def minimum(a: Operand, b: Operand) -> Value:
    """The smaller of ``a`` and ``b`` (``torch.minimum``). Its gradient goes to the
    smaller one; at a tie it is split, half to each, as in PyTorch."""
    x, y = _lift_all((a, b), "minimum")
    return _node(x.data if x.data <= y.data else y.data, (x, y), "minimum")


def clamp(x: Operand, min: float | None = None, max: float | None = None) -> Value:
    """``x`` limited to ``[min, max]`` (``torch.clamp``); either bound may be left out.

    The bounds are plain numbers, as in ``torch.clamp(x, min=0.0, max=1.0)``: each is
    one node, ``clamp_min`` (``max(x, min)``) then ``clamp_max`` (``min(·, max)``), with
    the bound kept in ``_arg``. The derivative is 1 where ``min <= x <= max`` (bounds
    included, as in PyTorch) and 0 outside; if ``min > max`` the result is ``max``
    everywhere, with derivative 0. For a Value bound, use :func:`maximum` and
    :func:`minimum`.
    """
    (v,) = _lift_all((x,), "clamp")
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    for name, bound in (("min", min), ("max", max)):
        if isinstance(bound, Value):
            raise TypeError(
                f"clamp: {name} must be a number, got a Value; for a Value bound use "
                "maximum(x, lo) and minimum(x, hi)"
            )
    if min is not None:
        lo = _to_float(min, "clamp")
        v = _node(v.data if v.data >= lo else lo, (v,), "clamp_min", lo)
    if max is not None:
        hi = _to_float(max, "clamp")
        v = _node(v.data if v.data <= hi else hi, (v,), "clamp_max", hi)
    return v


def dot(w: Sequence[Operand], x: Sequence[Operand], bias: Operand = 0.0) -> Value:
    """``w · x + bias`` = ``bias + Σ w_i x_i`` as **one** node (a neuron's weighted sum).

    The same value and gradients as the chain of ``*`` and ``+`` nodes it replaces
    (``∂/∂w_i = x_i``, ``∂/∂x_i = w_i``, ``∂/∂bias = 1``), with one node instead of
    ``2n``: PyTorch's ``Linear`` is likewise one op. Its inputs are ``(*w, *x, bias)``.
    """
    if len(w) != len(x):
        raise ValueError(f"dot: w has {len(w)} entries but x has {len(x)}")
    return _dot(_lift_all(w, "dot"), _lift_all(x, "dot"), _lift_all((bias,), "dot")[0])


def _dot(w: Sequence[Value], x: Sequence[Value], b: Value) -> Value:
    """:func:`dot` for inputs already known to be Values of equal length (``nn``'s case)."""
    data = b._data + sum([wi._data * xi._data for wi, xi in zip(w, x, strict=True)])
    return _node(data, (*w, *x, b), "dot")


def sum_values(values: Sequence[Operand]) -> Value:
    """``Σ values`` as **one** node; each input's local derivative is 1."""
    vs = _lift_all(values, "sum_values")
    if not vs:
        raise ValueError("sum_values: nothing to add")
    data = [v.data for v in vs]
    try:
        total = math.fsum(data)
    except (OverflowError, ValueError):  # fsum's own: "intermediate overflow", inf - inf
        total = math.inf
    return _node(total, vs, "sum")


def logsumexp(values: Sequence[Operand]) -> Value:
    """``log Σ exp(z_i)`` as **one** node, stable for any inputs (``torch.logsumexp``).

    Computed as ``m + log(Σ exp(z_i - m))`` with ``m = max z``: every exponent is at
    most 0, so nothing overflows, and the sum is at least 1. Each input's local
    derivative is its softmax weight, ``∂/∂z_i = exp(z_i - out)``. ``log_softmax`` and
    the cross-entropy losses are built on it without ever reading ``data``.
    """
    zs = _lift_all(values, "logsumexp")
    if not zs:
        raise ValueError("logsumexp: no values given")
    data = [z.data for z in zs]
    m = max(data)
    # The max's own term is exactly 1: add up the others (rounded once) and use log1p,
    # so that tiny terms still count when one input dominates.
    others = math.fsum([*[math.exp(d - m) for d in data], -1.0])
    return _node(m + math.log1p(others), zs, "logsumexp")


def _identity(x: Value) -> Value:
    """A new node equal to ``x``: lets :func:`chainrule.grad` treat ``x`` as a fresh input."""
    return _node(x.data, (x,), "id")


# -- derivative rules ---------------------------------------------------------------
#
# One line per operation: given the inputs ``x`` (a sequence), the output ``out`` and
# the constant exponent ``k`` (for ``x ** number``), return the local derivative of the
# output with respect to each input. ``backward()`` calls these with floats; the
# function transforms in ``chainrule.functional`` call them with Values, so that the
# gradients are graphs themselves and can be differentiated again. The rules therefore
# use only arithmetic and the helpers below (``_log``, ``_exp``, ``_cos``, ``_erf``, ...),
# which work on both -- a function of a Value is itself an op, so that its derivative
# exists -- and on NumPy arrays, elementwise, for ``chainrule.compile``. A local
# derivative that jumps (relu's, abs's, maximum's, clamp's) is written with ``_step``,
# which on Values is a node too (op ``step``, derivative 0): a derivative built by
# ``gradients()`` then compares afresh wherever it is evaluated again, so a compiled
# gradient penalty through relu is right on both sides of 0, not frozen on one.


def _log(x: Any) -> Any:
    if isinstance(x, Value):
        return x.log()
    return math.log(x) if isinstance(x, float | int) else _numpy().log(x)


def _exp(x: Any) -> Any:
    if isinstance(x, Value):
        return x.exp()
    return math.exp(x) if isinstance(x, float | int) else _numpy().exp(x)


def _sin(x: Any) -> Any:
    if isinstance(x, Value):
        return x.sin()
    return math.sin(x) if isinstance(x, float | int) else _numpy().sin(x)


def _cos(x: Any) -> Any:
    if isinstance(x, Value):
        return x.cos()
    return math.cos(x) if isinstance(x, float | int) else _numpy().cos(x)


def _sinh(x: Any) -> Any:
    if isinstance(x, Value):
        return x.sinh()
    return math.sinh(x) if isinstance(x, float | int) else _numpy().sinh(x)


def _cosh(x: Any) -> Any:
    if isinstance(x, Value):
        return x.cosh()
    return math.cosh(x) if isinstance(x, float | int) else _numpy().cosh(x)


def _erf(x: Any) -> Any:
    if isinstance(x, Value):
        return x.erf()
    if isinstance(x, float | int):
        return math.erf(x)
    np = _numpy()  # NumPy has no erf: math.erf on each element (correct, if not fast)
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=np.float64)


def _sigmoid(x: Any) -> Any:
    """``1 / (1 + e^-x)`` without overflow, on a Value, a float or an array."""
    if isinstance(x, Value):
        return x.sigmoid()
    if isinstance(x, float | int):
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    np = _numpy()
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _normal_cdf(x: Any) -> Any:
    """Φ(x), the standard normal distribution function: ``(1 + erf(x/√2)) / 2``."""
    return 0.5 + 0.5 * _erf(x * _SQRT_HALF)


def _normal_pdf(x: Any) -> Any:
    """φ(x), the standard normal density: ``e^(-x²/2) / √(2π)``."""
    return _exp(-0.5 * x * x) * _INV_SQRT_2PI


def _numpy() -> Any:
    """NumPy, imported only when a rule is given an array (which NumPy made)."""
    import numpy

    return numpy


def _step(a: Any, b: Any, tie: float) -> Any:
    """1 where ``a > b``, 0 where ``a < b`` and ``tie`` where ``a == b``: the local
    derivative of an op that jumps, e.g. relu's is ``_step(x, 0, 0)``.

    On floats a float and on NumPy arrays an array; on Values a node ``step`` (``tie``
    in ``_arg``), whose own derivative is 0 on both sides, as a step's is.
    """
    if type(a) is float and type(b) is float:  # backward()'s case: kept fast
        return 1.0 if a > b else 0.0 if a < b else tie
    if isinstance(a, Value) or isinstance(b, Value):
        x, y = _lift_all((a, b), "step")
        return _node(_step(x.data, y.data, tie), (x, y), "step", tie)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return 1.0 if a > b else 0.0 if a < b else tie
    np = _numpy()
    return np.where(a > b, 1.0, np.where(a < b, 0.0, tie))


def _sign(x: Any) -> Any:
    """sign(x): 1, -1, or 0 at 0 (abs's derivative, as PyTorch's)."""
    return _step(x, 0.0, 0.0) - _step(0.0, x, 0.0)


def _positive(x: Any) -> bool:
    return (x.data if isinstance(x, Value) else x) > 0.0


def _nonzero(x: Any) -> bool:
    return (x.data if isinstance(x, Value) else x) != 0.0


def _case(value: float, *inputs: Any) -> float:
    """``value``, a local derivative given case by case (``pow``'s at 0, ``%``'s floor
    ratio): a plain number, constant wherever it is defined. Computed from Values (by
    ``gradients()``) it is reported to ``chainrule.compile``'s watch, which refuses to
    freeze it in a replayed program."""
    if _on_detached is not None:
        sources = tuple([x for x in inputs if isinstance(x, Value)])
        if sources:
            _on_detached(sources, "case")
    return value


def _floor_ratio(x: Any, y: Any) -> Any:
    """``floor(x / y)``, as Python's ``x // y`` (a number: its own derivative is 0)."""
    a = x.data if isinstance(x, Value) else x
    b = y.data if isinstance(y, Value) else y
    if isinstance(a, float | int) and isinstance(b, float | int):
        return _case(a // b, x, y)
    return _numpy().floor_divide(a, b)


def _pow_slope(x: Any, y: Any) -> Any:
    """``∂(x ** y)/∂x = y x^(y-1)``, and 0 at ``0 ** 0`` (where ``0 ** -1`` would be inf)."""
    return y * x ** (y - 1) if _nonzero(x) or _nonzero(y) else _case(0.0, x, y)


Rule = Callable[[Sequence[Any], Any, Any], Sequence[Any]]

_RULES: dict[str, Rule] = {
    "+": lambda x, out, k: (1.0, 1.0),
    "-": lambda x, out, k: (1.0, -1.0),
    "*": lambda x, out, k: (x[1], x[0]),
    "/": lambda x, out, k: (1.0 / x[1], -out / x[1]),
    "neg": lambda x, out, k: (-1.0,),
    "id": lambda x, out, k: (1.0,),
    # x ** k for a number k: k x^(k-1), and 0 for k = 0 (x^0 is the constant 1)
    "**": lambda x, out, k: (k * x[0] ** (k - 1) if k != 0.0 else 0.0,),
    # x ** y for a Value y: y x^(y-1), 0 at 0 ** 0; and x^y log x, 0 at x = 0 (its limit
    # for y > 0). The values PyTorch gives at those points.
    "pow": lambda x, out, k: (
        _pow_slope(x[0], x[1]),
        out * _log(x[0]) if _positive(x[0]) else _case(0.0, x[0]),
    ),
    # c ** y for a number c (kept as k): c^y log c, and 0 for c = 0 (as PyTorch)
    "rpow": lambda x, out, c: (out * _log(c) if c > 0.0 else 0.0,),
    "exp": lambda x, out, k: (out,),
    "log": lambda x, out, k: (1.0 / x[0],),
    "tanh": lambda x, out, k: (1.0 - out * out,),
    "relu": lambda x, out, k: (_step(x[0], 0.0, 0.0),),  # 0 at 0, as in PyTorch
    "abs": lambda x, out, k: (_sign(x[0]),),  # sign(x), 0 at 0 as in PyTorch
    "sigmoid": lambda x, out, k: (out * (1.0 - out),),
    "softplus": lambda x, out, k: (_exp(x[0] - out),),  # sigmoid(x) = e^(x - softplus(x))
    "sin": lambda x, out, k: (_cos(x[0]),),
    "cos": lambda x, out, k: (-_sin(x[0]),),
    "tan": lambda x, out, k: (1.0 + out * out,),
    "asin": lambda x, out, k: ((1.0 - x[0] * x[0]) ** -0.5,),
    "acos": lambda x, out, k: (-((1.0 - x[0] * x[0]) ** -0.5),),
    "atan": lambda x, out, k: (1.0 / (1.0 + x[0] * x[0]),),
    "sinh": lambda x, out, k: (_cosh(x[0]),),
    "cosh": lambda x, out, k: (_sinh(x[0]),),
    "asinh": lambda x, out, k: ((x[0] * x[0] + 1.0) ** -0.5,),
    "acosh": lambda x, out, k: ((x[0] * x[0] - 1.0) ** -0.5,),
    "atanh": lambda x, out, k: (1.0 / (1.0 - x[0] * x[0]),),
    "sqrt": lambda x, out, k: (0.5 / out,),
    "log2": lambda x, out, k: (1.0 / (x[0] * _LN2),),
    "log10": lambda x, out, k: (1.0 / (x[0] * _LN10),),
    "log1p": lambda x, out, k: (1.0 / (1.0 + x[0]),),
    "expm1": lambda x, out, k: (out + 1.0,),
    "exp2": lambda x, out, k: (out * _LN2,),
    "square": lambda x, out, k: (2.0 * x[0],),
    "reciprocal": lambda x, out, k: (-out * out,),
    "erf": lambda x, out, k: (_TWO_BY_SQRT_PI * _exp(-x[0] * x[0]),),
    "gelu": lambda x, out, k: (_normal_cdf(x[0]) + x[0] * _normal_pdf(x[0]),),
    "silu": lambda x, out, k: (_sigmoid(x[0]) * (1.0 + x[0] - out),),
    "%": lambda x, out, k: (1.0, -_floor_ratio(x[0], x[1])),  # x - y floor(x/y)
    # the gradient to the larger input; half each at a tie, as PyTorch
    "maximum": lambda x, out, k: (_step(x[0], x[1], 0.5), _step(x[1], x[0], 0.5)),
    "minimum": lambda x, out, k: (_step(x[1], x[0], 0.5), _step(x[0], x[1], 0.5)),
    "clamp_min": lambda x, out, k: (_step(x[0], k, 1.0),),  # 1 at x = min too, as PyTorch
    "clamp_max": lambda x, out, k: (_step(k, x[0], 1.0),),
    "step": lambda x, out, k: (0.0, 0.0),  # a step is flat on both sides
    # the fused n-ary ops: inputs (*w, *x, bias) and (*values)
    "dot": lambda x, out, k: (*x[len(x) // 2 : -1], *x[: len(x) // 2], 1.0),
    "sum": lambda x, out, k: (1.0,) * len(x),
    "logsumexp": lambda x, out, k: tuple(_exp(z - out) for z in x),  # softmax(z)_i
}


def _rule_of(op: str) -> Rule:
    """The rule of ``op``, or a clear error for an op the table no longer has."""
    rule = _RULES.get(op)
    if rule is None:
        raise _unknown_op_error(op)
    return rule


def _unknown_op_error(op: str) -> ChainruleError:
    return ChainruleError(
        f"cannot differentiate the operation {op!r}: it has no derivative rule, because it "
        "was a user-defined op that has been unregistered since (unregister_op), or was "
        "never registered in this process (a graph from a pickle?). Register it again "
        "(register_op) to differentiate through it."
    )


# -- graph traversal ------------------------------------------------------------------


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
    adjoint: dict[Value, Value] = {root: _lift(1.0)}  # type: ignore[dict-item]
    for node in reversed(path):
        g = adjoint.get(node)
        if g is None or not node._prev:
            continue
        local = _rule_of(node._op)(node._prev, node, node._arg)
        for p, d in zip(node._prev, local, strict=True):
            if p in live:
                contribution = d * g
                before = adjoint.get(p)
                adjoint[p] = contribution if before is None else before + contribution
    zero = _lift(0.0)
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
            local = _rule_of(node._op)([p.data for p in node._prev], node.data, node._arg)
            for p, d in zip(node._prev, local, strict=True):
                before = p.grad
                p.grad = before + d * g
                terms.append(BackwardTerm(p, d, g, d * g, before, p.grad))
        yield BackwardStep(node, g, tuple(terms))
