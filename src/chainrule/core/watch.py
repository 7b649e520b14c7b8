"""Watching a function run: which Values' numbers it reads, and what it detaches.

``chainrule.compile`` (while it traces a loss) and :func:`chainrule.grad` (while it runs
the function it differentiates) must know when the function takes a number out of the
graph's sight: Python code that branches on a Value's number, or hands it to
``math.sin``, is invisible to the graph, so a replayed program or a derivative would be
silently wrong. A :class:`Watch` open in a ``with`` block sees, in its own thread:

- every read of a Value's ``data`` made outside the engine, and those the engine makes
  on the caller's behalf: ``float(v)``, ``round(v)``, ``format(v, spec)`` (which
  ``math.sin(v)`` calls) and pickling (:meth:`Watch.note_read`);
- every number computed from Values out of the graph's sight (:meth:`Watch.note_detached`):
  a result computed under ``no_grad()``, a copy of a leaf (``copy.copy``,
  ``copy.deepcopy``), a local derivative given case by case (``x ** y`` at 0, ``x % y``).

How: while any watch is open, ``Value.data`` is a Python descriptor (:class:`DataWatch`)
in place of the slot, and the engine's tracing hook is set
(:func:`chainrule.core.value.set_detached_hook`). Outside every
watch both are back as they were, so eager code pays nothing; while one is open, other
threads read and write ``data`` as before, a little slower. Watches nest (``grad``
inside a compiled loss, ``grad(grad(f))``): each open watch of the thread sees each read,
the innermost first.

This module needs only the standard library.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType
from typing import Any

from chainrule.core import custom, rules, traverse, value
from chainrule.core.value import Value, set_detached_hook

__all__ = ["DATA_SLOT", "DataWatch", "Watch", "depends_on", "user_stacklevel", "where"]

#: The folder of the chainrule package: frames inside it are not the user's code.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: ``Value.data``'s own slot descriptor (reading through it is never watched).
DATA_SLOT = Value.__dict__["data"]
#: The engine's modules, known by their globals: their reads of ``data`` are the engine's
#: own. ``value`` makes nodes and runs ``backward()``; ``rules`` computes local
#: derivatives; ``traverse`` runs ``gradients()`` and ``backward_steps()``; user-defined
#: ops (``custom``) read their inputs' data as the engine's ops do. (``functional``
#: is not one of them: its reads hand numbers to the caller, as ``float(v)`` does.)
_VALUE_GLOBALS = value.__dict__
_RULES_GLOBALS = rules.__dict__
_TRAVERSE_GLOBALS = traverse.__dict__
_CUSTOM_GLOBALS = custom.__dict__
#: Engine functions whose reads of ``data`` are the caller's: ``float(v)``, ``round(v)``
#: and ``format(v, spec)`` hand the number to the user's code, and so does pickling.
_FLOAT, _ROUND, _FORMAT, _REDUCE = (
    f.__code__ for f in (Value.__float__, Value.__round__, Value.__format__, Value.__reduce__)
)
_watches: dict[int, list[Watch]] = {}  # thread id -> the watches open in it, innermost last
_install_lock = threading.Lock()


class DataWatch:
    """Stands in for ``Value.data`` while a watch is open: tells the open watches of the
    reading thread who reads a Value's data.

    Values read and written are the slot's own; only reads made outside the engine (or
    on the caller's behalf) are passed on, so other threads see nothing but a slower
    ``.data``.
    """

    def __get__(
        self,
        obj: Any,
        owner: Any = None,
        _slot: Any = DATA_SLOT.__get__,
        _frame: Any = sys._getframe,
        _value: Any = _VALUE_GLOBALS,
        _rules: Any = _RULES_GLOBALS,
        _traverse: Any = _TRAVERSE_GLOBALS,
        _custom: Any = _CUSTOM_GLOBALS,
        _float: Any = _FLOAT,
        _round: Any = _ROUND,
        _format: Any = _FORMAT,
        _reduce: Any = _REDUCE,
    ) -> Any:
        # Called for every read of every Value's data while a watch is open (tens of
        # thousands per trace, nearly all by the engine): identity tests only.
        if obj is None:
            return self
        frame = _frame(1)
        where = frame.f_globals
        if where is _value:
            # The engine's own reads are its business, except those that pass the
            # number on to the caller.
            code = frame.f_code
            if (
                code is not _float
                and code is not _round
                and code is not _format
                and code is not _reduce
            ):
                return _slot(obj, owner)
        elif where is _rules or where is _traverse or where is _custom:
            return _slot(obj, owner)
        watches = _watches.get(threading.get_ident())
        if watches:
            for watch in reversed(watches):
                watch.note_read(obj, frame)
        return _slot(obj, owner)

    #: Writes go straight to the slot (a C function: no Python frame per new node).
    __set__ = staticmethod(DATA_SLOT.__set__)


_WATCH = DataWatch()


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller of this function
    point at the user's line: the first caller outside chainrule."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR
    ):
        frame, level = frame.f_back, level + 1
    return level


def where(frame: FrameType | None) -> str:
    """``file:line`` of the user's code for ``frame``: its first caller outside chainrule
    (and outside the standard ``copy`` module), and the chainrule function in between."""
    inner = None
    while frame is not None and (
        os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR)
        or frame.f_globals.get("__name__") == "copy"
    ):
        if inner is None and frame.f_globals.get("__name__") != "copy":  # the innermost
            inner = f"{frame.f_globals.get('__name__', 'chainrule')}.{frame.f_code.co_name}"
        frame = frame.f_back
    if frame is None:
        return inner or "chainrule"
    here = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return f"{here} (in {inner})" if inner else here


class Watch:
    """Open in a ``with`` block: sees this thread's reads of Values' numbers and its
    detached results (see the module docs). Subclasses say what to do with them; this
    one records them (at most ``limit`` of each), each with :func:`where` it happened.
    """

    limit = 1000

    def __init__(self) -> None:
        self.reads: list[tuple[Value, str]] = []
        self.detached: list[tuple[tuple[Value, ...], str, str]] = []  # (sources, how, where)

    def note_read(self, v: Value, frame: FrameType) -> None:
        """``v``'s number was read, in ``frame`` (the reader's, or the engine's ``float``)."""
        if len(self.reads) < self.limit:
            self.reads.append((v, where(frame)))

    def note_detached(self, sources: tuple[Value, ...], how: str, frame: FrameType) -> None:
        """A number was computed from ``sources`` out of the graph's sight; ``how`` is
        ``"no_grad"``, ``"copy"`` or ``"case"`` (see
        :func:`chainrule.core.value.set_detached_hook`)."""
        if len(self.detached) < self.limit:
            self.detached.append((sources, how, where(frame)))

    def __enter__(self) -> Watch:
        with _install_lock:
            if not _watches:
                Value.data = _WATCH  # type: ignore[assignment,misc]
                set_detached_hook(_note_detached)
            _watches.setdefault(threading.get_ident(), []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _install_lock:
            ident = threading.get_ident()
            mine = _watches[ident]
            mine.remove(self)
            if not mine:
                del _watches[ident]
            if not _watches:
                Value.data = DATA_SLOT  # type: ignore[misc]
                set_detached_hook(None)


def _note_detached(sources: tuple[Value, ...], how: str) -> None:
    watches = _watches.get(threading.get_ident())
    if watches:
        frame = sys._getframe(1)  # the engine function that reported it
        for watch in reversed(watches):
            watch.note_detached(sources, how, frame)


def depends_on(v: Value, sources: set[Value], free: set[Value]) -> bool:
    """Whether ``v`` is one of ``sources`` or computed from one (without recursion).

    ``free`` holds Values known to depend on none of them; the Values found so here are
    added to it, so that many calls together visit each node once.
    """
    seen: set[Value] = set()
    stack = [v]
    while stack:
        u = stack.pop()
        if u in sources:
            return True
        if u not in free and u not in seen:
            seen.add(u)
            stack.extend(u._prev)
    free |= seen
    return False
