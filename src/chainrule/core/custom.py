"""User-defined operations: add an op with its local derivative, as the engine's own are.

An operation is two things: a **forward** function that computes the output from the
inputs' numbers, and its **local derivatives** -- how much the output moves per unit
move of each input. The engine keeps the local derivatives of every op in one table
(``RULES`` in :mod:`chainrule.core.rules`); :func:`register_op` (or the decorator
:func:`op`) adds a row to that same table through its one registrar, ``register_rule``,
so ``backward()``, ``grad()`` of any order, ``gradcheck`` and ``draw_dot`` work on the
new op exactly as on ``tanh``::

    import math
    import chainrule

    @chainrule.op(derivative=lambda x, out: cosine(x))   # d/dx sin x = cos x
    def sine(x):
        return math.sin(x)

    @chainrule.op(derivative=lambda x, out: -sine(x))    # d/dx cos x = -sin x
    def cosine(x):
        return math.cos(x)

    y = sine(chainrule.Value(0.5))           # a node, drawn as "sine" by draw_dot
    chainrule.grad(chainrule.grad(sine))(0.5) # -sin(0.5): derivatives of any order

**The forward function** takes plain floats (one per input; the number of inputs is
read from its signature) and returns a float. Called with Values (numbers are lifted
to constants, as ``2.0 * x`` does), the op returns a new Value: a node whose ``_op``
is the op's name and whose ``_prev`` are its inputs. A result that is not finite is
the engine's usual :class:`DomainError` or :class:`NumericOverflowError`, naming the op
and its operands; so is a ``ValueError`` (such as ``math domain error``) or
``OverflowError`` raised by the forward function.

**The derivative** is called as ``derivative(x, out)`` for one input,
``derivative(x, y, out)`` for two, and so on: the inputs and the output. It returns
the local derivative (one input) or a tuple of them, one per input, as in
``derivative=lambda x, y, out: (x / out, y / out)`` for ``hypot``. It always receives
**Values**: ``grad`` calls it on the graph's own nodes, so that the gradient is a
graph itself and can be differentiated again; ``backward()`` calls it on fresh Values
holding the numbers and reads the results' ``data``. Write it with Value operations
-- arithmetic, methods such as ``exp()`` and ``tanh()``, other user-defined ops (the
derivative may name an op defined after it) -- and every order of derivative is
right. A derivative that computes a plain number from the inputs (with ``math.cos(x)``,
say, which reads ``x.data``) gives correct first derivatives, but it has no derivative
of its own: ``grad(grad(f))`` and ``compile`` refuse it (the outer ``grad`` sees the read
of a number it differentiates) rather than treat it as a constant.

**Compiling.** ``chainrule.compile`` replays a graph with NumPy, so it needs the op's
array form: ``numpy_forward`` (arrays in, an array out, e.g. ``np.sin``) and, unless
``derivative`` already works on NumPy arrays (arithmetic and user-defined ops with a
NumPy form do; Value methods such as ``x.exp()`` do not), ``numpy_derivative`` with
the signature of ``derivative``. An op registered without ``numpy_forward`` is
refused by ``compile`` with a :class:`CompileError` naming it. The array forms are
handed to the compiler when it is loaded, so ``import chainrule`` stays free of NumPy.

**Names** must be Python identifiers and must not be a built-in op's name (``exp``,
``dot``, ...) or one the compiler uses itself (``lin``). Registration is global to
the process (like the engine's table): registering a name again is refused unless
``replace=True`` (re-running a notebook cell), and :func:`unregister_op` removes an op.
Graphs made with an op keep only its name: after ``unregister_op``, or in another
process that has not registered it (a pickled graph, say), their ``backward()`` raises
a :class:`ChainruleError` saying so. An op is its name, as its nodes are: an
:class:`Op` object that has been replaced calls the op registered now, one that has
been unregistered refuses to be called, and compiled functions re-trace after any
change to the registered ops, so that nothing runs an op's old forward or derivative.

This module needs only the standard library.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable, Sequence
from typing import Any

from chainrule.core.rules import BUILT_IN_OPS, RULES, register_rule, unregister_rule
from chainrule.core.value import Value, is_real, lift, make_node
from chainrule.errors import (
    ChainruleError,
    CompileError,
    DivisionByZeroError,
    DomainError,
    NumericOverflowError,
)

__all__ = [
    "RESERVED_NAMES",
    "Op",
    "attach_array_tables",
    "no_numpy_form",
    "op",
    "register_op",
    "registered_ops",
    "registry_version",
    "unregister_op",
]

#: Names a user-defined op cannot take besides the built-in ops': the compiler's own.
RESERVED_NAMES = frozenset({"lin"})

_registry: dict[str, Op] = {}
_version = 0  # counts the changes to _registry (see registry_version)

#: The compiler's ``FORWARD`` and ``ARRAY_RULES`` tables, once ``chainrule.compiler`` is
#: loaded (it calls :func:`attach_array_tables`); before that, nothing to keep in step.
_array_tables: list[tuple[dict[str, Any], dict[str, Any]]] = []


class Op:
    """A user-defined operation: call it on Values to make a node (see the module docs).

    ``name``, ``arity`` (the number of inputs), ``forward``, ``derivative``,
    ``numpy_forward`` and ``numpy_derivative`` are as registered.
    """

    def __init__(
        self,
        name: str,
        arity: int,
        forward: Callable[..., Any],
        derivative: Callable[..., Any],
        numpy_forward: Callable[..., Any] | None,
        numpy_derivative: Callable[..., Any] | None,
    ) -> None:
        self.name = self.__name__ = self.__qualname__ = name
        self.arity = arity
        self.forward = forward
        self.derivative = derivative
        self.numpy_forward = numpy_forward
        self.numpy_derivative = numpy_derivative
        self.__doc__ = getattr(forward, "__doc__", None)

    def __repr__(self) -> str:
        compiled = ", compilable" if self.numpy_forward is not None else ""
        return f"<chainrule op {self.name!r} of {self.arity} input(s){compiled}>"

    def __call__(self, *args: Any) -> Any:
        """The op applied to Values or numbers (a new Value), or to NumPy arrays (an
        array, by ``numpy_forward``: what lets a derivative that calls this op run in
        a compiled program)."""
        current = _registry.get(self.name)
        if current is not self:  # replaced or unregistered since: the op is its name
            if current is None:
                raise ChainruleError(
                    f"{self.name}: this op has been unregistered (unregister_op); register "
                    "it again to use it"
                )
            return current(*args)
        if len(args) != self.arity:
            raise TypeError(f"{self.name}: takes {self.arity} input(s), got {len(args)}")
        if any(isinstance(a, Value) for a in args) or all(map(is_real, args)):
            xs = tuple(map(lift, args))
            if None in xs:
                bad = next(a for a, x in zip(args, xs, strict=True) if x is None)
                raise TypeError(
                    f"{self.name}: expected Values or real numbers, got {type(bad).__name__}"
                )
            return self._apply(xs)  # type: ignore[arg-type]  # no None left
        if all(is_real(a) or hasattr(a, "shape") for a in args):  # NumPy arrays and numbers
            if self.numpy_forward is None:  # (a derivative that calls this op, compiled)
                raise CompileError(no_numpy_form(self.name))
            return self.numpy_forward(*args)
        bad = next(a for a in args if not is_real(a) and not hasattr(a, "shape"))
        raise TypeError(
            f"{self.name}: expected Values, real numbers or NumPy arrays, got {type(bad).__name__}"
        )

    def _apply(self, xs: tuple[Value, ...]) -> Value:
        data = [x.data for x in xs]
        try:
            out = self.forward(*data)
        except ChainruleError:
            raise
        except (ValueError, ArithmeticError) as exc:
            kind = (
                NumericOverflowError
                if isinstance(exc, OverflowError)
                else DivisionByZeroError
                if isinstance(exc, ZeroDivisionError)
                else DomainError
            )
            raise kind(f"{self.name}: {_show(self.name, data)} failed: {exc}") from None
        if type(out) is not float:
            if isinstance(out, Value) or not is_real(out):
                raise TypeError(
                    f"{self.name}: the forward function must return a float computed from "
                    f"the inputs' numbers, got {type(out).__name__} "
                    "(the derivative is the one written with Value operations)"
                )
            try:
                out = float(out)
            except OverflowError:
                raise NumericOverflowError(
                    f"{self.name}: overflow: {_show(self.name, data)} is too large for a float"
                ) from None
        return make_node(out, xs, self.name)

    # -- the rows of the rule tables ---------------------------------------------------

    def _rule(self, x: Sequence[Any], out: Any, k: Any) -> tuple[Any, ...]:
        """The engine's rule: ``(inputs, output, k) -> local derivatives``.

        ``gradients()`` passes the graph's Values; ``backward()`` passes floats, which
        are given to the derivative as fresh Values, and floats come back.
        """
        if isinstance(out, Value):
            return self._local(self.derivative, list(x), out, symbolic=True)
        xs = [Value(v) for v in x]
        local = self._local(self.derivative, xs, Value(out), symbolic=False)
        return tuple([d.data if isinstance(d, Value) else float(d) for d in local])

    def _array_rule(self, x: Sequence[Any], out: Any, k: Any) -> tuple[Any, ...]:
        """The compiler's rule: the same, on NumPy arrays."""
        if self.numpy_derivative is not None:
            return self._local(self.numpy_derivative, list(x), out, symbolic=False)
        try:
            return self._local(self.derivative, list(x), out, symbolic=False)
        except (AttributeError, TypeError) as exc:
            raise CompileError(
                f"compile: the derivative of the user-defined operation {self.name!r} does "
                f"not work on NumPy arrays ({type(exc).__name__}: {exc}). Register it with "
                "numpy_derivative=... (the derivative written with NumPy), or write "
                "derivative with arithmetic and ops that have a NumPy form only."
            ) from None

    def _array_forward(self, x: Sequence[Any], k: Any) -> Any:
        return self.numpy_forward(*x)  # type: ignore[misc]  # set when this is installed

    def _local(
        self, fn: Callable[..., Any], xs: list[Any], out: Any, symbolic: bool
    ) -> tuple[Any, ...]:
        """``fn(*xs, out)`` as a tuple of ``arity`` local derivatives, checked."""
        try:
            local = fn(*xs, out)
        except ChainruleError as exc:
            shown = _show(self.name, [v.data if isinstance(v, Value) else v for v in xs])
            raise type(exc)(f"the derivative of {self.name} at {shown}: {exc}") from None
        if self.arity == 1 and not isinstance(local, tuple | list):
            local = (local,)
        if not isinstance(local, tuple | list) or len(local) != self.arity:
            raise TypeError(
                f"the derivative of {self.name} must return {self.arity} local derivative(s), "
                f"one per input, got {local!r:.80}"
            )
        if symbolic:
            for d in local:
                if not isinstance(d, Value) and not is_real(d):
                    raise TypeError(
                        f"the derivative of {self.name} must return Values or numbers, "
                        f"got {type(d).__name__}"
                    )
        return tuple(local)


def _show(name: str, data: Sequence[Any]) -> str:
    return f"{name}({', '.join(map(repr, data))})"


def no_numpy_form(name: str) -> str:
    """Why ``compile`` refuses the user-defined op ``name``, and what to do."""
    return (
        f"the user-defined operation {name!r} has no NumPy form, which compile needs to "
        f"replay it: register it with numpy_forward=... (arrays in, an array out, e.g. "
        f"np.sin), or run this loss eagerly"
    )


def _arity(forward: Callable[..., Any], name: str) -> int:
    """How many numbers ``forward`` takes, read from its signature."""
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(
            f"register_op: cannot tell how many inputs the forward function of {name!r} "
            f"takes; wrap it in a function with named parameters (lambda x: ...)"
        ) from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise TypeError(
            f"register_op: the forward function of {name!r} must take a fixed number of "
            "inputs, not *args"
        )
    n = sum(1 for p in params if p.kind in positional and p.default is p.empty)
    if n == 0:
        raise TypeError(f"register_op: the forward function of {name!r} must take an input")
    return n


def _check_signature(fn: Callable[..., Any], n: int, what: str, name: str) -> None:
    """Refuse a function that cannot be called with ``n`` arguments, when we can tell."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*range(n))
    except TypeError:
        takes = "the inputs" if what == "numpy_forward" else "the inputs, then the output"
        raise TypeError(
            f"register_op: {what} of {name!r} must take {n} argument(s): {takes} "
            f"({name!r} has {n if what == 'numpy_forward' else n - 1} input(s), read from "
            "the forward function)"
        ) from None


def register_op(
    name: str,
    forward: Callable[..., Any],
    derivative: Callable[..., Any],
    *,
    numpy_forward: Callable[..., Any] | None = None,
    numpy_derivative: Callable[..., Any] | None = None,
    replace: bool = False,
) -> Op:
    """Add the operation ``name`` to the engine: ``forward`` and its ``derivative``.

    ``forward(x, ...)`` computes a float from floats; ``derivative(x, ..., out)``
    returns the local derivative ``∂out/∂x`` (or a tuple, one per input), written with
    Value operations. ``numpy_forward`` and ``numpy_derivative`` are the array forms
    ``chainrule.compile`` needs. Returns the :class:`Op`, which is called like a
    function. Raises ``ValueError`` for a name that is not an identifier, is built in
    or is already registered (unless ``replace``), ``TypeError`` for arguments that are
    not callable or take the wrong number of arguments. See the module's docs.

    >>> import math
    >>> gauss = register_op("gauss", lambda x: math.exp(-x * x), lambda x, out: -2 * x * out)
    >>> from chainrule import grad
    >>> round(grad(gauss)(1.0), 6)  # -2 e^-1
    -0.735759
    >>> unregister_op("gauss")
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(
            f"register_op: an op's name must be a Python identifier such as 'sine', got {name!r}"
        )
    if name in RESERVED_NAMES or name in BUILT_IN_OPS:
        raise ValueError(
            f"register_op: {name!r} is a built-in operation of chainrule; "
            "give your op another name (such as 'my_" + name + "')"
        )
    if name in _registry and not replace:
        raise ValueError(
            f"register_op: an op named {name!r} is already registered; pass replace=True "
            f"to redefine it (re-running a notebook cell), or unregister_op({name!r}) first"
        )
    for what, fn in (("forward", forward), ("derivative", derivative)):
        if not callable(fn):
            raise TypeError(f"register_op: {what} of {name!r} must be callable, got {fn!r:.60}")
    for what, maybe in (("numpy_forward", numpy_forward), ("numpy_derivative", numpy_derivative)):
        if maybe is not None and not callable(maybe):
            raise TypeError(
                f"register_op: {what} of {name!r} must be callable or None, got {maybe!r:.60}"
            )
    if numpy_derivative is not None and numpy_forward is None:
        raise ValueError(
            f"register_op: {name!r} has numpy_derivative but no numpy_forward; give both"
        )
    arity = _arity(forward, name)
    _check_signature(derivative, arity + 1, "derivative", name)
    if numpy_forward is not None:
        _check_signature(numpy_forward, arity, "numpy_forward", name)
    if numpy_derivative is not None:
        _check_signature(numpy_derivative, arity + 1, "numpy_derivative", name)

    new = Op(name, arity, forward, derivative, numpy_forward, numpy_derivative)
    if name in _registry:
        unregister_op(name)
    global _version
    _version += 1
    _registry[name] = new
    register_rule(name, new._rule)
    for forward_table, rule_table in _array_tables:
        _install(new, forward_table, rule_table)
    return new


def op(
    derivative: Callable[..., Any],
    *,
    name: str | None = None,
    numpy_forward: Callable[..., Any] | None = None,
    numpy_derivative: Callable[..., Any] | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Any]], Op]:
    """Decorator form of :func:`register_op`: the decorated function is the forward
    function, and its name the op's name unless ``name`` is given.

    >>> import math
    >>> @op(derivative=lambda x, out: -2 * x * out)
    ... def bell(x):
    ...     return math.exp(-x * x)
    >>> bell
    <chainrule op 'bell' of 1 input(s)>
    >>> unregister_op("bell")
    """

    def decorate(forward: Callable[..., Any]) -> Op:
        return register_op(
            name if name is not None else getattr(forward, "__name__", ""),
            forward,
            derivative,
            numpy_forward=numpy_forward,
            numpy_derivative=numpy_derivative,
            replace=replace,
        )

    return decorate


def unregister_op(name: str) -> None:
    """Remove the user-defined op ``name`` (``ValueError`` for any other name)."""
    if name not in _registry:
        what = "a built-in operation" if name in BUILT_IN_OPS else "not a registered op"
        raise ValueError(f"unregister_op: {name!r} is {what}")
    global _version
    _version += 1
    del _registry[name]
    if name in RULES:
        unregister_rule(name)
    for forward_table, rule_table in _array_tables:
        forward_table.pop(name, None)
        rule_table.pop(name, None)


def registered_ops() -> dict[str, Op]:
    """The user-defined ops, by name (a copy)."""
    return dict(_registry)


def registry_version() -> int:
    """A number that changes whenever an op is registered, replaced or unregistered:
    ``chainrule.compile`` re-traces its programs when it has changed since they were
    made, so that they never run an op's old forward or derivative."""
    return _version


def _install(new: Op, forward_table: dict[str, Any], rule_table: dict[str, Any]) -> None:
    if new.numpy_forward is not None:
        forward_table[new.name] = new._array_forward
        rule_table[new.name] = new._array_rule


def attach_array_tables(forward_table: dict[str, Any], rule_table: dict[str, Any]) -> None:
    """Called once by ``chainrule.compiler.ops`` with its ``FORWARD`` and ``ARRAY_RULES``:
    the array forms of the ops registered so far go in now, later ones as they come."""
    _array_tables.append((forward_table, rule_table))
    for registered in _registry.values():
        _install(registered, forward_table, rule_table)
