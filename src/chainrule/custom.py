"""User-defined operations (``register_op``, ``@op``) under their user import path.

The code is in :mod:`chainrule.core.custom`; this module re-exports its public names.
"""

from chainrule.core.custom import (
    RESERVED_NAMES,
    Op,
    attach_array_tables,
    no_numpy_form,
    op,
    register_op,
    registered_ops,
    registry_version,
    unregister_op,
)

__all__ = [
    "RESERVED_NAMES",
    "Op",
    "attach_array_tables",
    "no_numpy_form",
    "op",
    "register_op",
    "registered_ops",
    "registry_version",
    "unregister_op",
]
