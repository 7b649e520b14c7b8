"""A Griffe extension for the API reference: chainrule's docstrings as Markdown.

The docstrings are written for reading in the source and for ``--doctest-modules``:
reStructuredText roles (:class:`Value`), literal-block markers (``::``) and bare doctest
examples (``>>> ...``). This turns each role into inline code, each ``::`` into ``:``
(the indented block after it is already code in Markdown) and fences each run of
doctest lines as a ``pycon`` block, so mkdocstrings renders them as code instead of as
running text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`~?([^`]+)`")
LITERAL_MARK = re.compile(r"(?<=\S)::$", re.M)  # "as follows::" before an indented block


def _fence_doctests(text: str) -> str:
    """Wrap every run of lines that starts with ``>>>`` (up to a blank line) in a fence."""
    out: list[str] = []
    in_example = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if not in_example and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not stripped:
            out.append(f"{indent}```")
            in_example = False
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out)


def _role_to_code(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` becomes ```C```; ``:func:`grad``` becomes ```grad```."""
    target = match.group(1)
    return f"`{target.rsplit('.', 1)[-1]}`" if match.group(0).find("`~") >= 0 else f"`{target}`"


class ChainruleDocstrings(griffe.Extension):
    """Rewrite every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Fence the doctests and turn the roles into code, in place."""
        if obj.docstring is not None:
            text = LITERAL_MARK.sub(":", ROLE.sub(_role_to_code, obj.docstring.value))
            obj.docstring.value = _fence_doctests(text)
