"""Watching a function read Values' numbers, under its former path ``chainrule.watch``.

The code is in :mod:`chainrule.core.watch`; this module re-exports its public names.
"""

from chainrule.core.watch import DATA_SLOT, DataWatch, Watch, depends_on, where

__all__ = ["DATA_SLOT", "DataWatch", "Watch", "depends_on", "where"]
