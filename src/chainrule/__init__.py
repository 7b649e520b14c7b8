"""chainrule: backpropagation you can read.

A scalar autograd engine (:class:`Value`), function transforms for derivatives of any
order (:func:`grad`), finite-difference checks (:func:`numerical_grad`,
:func:`gradcheck`), drawings of the graph (:func:`draw_dot`, loaded on first use so
that ``import chainrule`` needs only the standard library), and a small
neural-network library on top (``chainrule.nn``). New operations, each with its local
derivative, are added with :func:`register_op` or the decorator :func:`op`.

>>> from chainrule import Value
>>> x = Value(3.0)
>>> y = 3 * x**2 - 4 * x + 5
>>> y.backward()
>>> y.data, x.grad
(20.0, 14.0)
"""

from chainrule.core import (
    BackwardStep,
    BackwardTerm,
    Value,
    backward_steps,
    clamp,
    dot,
    enable_grad,
    gradients,
    is_grad_enabled,
    logsumexp,
    maximum,
    minimum,
    no_grad,
    set_grad_enabled,
    sum_values,
    topological_order,
)
from chainrule.core.custom import op, register_op, unregister_op
from chainrule.core.functional import grad, gradcheck, numerical_grad, value_and_grad
from chainrule.core.vmap import vmap
from chainrule.errors import (
    ChainruleError,
    CompileError,
    CompileWarning,
    DataReadError,
    DivergedError,
    DivisionByZeroError,
    DomainError,
    GradcheckError,
    NumericOverflowError,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``draw_dot`` and ``trace`` load ``chainrule.graph`` (and graphviz), and ``compile``
    loads ``chainrule.compiler`` (and NumPy), on first use."""
    if name in ("draw_dot", "trace"):
        from chainrule import graph

        return getattr(graph, name)
    if name == "compile":
        from chainrule.compiler import compile

        return compile
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")


#: ``compile`` is left out on purpose: ``from chainrule import *`` must not hide Python's
#: built-in ``compile``. Use it as ``chainrule.compile`` (or ``from chainrule import compile``).
__all__ = [
    "BackwardStep",
    "BackwardTerm",
    "ChainruleError",
    "CompileError",
    "CompileWarning",
    "DataReadError",
    "DivergedError",
    "DivisionByZeroError",
    "DomainError",
    "GradcheckError",
    "NumericOverflowError",
    "Value",
    "__version__",
    "backward_steps",
    "clamp",
    "dot",
    "draw_dot",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradients",
    "is_grad_enabled",
    "logsumexp",
    "maximum",
    "minimum",
    "no_grad",
    "numerical_grad",
    "op",
    "register_op",
    "set_grad_enabled",
    "sum_values",
    "topological_order",
    "trace",
    "unregister_op",
    "value_and_grad",
    "vmap",
]
