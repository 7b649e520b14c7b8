"""Function transforms: ``grad``, ``value_and_grad``, ``numerical_grad``, ``gradcheck``.

``grad(f)`` is a function like ``f`` that returns the derivative instead of the value,
and it composes, as in JAX::

    >>> f = lambda x: 3 * x**2 - 4 * x + 5
    >>> grad(f)(3.0), grad(grad(f))(3.0)
    (14.0, 6.0)

The argument rules are JAX's: only the ``argnums`` positional arguments are
differentiated; every other argument, positional or keyword, reaches ``f`` exactly as
given (a number stays a number, a model stays a model):

    >>> grad(lambda x, n: x**n)(-2.0, 3)  # d/dx x**3 = 3x**2; n stays the int 3
    12.0

Called with plain numbers, the transforms return plain floats. Called with Values, or
from inside a function that another transform is differentiating, they return Values
whose graphs reach back to those inputs, which is what lets derivatives of any order
work through every operation, closures included.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from chainrule.core.grad_mode import enable_grad, no_grad
from chainrule.core.traverse import gradients
from chainrule.core.value import Value, identity, is_real, to_float
from chainrule.core.watch import DATA_SLOT, Watch, depends_on, where
from chainrule.errors import DataReadError, GradcheckError

__all__ = ["grad", "gradcheck", "numerical_grad", "value_and_grad"]

Scalar: TypeAlias = "Value | float"
ArgNums: TypeAlias = "int | Sequence[int]"


def _check_argnums(argnums: object) -> tuple[int, ...]:
    """``argnums`` as a tuple, checked when the transform is made (its range is checked
    at each call, when the number of arguments is known)."""
    nums = (argnums,) if isinstance(argnums, int) else argnums
    if (
        isinstance(argnums, bool)
        or not isinstance(nums, Sequence)
        or isinstance(nums, str)
        or not nums
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in nums)
    ):
        raise TypeError(f"argnums must be an int or a non-empty sequence of ints, got {argnums!r}")
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnums must not repeat a position, got {argnums!r}")
    return tuple(nums)


def _positions(nums: tuple[int, ...], nargs: int) -> tuple[int, ...]:
    """``nums`` as positions ``0 <= i < nargs`` (negative ones count from the end)."""
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(
                f"argnums {i} is out of range: the function was called with "
                f"{nargs} positional argument(s)"
            )
    positions = tuple(i % nargs for i in nums)
    if len(set(positions)) != len(positions):
        raise ValueError(
            f"argnums {nums} name the same argument twice for a call with {nargs} argument(s)"
        )
    return positions


class _Nesting(threading.local):
    """How many transformed functions this thread is inside (see :func:`value_and_grad`)."""

    depth = 0


_nesting = _Nesting()


def value_and_grad(
    f: Callable[..., Any], argnums: ArgNums = 0, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """Return a function computing ``f``'s value and its gradient with respect to ``argnums``.

    ``argnums`` is one position (the gradient is one number) or a sequence of distinct
    positions (a tuple of numbers, one per position). Negative positions count from the
    end, as in Python indexing. The type of ``argnums`` is checked here; whether each
    position exists is checked at each call. Each differentiated argument must be a
    number or a Value, and is treated as an independent input, even if the same Value
    is passed twice or also used inside ``f``. All other arguments, and every keyword
    argument, are passed to ``f`` untouched and never differentiated.

    With ``has_aux=True``, ``f`` returns a pair ``(out, aux)``: ``out`` is
    differentiated and ``aux`` (anything: predictions, a log) is passed back as ``f``
    returned it, and the result is ``((value, aux), gradient)``, as in JAX:

    >>> def loss(w, x, *, target):
    ...     pred = w * x
    ...     return (pred - target) ** 2, pred
    >>> (value, pred), dw = value_and_grad(loss, has_aux=True)(0.5, 4.0, target=3.0)
    >>> value, pred.data, dw  # (2 - 3)**2, w * x, 2 (w x - t) x
    (1.0, 2.0, -8.0)

    Results are plain floats when the call is given plain numbers; Values, with graphs
    of their own, when any argument is a Value or when the call happens inside a
    function that another transform is differentiating (so ``grad(grad(f))`` and
    closures over an outer variable differentiate correctly).

    While ``f`` runs, reading the number of a Value that depends on a differentiated
    argument (``.data``, ``float()``, ``round()``, ``format()``, ``math.sin(x)``) raises
    :class:`~chainrule.errors.DataReadError` naming the file and line, as JAX does: the
    derivative cannot see through a plain number. Numbers of other Values (a parameter
    not being differentiated, a constant) may be read, and so may the results after
    the call.
    """
    if not callable(f):
        raise TypeError(f"grad: expected a function to differentiate, got {type(f).__name__}")
    nums = _check_argnums(argnums)
    single = isinstance(argnums, int)

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        positions = _positions(nums, len(args))
        symbolic = (
            _nesting.depth > 0
            or any(isinstance(a, Value) for a in args)
            or any(isinstance(a, Value) for a in kwargs.values())
        )
        with enable_grad():
            inputs = _fresh_inputs(args, positions)
            _nesting.depth += 1
            try:
                with _ReadGuard([inputs[i] for i in positions], f):
                    result = f(*inputs, **kwargs)
            finally:
                _nesting.depth -= 1
            out, aux = _split_aux(result, f) if has_aux else (result, None)
            wrt = [inputs[i] for i in positions]
            out, grads = _differentiate(out, wrt, f, has_aux)
        gs: list[Scalar] = list(grads) if symbolic else [g.data for g in grads]
        value: Scalar = out if symbolic else out.data
        gradient = gs[0] if single else tuple(gs)
        return ((value, aux), gradient) if has_aux else (value, gradient)

    return value_and_grad_f


def _fresh_inputs(args: tuple[Any, ...], positions: tuple[int, ...]) -> list[Any]:
    """``args`` with each differentiated one made a fresh node (a number becomes a Value):
    independent of any other use of the same Value."""
    inputs = list(args)
    for i in positions:
        a = inputs[i]
        if not isinstance(a, Value):
            if not is_real(a):
                raise TypeError(
                    f"grad: argument {i} must be a real number or a Value to be "
                    f"differentiated, got {type(a).__name__}"
                )
            a = Value(a)
        inputs[i] = identity(a)
    return inputs


def _differentiate(
    out: Any, wrt: list[Value], f: Callable[..., Any], has_aux: bool
) -> tuple[Value, list[Value]]:
    """``out`` as a Value and its gradients with respect to ``wrt`` (Values)."""
    if isinstance(out, Value):
        return out, gradients(out, wrt)
    if is_real(out):  # f ignores its inputs: every derivative is zero
        return Value(out), [Value(0.0) for _ in wrt]
    raise TypeError(
        f"grad: {_name(f)} must return a Value or a number"
        f"{' as the first of its pair (out, aux)' if has_aux else ''}, "
        f"got {type(out).__name__}"
    )


class _ReadGuard(Watch):
    """Refuses, while ``f`` runs, a read of the number of a Value that depends on the
    differentiated inputs: the derivative would not see how the result depends on it.

    Only reads are refused; what ``f`` computes under ``no_grad()`` or copies is a
    constant to the derivative in eager code as well (PyTorch's ``detach()``).
    """

    def __init__(self, inputs: list[Value], f: Callable[..., Any]) -> None:
        super().__init__()
        self.inputs = set(inputs)
        self.free: set[Value] = set()  # Values found to depend on no input
        self.f = f

    def note_read(self, v: Value, frame: Any) -> None:
        if depends_on(v, self.inputs, self.free):
            raise DataReadError(
                f"grad: {where(frame)}: {_name(self.f)} reads the number of a Value that "
                f"depends on the argument being differentiated ({DATA_SLOT.__get__(v)!r}), "
                "with .data, float(), round(), format() or a math function; a plain number "
                "carries no derivative, so the gradient would be silently wrong. Use Value "
                "operations instead (x.sin() for math.sin(x), x.exp(), x.relu(), ...), and "
                "read numbers outside the function (print(x) shows one inside)."
            )

    def note_detached(self, sources: tuple[Value, ...], how: str, frame: Any) -> None:
        pass


def _split_aux(result: Any, f: Callable[..., Any]) -> tuple[Any, Any]:
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise TypeError(
            f"grad: with has_aux=True, {_name(f)} must return a pair (out, aux), "
            f"got {type(result).__name__}"
        )
    return result[0], result[1]


def grad(f: Callable[..., Any], argnums: ArgNums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """Return a function computing the derivative of ``f`` with respect to ``argnums``.

    The rules are :func:`value_and_grad`'s; ``grad`` returns only the gradient, or
    ``(gradient, aux)`` with ``has_aux=True``, as in JAX:

    >>> grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 5.0)
    (5.0, 2.0)
    >>> grad(lambda x, *, scale: scale * x.tanh())(0.0, scale=3.0)  # keywords pass through
    3.0
    >>> grad(lambda x: (x * x, "aux"), has_aux=True)(3.0)
    (6.0, 'aux')
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, gradient = vg(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return grad_f


def _name(f: Callable[..., Any]) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _evaluate(f: Callable[..., Any], xs: Sequence[float]) -> float:
    """``f`` at plain numbers, as a float, recording no graph."""
    with no_grad():
        out = f(*[Value(x) for x in xs])
    if isinstance(out, Value):
        return out.data
    if is_real(out):
        return to_float(out, _name(f))
    raise TypeError(f"{_name(f)} must return a Value or a number, got {type(out).__name__}")


def _floats(xs: Sequence[Any]) -> list[float]:
    return [x.data if isinstance(x, Value) else to_float(x, "input") for x in xs]


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
