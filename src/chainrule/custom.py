"""User-defined operations (``register_op``, ``@op``) under their user import path.

The code is in :mod:`chainrule.core.custom`; this module re-exports its public names.
"""

from chainrule.core.custom import *  # noqa: F403  (the public names, as listed there)
from chainrule.core.custom import __all__ as __all__
