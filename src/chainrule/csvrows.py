"""The import path ``chainrule.csvrows``, kept for users: the code is in
:mod:`chainrule.io.csvrows` (rows of numbers from a CSV file, for ``chainrule predict``)."""

from chainrule.io.csvrows import *  # noqa: F403  (the public names, as listed there)
from chainrule.io.csvrows import __all__ as __all__
