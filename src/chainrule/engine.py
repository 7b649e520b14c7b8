"""The autograd engine under the lecture's import path: ``from chainrule.engine import Value``.

micrograd's code imports ``Value`` from ``micrograd.engine``; chainrule keeps
``chainrule.engine`` as that path, re-exporting the engine, which lives in the package
:mod:`chainrule.core`:

- :class:`Value`, its operations and ``backward()``: ``chainrule/core/value.py``;
- every op's local derivative, one line each (``"tanh": ...`` is tanh's), in the one
  table ``RULES``: ``chainrule/core/rules.py``, whose docstring lists the steps to add
  an op;
- ``topological_order``, ``gradients``, ``backward_steps``: ``chainrule/core/traverse.py``;
- ``no_grad`` and friends: ``chainrule/core/grad_mode.py``.

``_restore``, ``_restore_graph`` and ``_Constant`` stay importable from here because
pickles name them so (``chainrule.engine._restore``), those of earlier versions and
this one's alike.

This module needs only the standard library.
"""

from chainrule.core import *  # noqa: F403  (the engine's public names, as listed there)
from chainrule.core import __all__ as __all__

# Named by pickles (chainrule.engine._restore, ...): keep them importable here.
from chainrule.core.value import _Constant as _Constant
from chainrule.core.value import _restore as _restore
from chainrule.core.value import _restore_graph as _restore_graph
