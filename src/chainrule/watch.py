"""Watching a function read Values' numbers, under its former path ``chainrule.watch``.

The code is in :mod:`chainrule.core.watch`; this module re-exports its public names.
"""

from chainrule.core.watch import *  # noqa: F403  (the public names, as listed there)
from chainrule.core.watch import __all__ as __all__
