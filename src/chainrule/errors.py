"""The exceptions chainrule raises.

Each one also subclasses the built-in exception a Python programmer would expect
(``ValueError``, ``ZeroDivisionError``, ``OverflowError``), so existing ``except``
clauses keep working, and every message names the operation and its operands.
"""

from __future__ import annotations

__all__ = [
    "BatchTooLargeError",
    "ChainruleError",
    "CompileError",
    "CompileWarning",
    "DataReadError",
    "DivergedError",
    "DivisionByZeroError",
    "DomainError",
    "GradcheckError",
    "NumericOverflowError",
]


class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class DomainError(ChainruleError, ValueError):
    """An operand outside an operation's domain, such as ``log`` of a negative number."""


class DivisionByZeroError(ChainruleError, ZeroDivisionError):
    """Division by zero, or zero raised to a negative power."""


class NumericOverflowError(ChainruleError, OverflowError):
    """A result too large for a float (it would be ``inf``)."""


class BatchTooLargeError(ChainruleError, MemoryError):
    """A batch that a compiled program could not hold in memory: refused before anything
    is allocated, with the memory it needs and the memory available."""


class GradcheckError(ChainruleError, RuntimeError):
    """Analytic and numerical gradients disagree (raised by :func:`chainrule.gradcheck`)."""


class CompileError(ChainruleError, ValueError):
    """A loss function that :func:`chainrule.compile` cannot replay faithfully.

    The message names the file and line of the code responsible and what to change.
    """


class DataReadError(ChainruleError, TypeError):
    """A function being differentiated by :func:`chainrule.grad` read the number inside a
    Value it is differentiated with respect to (``.data``, ``float()``, ``round()``,
    ``format()``, ``math.sin(x)``, ...): a plain number carries no derivative, so the
    gradient would be silently wrong. JAX raises its ``ConcretizationTypeError`` here.

    The message names the file and line of the read and the Value operation to use.
    """


class CompileWarning(UserWarning):
    """Something :func:`chainrule.compile` did that may surprise: baked-in constants,
    repeated re-tracing."""


class DivergedError(ChainruleError, ArithmeticError):
    """Training diverged: the loss became non-finite or exploded, or a parameter overflowed.

    The message names the step and the loss and suggests a smaller learning rate
    (``chainrule lr-find`` finds one).
    """
