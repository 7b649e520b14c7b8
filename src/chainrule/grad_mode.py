"""Grad mode (``no_grad()`` and friends) under its user import path ``chainrule.grad_mode``.

The code is in :mod:`chainrule.core.grad_mode`; this module re-exports its public names.
"""

from chainrule.core.grad_mode import (
    GRAD_ENABLED,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = ["GRAD_ENABLED", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
