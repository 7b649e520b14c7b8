"""Grad mode: whether operations on Values record the graph.

``no_grad()`` turns recording off (inference, parameter updates), ``enable_grad()``
turns it back on inside, and ``set_grad_enabled(mode)`` does either; each works as a
context manager and as a decorator, and ``set_grad_enabled`` also as a plain call, as
in PyTorch.

The mode is kept in a :class:`contextvars.ContextVar`, so it belongs to the thread or
the asyncio task that sets it: a thread evaluating under ``no_grad()`` does not stop
another thread from recording its graph, and a task awaiting inside ``no_grad()`` does
not switch recording off for the other tasks. A new thread starts with recording on.

This module needs only the standard library.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from contextvars import ContextVar, Token
from typing import Any, TypeVar, cast, overload

__all__ = ["GRAD_ENABLED", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]

F = TypeVar("F", bound=Callable[..., Any])

#: True while operations record the graph, in this thread or task. The engine reads it
#: for every node through the variable's own ``get`` (one C call).
GRAD_ENABLED: ContextVar[bool] = ContextVar("chainrule.grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph (in this thread or task)."""
    return GRAD_ENABLED.get()


class _GradMode:
    """Recording switched to ``mode`` inside a ``with`` block or a decorated function.

    Each ``with`` restores the mode it found. One object may be entered again, also from
    several threads or tasks at once: each exit undoes the entry made in its own context.
    """

    __slots__ = ("_mode", "_tokens")

    def __init__(self, mode: bool) -> None:
        self._mode = mode
        self._tokens: list[Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(GRAD_ENABLED.set(self._mode))

    def __exit__(self, *exc: object) -> None:
        _undo_latest(self._tokens)

    def __call__(self, func: F) -> F:
        return _decorate(func, self._mode)


def _undo_latest(tokens: list[Token[bool]]) -> None:
    """Reset the latest of ``tokens`` made in the current context (thread or task)."""
    for i in range(len(tokens) - 1, -1, -1):
        try:
            GRAD_ENABLED.reset(tokens[i])
        except ValueError:  # made in another thread's or task's context: not ours
            continue
        del tokens[i]
        return


class set_grad_enabled(_GradMode):  # lower case: PyTorch's name
    """Record the graph (``True``) or not (``False``), as ``torch.set_grad_enabled``.

    - As a call, ``set_grad_enabled(False)`` sets the mode from now on (in this thread
      or task).
    - As a context manager, ``with set_grad_enabled(training): ...`` sets it for the
      block and restores the previous mode afterwards, even after an exception.
    - As a decorator, ``@set_grad_enabled(False)`` runs each call of the function in
      that mode and changes nothing until then; a generator function runs each of its
      steps in that mode (its caller keeps its own mode between steps), and a coroutine
      function its whole body.
    """

    __slots__ = ("_pending",)

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be True or False, got {mode!r}")
        super().__init__(mode)
        self._tokens.append(GRAD_ENABLED.set(mode))  # in effect from the call on
        self._pending = True  # that setting is undone by the first with-block's exit

    def __enter__(self) -> None:
        if self._pending:
            self._pending = False
        else:
            super().__enter__()

    def __call__(self, func: F) -> F:
        if self._pending:  # used as a decorator: the call itself changes nothing
            self._pending = False
            _undo_latest(self._tokens)
        return super().__call__(func)


@overload
def no_grad() -> _GradMode: ...
@overload
def no_grad(func: F) -> F: ...
def no_grad(func: F | None = None) -> _GradMode | F:
    """Record no graph: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``.

    Operations still compute their values, but the results are leaves: they remember no
    inputs, so nothing can be backpropagated through them and nothing is kept alive.
    Use it for inference and for parameter updates. It is ``set_grad_enabled(False)``
    taking effect at the ``with`` (or at each call of the decorated function).
    """
    mode = _GradMode(False)
    return mode if func is None else mode(func)


@overload
def enable_grad() -> _GradMode: ...
@overload
def enable_grad(func: F) -> F: ...
def enable_grad(func: F | None = None) -> _GradMode | F:
    """Record the graph, even inside :func:`no_grad`: ``with enable_grad():`` or as a
    decorator (``@enable_grad()`` or ``@enable_grad``)."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


def _decorate(func: F, mode: bool) -> F:
    """``func`` running in ``mode`` at each call (each step, for a generator function)."""
    if not callable(func):
        raise TypeError(f"grad mode: expected a function to decorate, got {type(func).__name__}")
    if inspect.isasyncgenfunction(func):
        raise TypeError(
            f"grad mode: cannot decorate the async generator function {func.__name__}; "
            "use `with no_grad():` (or set_grad_enabled) inside it"
        )
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def generator(*args: Any, **kwargs: Any) -> Any:
            return (yield from _steps_in_mode(func(*args, **kwargs), mode))

        return cast(F, generator)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            token = GRAD_ENABLED.set(mode)
            try:
                return await func(*args, **kwargs)
            finally:
                GRAD_ENABLED.reset(token)

        return cast(F, coroutine)

    @functools.wraps(func)
    def function(*args: Any, **kwargs: Any) -> Any:
        token = GRAD_ENABLED.set(mode)
        try:
            return func(*args, **kwargs)
        finally:
            GRAD_ENABLED.reset(token)

    return cast(F, function)


def _steps_in_mode(gen: Generator[Any, Any, Any], mode: bool) -> Generator[Any, Any, Any]:
    """Drive ``gen``: each of its steps runs in ``mode``; between steps, whoever iterates
    it sees its own mode. Values sent in and exceptions thrown in are passed on."""
    resume: Callable[[Any], Any] = gen.send
    given: Any = None
    while True:
        token = GRAD_ENABLED.set(mode)
        try:
            item = resume(given)
        except StopIteration as stop:
            return stop.value
        finally:
            GRAD_ENABLED.reset(token)
        try:
            given = yield item
            resume = gen.send
        except GeneratorExit:
            token = GRAD_ENABLED.set(mode)
            try:
                gen.close()
            finally:
                GRAD_ENABLED.reset(token)
            raise
        except BaseException as exc:  # thrown into us: throw it into gen, in mode
            resume, given = gen.throw, exc
