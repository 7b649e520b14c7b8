"""Function transforms (``grad``, ``value_and_grad``, ...) under their user import path.

The code is in :mod:`chainrule.core.functional`; this module re-exports its public names.
"""

from chainrule.core.functional import grad, gradcheck, numerical_grad, value_and_grad

__all__ = ["grad", "gradcheck", "numerical_grad", "value_and_grad"]
