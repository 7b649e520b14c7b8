"""Grad mode (``no_grad()`` and friends) under its user import path ``chainrule.grad_mode``.

The code is in :mod:`chainrule.core.grad_mode`; this module re-exports its public names.
"""

from chainrule.core.grad_mode import *  # noqa: F403  (the public names, as listed there)
from chainrule.core.grad_mode import __all__ as __all__
