"""Function transforms: ``grad``, ``value_and_grad``, ``numerical_grad``, ``gradcheck``.

``grad(f)`` is a function like ``f`` that returns the derivative instead of the value,
and it composes, as in JAX::

    >>> f = lambda x: 3 * x**2 - 4 * x + 5
    >>> grad(f)(3.0), grad(grad(f))(3.0)
    (14.0, 6.0)

Called with plain numbers, the transforms return plain floats. Called with Values (as
an outer ``grad`` does), they return Values whose graphs reach back to those inputs,
which is what lets derivatives of any order work through every operation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from chainrule.engine import (
    Value,
    _identity,
    _is_real,
    _to_float,
    backward_graph,
    enable_grad,
    no_grad,
)
from chainrule.errors import GradcheckError

__all__ = ["grad", "gradcheck", "numerical_grad", "value_and_grad"]

Scalar: TypeAlias = "Value | float"
ArgNums: TypeAlias = "int | Sequence[int]"


def _argnums(argnums: ArgNums, nargs: int) -> tuple[int, ...]:
    """Validate ``argnums`` against the number of arguments given."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or not all(isinstance(i, int) and not isinstance(i, bool) for i in nums):
        raise TypeError(f"argnums must be an int or a non-empty sequence of ints, got {argnums!r}")
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(
                f"argnums {i} is out of range: the function was called with {nargs} argument(s)"
            )
    return tuple(i % nargs for i in nums)


def value_and_grad(
    f: Callable[..., Any], argnums: ArgNums = 0
) -> Callable[..., tuple[Scalar, Any]]:
    """Return a function computing ``f``'s value and its gradient with respect to ``argnums``.

    ``argnums`` is one position (the gradient is one number) or a sequence of them
    (a tuple of numbers). Each differentiated argument is treated as an independent
    input, even if the same Value is passed twice or also used inside ``f``.
    """

    @functools.wraps(f)
    def value_and_grad_f(*args: Any) -> tuple[Scalar, Any]:
        nums = _argnums(argnums, len(args))
        symbolic = any(isinstance(a, Value) for a in args)
        # Numbers become Values (so ``f`` may call ``.exp()`` on any of them); other
        # arguments, such as a model, pass through unchanged.
        inputs = [Value(a) if _is_real(a) else a for a in args]
        with enable_grad():
            for i in nums:
                a = inputs[i]
                if not isinstance(a, Value):
                    raise TypeError(
                        f"grad: argument {i} must be a real number or a Value to be "
                        f"differentiated, got {type(a).__name__}"
                    )
                inputs[i] = _identity(a)  # a fresh node: independent of any other use of a
            out = f(*inputs)
            if isinstance(out, Value):
                grads = backward_graph(out, [inputs[i] for i in nums])
            elif _is_real(out):  # f ignores its inputs: every derivative is zero
                out = Value(out)
                grads = [Value(0.0) for _ in nums]
            else:
                raise TypeError(
                    f"grad: {_name(f)} must return a Value or a number, got {type(out).__name__}"
                )
        result: list[Scalar] = list(grads) if symbolic else [g.data for g in grads]
        value: Scalar = out if symbolic else out.data
        return value, (result[0] if isinstance(argnums, int) else tuple(result))

    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: ArgNums = 0) -> Callable[..., Any]:
    """Return a function computing the derivative of ``f`` with respect to ``argnums``.

    >>> grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 5.0)
    (5.0, 2.0)
    """
    vg = value_and_grad(f, argnums)

    @functools.wraps(f)
    def grad_f(*args: Any) -> Any:
        return vg(*args)[1]

    return grad_f


def _name(f: Callable[..., Any]) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _evaluate(f: Callable[..., Any], xs: Sequence[float]) -> float:
    """``f`` at plain numbers, as a float, recording no graph."""
    with no_grad():
        out = f(*[Value(x) for x in xs])
    if isinstance(out, Value):
        return out.data
    if _is_real(out):
        return _to_float(out, _name(f))
    raise TypeError(f"{_name(f)} must return a Value or a number, got {type(out).__name__}")


def _floats(xs: Sequence[Any]) -> list[float]:
    return [x.data if isinstance(x, Value) else _to_float(x, "input") for x in xs]


def numerical_grad(f: Callable[..., Any], *xs: Any, h: float = 1e-6) -> list[float]:
    """Central finite differences: ``(f(x + h) - f(x - h)) / 2h`` for each input in turn.

    ``f`` is called with Values (so it may use ``tanh()`` and friends); the inputs may
    be numbers or Values. Returns one float per input.
    """
    if not h > 0.0:
        raise ValueError(f"numerical_grad: the step h must be positive, got {h!r}")
    base = _floats(xs)
    slopes = []
    for i in range(len(base)):
        plus, minus = list(base), list(base)
        plus[i] += h
        minus[i] -= h
        slopes.append((_evaluate(f, plus) - _evaluate(f, minus)) / (2.0 * h))
    return slopes


def gradcheck(
    f: Callable[..., Any],
    *xs: Any,
    h: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check ``f``'s analytic gradient against central differences at ``xs``.

    Passes when ``|analytic - numerical| <= atol + rtol * |numerical|`` for every input
    (PyTorch's default tolerances). Returns ``True``, or raises
    :class:`~chainrule.errors.GradcheckError` listing each input's analytic value,
    numerical value and relative error.
    """
    if not xs:
        raise ValueError("gradcheck: give at least one input to check")
    base = _floats(xs)
    _, analytic = value_and_grad(f, argnums=tuple(range(len(base))))(*base)
    numerical = numerical_grad(f, *base, h=h)
    rows, ok = [], True
    for i, (a, n) in enumerate(zip(analytic, numerical, strict=True)):
        good = abs(a - n) <= atol + rtol * abs(n)
        ok = ok and good
        scale = max(abs(a), abs(n))
        rel = abs(a - n) / scale if scale else 0.0
        mark = "ok" if good else "MISMATCH"
        rows.append(
            f"  input {i} at {base[i]!r}: analytic {a!r}, numerical {n!r}, "
            f"relative error {rel:.3g}  {mark}"
        )
    if not ok:
        raise GradcheckError(
            f"gradcheck of {_name(f)} failed (atol={atol}, rtol={rtol}, h={h}):\n" + "\n".join(rows)
        )
    return True
