"""Drawings of a Value's computational graph, made with Graphviz.

:func:`trace` lists the nodes and edges a Value depends on; :func:`draw_dot` turns them
into a :class:`graphviz.Digraph` -- one box per Value showing ``label | data | grad``,
and one small oval per operation, joined to the Value it produced, with an arrow from
each input. In Jupyter the returned Digraph displays itself inline; :func:`render`
writes it to a file.

Importing this module imports the ``graphviz`` Python package; ``import chainrule``
does not import this module, so the engine keeps needing only the standard library.
Turning a drawing into SVG, PNG or PDF needs the Graphviz ``dot`` program; writing the
DOT source (format ``"dot"``) does not.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import graphviz

from chainrule.core import Value, topological_order
from chainrule.errors import ChainruleError
from chainrule.io.files import atomic_write_bytes

__all__ = [
    "FORMATS",
    "RANKDIRS",
    "GraphTooLargeError",
    "GraphvizError",
    "GraphvizNotFoundError",
    "draw_dot",
    "format_for_suffix",
    "op_symbol",
    "render",
    "render_bytes",
    "trace",
]

#: The layout directions :func:`draw_dot` accepts: left to right, or top to bottom.
RANKDIRS = ("LR", "TB")

#: Output formats that open a window or exist only on one platform: not for files.
_INTERACTIVE_FORMATS = frozenset({"x11", "xlib", "gtk", "tk", "cgimage"})

#: Every output format :func:`draw_dot` and :func:`render` accept.
FORMATS: frozenset[str] = frozenset(graphviz.FORMATS) - _INTERACTIVE_FORMATS

#: File suffixes whose format is not simply the suffix itself.
_SUFFIX_FORMATS = {"gv": "dot", "tif": "tiff"}

_INSTALL_HINT = (
    "install Graphviz (`apt-get install graphviz` on Debian/Ubuntu, "
    "`brew install graphviz` on macOS, or see https://graphviz.org/download/), "
    'or use format "dot" to write the DOT source, which needs no Graphviz program'
)


class GraphTooLargeError(ChainruleError, ValueError):
    """The graph has more Values than the drawing limit ``max_nodes``.

    ``nodes`` and ``max_nodes`` hold the two numbers, for callers that phrase their own
    hint (the command line names its ``--max-nodes`` flag).
    """

    def __init__(self, message: str, nodes: int = 0, max_nodes: int = 0) -> None:
        super().__init__(message)
        self.nodes = nodes
        self.max_nodes = max_nodes


class GraphvizError(ChainruleError, RuntimeError):
    """The Graphviz ``dot`` program could not draw the graph."""


class GraphvizNotFoundError(GraphvizError):
    """The Graphviz ``dot`` program, needed to render SVG, PNG or PDF, is not installed."""


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """The nodes ``root`` depends on and the edges between them.

    Returns ``(nodes, edges)``: ``nodes`` in topological order (every node after its
    inputs, ``root`` last), each once; ``edges`` as ``(input, output)`` pairs, grouped
    by output in the same order and, within a node, in the order of its ``_prev``.
    An input used twice by one operation gives two edges: ``a * a`` has two
    ``(a, a * a)`` edges. No recursion, so graphs of any depth work.
    """
    nodes = topological_order(root)
    edges = [(p, node) for node in nodes for p in node._prev]
    return nodes, edges


def _compact_number(x: float) -> str:
    """``2.0`` as ``2``, ``0.5`` as ``0.5``, ``-1.0`` as ``-1``: the shortest exact text."""
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def op_symbol(node: Value) -> str:
    """The text that names ``node``'s operation in a drawing.

    ``x ** 2`` (a number exponent, kept in ``_arg``) gives ``"**2"``; ``x ** y`` with a
    Value exponent gives ``"**"``; ``2 ** x`` (a number base, op ``rpow``) gives
    ``"2**"``; another op with a number (``clamp_min`` and ``clamp_max``, from
    :func:`~chainrule.engine.clamp`) gives its name and the number, ``"clamp_min 0"``;
    every other operation its ``_op`` as it is (``"+"``, ``"neg"``, ``"tanh"``,
    ``"dot"``, ...); a leaf gives ``""``.
    """
    if node._op == "**" and node.arg is not None:
        return f"**{_compact_number(node.arg)}"
    if node._op == "rpow":
        return f"{_compact_number(node.arg)}**"  # type: ignore[arg-type]
    if node._op == "pow":
        return "**"
    if node.arg is not None:  # clamp_min(x, 0) gives "clamp_min 0"
        return f"{node._op} {_compact_number(node.arg)}"
    return node._op


def _format_number(x: float, precision: int) -> str:
    """``x`` with ``precision`` decimals, or in exponent form when that would hide it.

    Very large numbers (``|x| >= 1e6``) and tiny non-zero ones (those that would round
    to zero, such as a vanishing gradient of ``1e-9``) are written like ``1.0000e-09``.
    """
    if x == 0.0:
        return f"{0.0:.{precision}f}"  # also turns -0.0 into 0.0
    if abs(x) >= 1e6 or abs(x) < 0.5 * 10.0**-precision or not math.isfinite(x):
        return f"{x:.{precision}e}"
    return f"{x:.{precision}f}"


def _escape_record(text: str) -> str:
    """Escape the characters that mean something inside a Graphviz record label."""
    out = text.replace("\\", "\\\\")
    for ch in "{}|<>":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ").replace("\r", " ")


def _escape_plain(text: str) -> str:
    """Escape a plain (non-record) Graphviz label: backslashes start escape sequences."""
    return text.replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")


def _check_options(format: str, rankdir: str, max_nodes: int | None, precision: int) -> None:
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(
            f"format must be a Graphviz output format such as 'svg', 'png', 'pdf' or 'dot' "
            f"(all of them: chainrule.graph.FORMATS), got {format!r}"
        )
    if rankdir not in RANKDIRS:
        raise ValueError(
            f"rankdir must be 'LR' (left to right) or 'TB' (top to bottom), got {rankdir!r}"
        )
    if max_nodes is not None and (
        isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1
    ):
        raise ValueError(f"max_nodes must be a positive int or None, got {max_nodes!r}")
    if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 17:
        raise ValueError(f"precision must be an int from 0 to 17, got {precision!r}")


def draw_dot(
    root: Value,
    format: str = "svg",
    rankdir: str = "LR",
    max_nodes: int | None = 500,
    show_grad: bool = True,
    precision: int = 4,
    show_ids: bool = False,
) -> graphviz.Digraph:
    """Draw the graph of everything ``root`` depends on, as a :class:`graphviz.Digraph`.

    Each Value is a record box ``label | data 2.0000 | grad -4.0000`` (the label part
    is left out for unlabelled Values, the grad part when ``show_grad`` is False);
    numbers have ``precision`` decimals. Each operation is a small oval showing
    :func:`op_symbol`, with an arrow from each input (twice for ``a * a``) and one into
    the Value it made. ``rankdir`` is ``"LR"`` (inputs on the left) or ``"TB"`` (inputs
    on top); ``format`` is the output format used when the Digraph is rendered.

    The node names in the DOT source follow the topological order (``v0``, ``v1``, ...),
    so the same graph always gives the same source. With ``show_ids``, an unlabelled
    Value shows that name in its box (``v6 | data ... | grad ...``), so that text
    naming the nodes by id (the explorer's backward steps) can be followed on the
    drawing.

    Raises :class:`GraphTooLargeError` (a ``ValueError``) before drawing anything when
    the graph has more than ``max_nodes`` Values (``None`` means no limit), and
    ``ValueError`` for an unknown ``format`` or ``rankdir``. Building the Digraph needs
    no Graphviz program; displaying or rendering it does.
    """
    _check_options(format, rankdir, max_nodes, precision)
    nodes, _ = trace(root)
    if max_nodes is not None and len(nodes) > max_nodes:
        raise GraphTooLargeError(
            f"draw_dot: the graph has {len(nodes)} Values, more than max_nodes={max_nodes}; "
            f"a drawing that large is unreadable and slow to lay out. Draw a smaller "
            f"expression, or raise the limit with draw_dot(..., max_nodes={len(nodes)})",
            nodes=len(nodes),
            max_nodes=max_nodes,
        )

    dot = graphviz.Digraph("chainrule", format=format, graph_attr={"rankdir": rankdir})
    dot.attr("node", fontname="Helvetica", fontsize="11")
    ids = {node: f"v{i}" for i, node in enumerate(nodes)}
    for node in nodes:
        nid = ids[node]
        fields = [f"data {_format_number(node.data, precision)}"]
        if show_grad:
            fields.append(f"grad {_format_number(node.grad, precision)}")
        if node.label:
            fields.insert(0, _escape_record(node.label))
        elif show_ids:
            fields.insert(0, nid)
        record = " | ".join(fields)
        # In a left-to-right layout a record's top-level fields stack vertically;
        # braces turn them back into one row, so both layouts read the same way.
        label = f"{{ {record} }}" if rankdir == "LR" else record
        dot.node(nid, label=graphviz.nohtml(label), shape="record")
        if node._op:
            op_id = f"{nid}_op"
            op_label = graphviz.nohtml(_escape_plain(op_symbol(node)))
            dot.node(op_id, label=op_label, shape="ellipse", fontsize="10", height="0.3")
            dot.edge(op_id, nid)
            target = op_id
        else:
            target = nid  # inputs without an operation (not made by the engine): join directly
        for p in node._prev:
            dot.edge(ids[p], target)
    return dot


def format_for_suffix(path: str | os.PathLike[str]) -> str | None:
    """The output format a file name asks for, or None if it has no suffix or an unknown one.

    Case does not matter (``graph.SVG`` is ``"svg"``); ``.gv`` is ``"dot"`` and ``.tif``
    ``"tiff"``.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = _SUFFIX_FORMATS.get(suffix, suffix)
    return fmt if fmt in FORMATS else None


def _format_for(path: Path, format: str | None) -> str:
    if format is not None:
        return format
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        raise ValueError(
            f"render: cannot tell the format of {str(path)!r} without a file suffix; "
            f"name it like 'graph.svg' or pass format='svg'"
        )
    fmt = format_for_suffix(path)
    if fmt is None:
        raise ValueError(
            f"render: unknown format {suffix!r} from the suffix of {str(path)!r}; use a "
            f"suffix such as .svg, .png, .pdf or .dot, or pass format='svg'"
        )
    return fmt


def render(
    root: Value,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    rankdir: str = "LR",
    max_nodes: int | None = 500,
    show_grad: bool = True,
    precision: int = 4,
) -> Path:
    """Write the drawing of ``root``'s graph (see :func:`draw_dot`) to ``path``.

    The format comes from ``format`` or else from the suffix of ``path`` (``.svg``,
    ``.png``, ``.pdf``, ``.dot``/``.gv``, ...). Format ``"dot"`` writes the DOT source
    and needs no Graphviz program; every other format runs Graphviz's ``dot`` and
    raises :class:`GraphvizNotFoundError` if it is not installed (or
    :class:`GraphvizError` if it fails). ``FileNotFoundError`` if the folder is missing.

    The file is written whole or not at all: it is made in a temporary directory next
    to ``path`` and then moved into place, and nothing else is left behind. Returns
    the path written.
    """
    target = Path(path)
    fmt = _format_for(target, format)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"render: the folder {str(directory)!r} does not exist")
    content = render_bytes(
        root, fmt, rankdir=rankdir, max_nodes=max_nodes, show_grad=show_grad, precision=precision
    )
    return atomic_write_bytes(target, content)


def render_bytes(
    root: Value,
    format: str = "svg",
    *,
    rankdir: str = "LR",
    max_nodes: int | None = 500,
    show_grad: bool = True,
    precision: int = 4,
) -> bytes:
    """The drawing of ``root``'s graph (see :func:`draw_dot`) in ``format``, as bytes.

    What :func:`render` writes, for callers that write it themselves (to standard
    output, say) or want every failure to happen before anything is written. Raises
    as :func:`render` does.
    """
    dot = draw_dot(
        root,
        format=format,
        rankdir=rankdir,
        max_nodes=max_nodes,
        show_grad=show_grad,
        precision=precision,
    )
    fmt = format
    if fmt == "dot":
        source: str = dot.source
        return source.encode("utf-8")
    try:
        content: bytes = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(
            f"render: drawing {fmt} needs the Graphviz program `dot`, which was not "
            f"found on PATH: {_INSTALL_HINT}"
        ) from None
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise GraphvizError(
            f"render: Graphviz could not draw {fmt}: {stderr.strip() or exc}"
        ) from None
    return content
