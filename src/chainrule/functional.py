"""Function transforms (``grad``, ``value_and_grad``, ...) under their user import path.

The code is in :mod:`chainrule.core.functional`; this module re-exports its public names.
"""

from chainrule.core.functional import *  # noqa: F403  (the public names, as listed there)
from chainrule.core.functional import __all__ as __all__
