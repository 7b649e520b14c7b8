"""The engine: :class:`Value`, its operations and derivative rules, ``backward()``,
grad mode, the function transforms and user-defined ops.

Where to look:

- ``value.py``: :class:`Value`, each operation's forward (one node each), copying,
  pickling and ``backward()`` -- the chain rule. Start here.
- ``rules.py``: every op's local derivatives, one line each in one table (``"tanh": ...``
  is tanh's), public as the read-only :data:`RULES`, changed only through
  :func:`register_rule`; its docstring lists the steps to add an op.
- ``traverse.py``: :func:`topological_order`, :func:`gradients` (derivatives as graphs),
  :func:`backward_steps` (``backward()`` one node at a time).
- ``grad_mode.py``: ``no_grad()``, ``enable_grad()``, ``set_grad_enabled()``.
- ``functional.py``: ``grad``, ``value_and_grad``, ``numerical_grad``, ``gradcheck``.
- ``custom.py``: user-defined ops (``register_op``, ``@op``).
- ``watch.py``: seeing a function read Values' numbers (for ``grad`` and ``compile``).

``chainrule.engine`` re-exports this package under the lecture's import path
(``from chainrule.engine import Value``). Everything here needs only the standard
library.
"""

# value first: it imports rules and traverse at its bottom (see value.py's docstring).
from chainrule.core.value import (  # isort: skip
    DetachedHook,
    Operand,
    Value,
    clamp,
    dot,
    fused_dot,
    identity,
    is_real,
    lift,
    lift_all,
    logsumexp,
    make_node,
    maximum,
    minimum,
    set_detached_hook,
    sum_values,
    to_float,
)
from chainrule.core.grad_mode import (
    GRAD_ENABLED,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from chainrule.core.rules import (
    BUILT_IN_OPS,
    RULES,
    Rule,
    register_rule,
    rule_of,
    unknown_op_error,
    unregister_rule,
)
from chainrule.core.traverse import (
    BackwardStep,
    BackwardTerm,
    backward_steps,
    gradients,
    topological_order,
)

__all__ = [
    "BUILT_IN_OPS",
    "GRAD_ENABLED",
    "RULES",
    "BackwardStep",
    "BackwardTerm",
    "DetachedHook",
    "Operand",
    "Rule",
    "Value",
    "backward_steps",
    "clamp",
    "dot",
    "enable_grad",
    "fused_dot",
    "gradients",
    "identity",
    "is_grad_enabled",
    "is_real",
    "lift",
    "lift_all",
    "logsumexp",
    "make_node",
    "maximum",
    "minimum",
    "no_grad",
    "register_rule",
    "rule_of",
    "set_detached_hook",
    "set_grad_enabled",
    "sum_values",
    "to_float",
    "topological_order",
    "unknown_op_error",
    "unregister_rule",
]
