"""The derivative rules: every operation's local derivatives, in one table.

Looking for an op's derivative? It is the line ``"tanh": lambda x, out, k: ...`` of
``_BUILT_IN`` below, one line per op, named as the node's ``_op`` is. A rule is called
as ``rule(x, out, k)``: the inputs ``x`` (a sequence), the output ``out`` and the number
``k`` the op keeps besides its inputs (:attr:`Value.arg <chainrule.core.value.Value.arg>`:
the exponent of ``x ** number``, a clamp bound), and returns the local derivative of the
output with respect to each input, in order.

``backward()`` calls a rule with floats; :func:`chainrule.core.traverse.gradients` (and so
``grad``) with the graph's Values, so that a gradient is a graph itself and can be
differentiated again; ``chainrule.compile`` with NumPy arrays, elementwise. The rules
therefore use only arithmetic and the helpers at the bottom (``_log``, ``_exp``,
``_cos``, ``_erf``, ...), which work on all three -- a function of a Value is itself an
op, so that its derivative exists. A local derivative that jumps (relu's, abs's,
maximum's, clamp's) is written with ``_step``, which on Values is a node too (op
``step``, derivative 0): a derivative built by ``gradients()`` then compares afresh
wherever it is evaluated again, so a compiled gradient penalty through relu is right on
both sides of 0, not frozen on one.

The table is public and read-only: :data:`RULES` (a ``MappingProxyType``). The one way
to change it is :func:`register_rule` / :func:`unregister_rule` (HIPS autograd's
``defvjp`` idea): the built-in ops are registered through it when this module loads, and
so is every user-defined op of :func:`chainrule.register_op`.

**Adding a built-in op**, say ``cbrt`` (one input), takes three steps:

1. its forward, a method of :class:`~chainrule.core.value.Value` in ``core/value.py``:
   ``return make_node(math.cbrt(self.data), (self,), "cbrt")``, with its domain checked
   as ``log``'s is (the method's name is the op's name);
2. its local derivative, one line of ``_BUILT_IN`` below:
   ``"cbrt": lambda x, out, k: (1.0 / (3.0 * out * out),)``, written with arithmetic and
   the helpers at the bottom, so that it works on floats, Values and arrays;
3. its tests: one row of ``tests/optable.py`` (its PyTorch twin and sample points). Every
   check -- values, first and second derivatives against PyTorch, finite differences,
   compile, pickling -- then runs on it; and name it in the list of functions in
   docs/getting-started.md.

Nothing else: the expression language (``chainrule.expr.FUNCTIONS``) offers every
one-input built-in op that is a Value method of its name, and the compiler's array
forward of a one-input op named as a NumPy ufunc (``np.cbrt``) is that ufunc, both
derived from this table. An op NumPy does not name (``relu``, ``gelu``), or of several
inputs, also needs its array forward in ``FORWARD`` in ``compiler/ops.py``: a test
fails until it has one (every rule must compile).

This module needs only the standard library (NumPy is imported only when a rule is
given an array, which NumPy made).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from chainrule.core import value as _value
from chainrule.core.value import Value, lift_all, make_node
from chainrule.errors import ChainruleError

__all__ = [
    "BUILT_IN_OPS",
    "RULES",
    "Rule",
    "register_rule",
    "rule_of",
    "unknown_op_error",
    "unregister_rule",
]

#: A rule: ``(inputs, output, k) -> local derivatives``, one per input.
Rule = Callable[[Sequence[Any], Any, Any], Sequence[Any]]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_BY_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2, _LN10 = math.log(2.0), math.log(10.0)

#: The built-in ops' rules, one line each (registered below, with register_rule).
_BUILT_IN: dict[str, Rule] = {
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

#: The rule table: op name -> rule. ``backward()`` reads this dict itself; everyone
#: else reads :data:`RULES` and changes it only through register_rule/unregister_rule.
_TABLE: dict[str, Rule] = {}

#: Every op's rule, built-in and user-defined, by the op's name: read-only.
RULES: MappingProxyType[str, Rule] = MappingProxyType(_TABLE)


def register_rule(name: str, rule: Rule, *, replace: bool = False) -> None:
    """Make ``rule`` the local derivatives of the op ``name`` (see the module docs).

    Every node whose ``_op`` is ``name`` is then differentiated with it, by
    ``backward()``, ``gradients()``/``grad`` and ``compile``. A name that already has a
    rule is refused (``ValueError``) unless ``replace=True``, which swaps any rule, a
    built-in one included (to instrument it; put the old one back afterwards). Nodes
    are made with :func:`~chainrule.core.value.make_node`; user-defined ops are best
    added with :func:`chainrule.register_op`, which checks them and calls this.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_rule: an op's name must be a non-empty str, got {name!r:.60}")
    if not callable(rule):
        raise TypeError(f"register_rule: the rule of {name!r} must be callable, got {rule!r:.60}")
    if name in _TABLE and not replace:
        raise ValueError(
            f"register_rule: the op {name!r} already has a rule; pass replace=True to swap it"
        )
    _TABLE[name] = rule


def unregister_rule(name: str) -> None:
    """Remove the rule of the op ``name``; a built-in op's rule cannot be removed.

    Graphs that use the op then fail in ``backward()`` with an error saying so."""
    if name in BUILT_IN_OPS:
        raise ValueError(f"unregister_rule: {name!r} is a built-in operation")
    if name not in _TABLE:
        raise ValueError(f"unregister_rule: the op {name!r} has no rule")
    del _TABLE[name]


def rule_of(op: str) -> Rule:
    """The rule of ``op``, or a clear error for an op the table no longer has."""
    rule = _TABLE.get(op)
    if rule is None:
        raise unknown_op_error(op)
    return rule


def unknown_op_error(op: str) -> ChainruleError:
    """The error for a node whose op has no rule (anymore)."""
    return ChainruleError(
        f"cannot differentiate the operation {op!r}: it has no derivative rule, because it "
        "was a user-defined op that has been unregistered since (unregister_op), or was "
        "never registered in this process (a graph from a pickle?). Register it again "
        "(register_op) to differentiate through it."
    )


# -- the helpers the rules use: each on floats, Values and NumPy arrays ----------------


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
        x, y = lift_all((a, b), "step")
        return make_node(_step(x.data, y.data, tie), (x, y), "step", tie)
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
    hook = _value._on_detached  # the tracing hook (chainrule.core.value.set_detached_hook)
    if hook is not None:
        sources = tuple([x for x in inputs if isinstance(x, Value)])
        if sources:
            hook(sources, "case")
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


for _name, _rule in _BUILT_IN.items():
    register_rule(_name, _rule)

#: The names of the built-in ops (user-defined ops cannot take them).
BUILT_IN_OPS: frozenset[str] = frozenset(_BUILT_IN)
