"""Graph drawings: trace(), op_symbol(), draw_dot() and render().

These tests run the Graphviz ``dot`` program where a drawing is rendered; they fail
(they do not skip) when it is missing. CI installs Graphviz.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import graphviz
import pytest

from chainrule import ChainruleError, Value
from chainrule.engine import dot as fused_dot
from chainrule.graph import (
    GraphTooLargeError,
    GraphvizError,
    GraphvizNotFoundError,
    draw_dot,
    format_for_suffix,
    op_symbol,
    render,
    render_bytes,
    trace,
)


def lecture_expression() -> dict[str, Value]:
    """The lecture's ``L = (a*b + c) * f``, after ``L.backward()``."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    L.backward()
    return {"a": a, "b": b, "c": c, "e": e, "d": d, "f": f, "L": L}


#: label -> (data, grad) of the lecture's expression, worked out by hand.
LECTURE_NUMBERS = {
    "a": ("2.0000", "6.0000"),
    "b": ("-3.0000", "-4.0000"),
    "c": ("10.0000", "-2.0000"),
    "e": ("-6.0000", "-2.0000"),
    "d": ("4.0000", "-2.0000"),
    "f": ("-2.0000", "4.0000"),
    "L": ("-8.0000", "1.0000"),
}


def svg_texts(svg: str) -> list[str]:
    """The text elements of an SVG drawing, in order."""
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


# -- trace ----------------------------------------------------------------------------


def test_trace_lecture_expression() -> None:
    v = lecture_expression()
    nodes, edges = trace(v["L"])
    assert len(nodes) == 7
    assert set(nodes) == set(v.values())
    assert nodes[-1] is v["L"]
    assert len(edges) == 6
    assert set(edges) == {
        (v["a"], v["e"]),
        (v["b"], v["e"]),
        (v["e"], v["d"]),
        (v["c"], v["d"]),
        (v["d"], v["L"]),
        (v["f"], v["L"]),
    }


def test_trace_inputs_come_before_outputs_and_edges_follow_prev_order() -> None:
    x, y = Value(1.0), Value(2.0)
    out = (x - y) * (y - x)
    nodes, edges = trace(out)
    position = {node: i for i, node in enumerate(nodes)}
    assert all(position[src] < position[dst] for src, dst in edges)
    for node in nodes:
        assert [src for src, dst in edges if dst is node] == list(node._prev)


def test_trace_keeps_duplicate_edges_and_counts_shared_nodes_once() -> None:
    a = Value(3.0, label="a")
    sq = a * a
    nodes, edges = trace(sq)
    assert nodes == [a, sq]
    assert edges == [(a, sq), (a, sq)]

    s = a + a
    t = s * s + s  # s is used three times, but is one node
    nodes, edges = trace(t)
    assert len(nodes) == 4  # a, s, s*s and t: each once
    assert len(set(nodes)) == len(nodes)
    assert len(edges) == 6  # two into each of s, s*s and t


def test_trace_leaf() -> None:
    a = Value(1.0)
    assert trace(a) == ([a], [])


def test_trace_deep_chain_without_recursion() -> None:
    x = Value(0.5)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    nodes, edges = trace(y)
    assert len(nodes) == 1 + 2 * 20_000  # x, and a constant and a product per step
    assert len(edges) == 2 * 20_000


def test_trace_is_deterministic() -> None:
    def build() -> Value:
        a, b = Value(1.0, label="a"), Value(2.0, label="b")
        return ((a * b).tanh() + a**2 - b).relu()

    assert draw_dot(build()).source == draw_dot(build()).source


# -- op_symbol ------------------------------------------------------------------------


def test_op_symbol() -> None:
    x, y = Value(2.0), Value(3.0)
    assert op_symbol(x) == ""
    assert op_symbol(x**2) == "**2"
    assert op_symbol(x**2.0) == "**2"
    assert op_symbol(x**0.5) == "**0.5"
    assert op_symbol(x**-1) == "**-1"
    assert op_symbol(Value(1.0) ** 1e20) == "**1e+20"
    assert op_symbol(x**y) == "**"
    assert op_symbol(x.clamp(min=0.0)) == "clamp_min 0"
    assert op_symbol(x.clamp(max=0.5)) == "clamp_max 0.5"
    assert op_symbol(x % y) == "%"
    assert op_symbol(-x) == "neg"
    assert op_symbol(x + y) == "+"
    assert op_symbol(x / y) == "/"
    assert op_symbol(x.tanh()) == "tanh"
    assert op_symbol(fused_dot([x, y], [y, x], 1.0)) == "dot"


# -- draw_dot -------------------------------------------------------------------------


def test_draw_dot_source_shows_every_label_data_and_grad() -> None:
    v = lecture_expression()
    source = draw_dot(v["L"]).source
    for label, (data, grad) in LECTURE_NUMBERS.items():
        assert f'"{{ {label} | data {data} | grad {grad} }}"' in source
    assert source.count("shape=record") == 7
    assert source.count("shape=ellipse") == 3  # *, + and *
    assert 'label="*"' in source
    assert 'label="+"' in source
    assert source.count("->") == 6 + 3  # input -> op for each edge, op -> output per op
    assert "rankdir=LR" in source


def test_draw_dot_renders_svg_with_labels() -> None:
    v = lecture_expression()
    svg = draw_dot(v["L"]).pipe(format="svg").decode()
    texts = svg_texts(svg)
    for label, (data, grad) in LECTURE_NUMBERS.items():
        assert label in texts
        assert f"data {data}" in texts
        assert f"grad {grad}" in texts
    assert texts.count("*") == 2
    assert texts.count("+") == 1


def test_draw_dot_displays_inline_in_jupyter() -> None:
    v = lecture_expression()
    bundle = draw_dot(v["L"])._repr_mimebundle_()
    svg = bundle["image/svg+xml"]
    assert "grad -4.0000" in svg_texts(svg)


def test_draw_dot_duplicate_inputs_give_two_arrows() -> None:
    a = Value(3.0, label="a")
    b = a * a
    b.backward()
    source = draw_dot(b).source
    assert source.count("v0 -> v1_op") == 2
    assert "grad 6.0000" in source


def test_draw_dot_unlabelled_values_and_options() -> None:
    x = Value(0.5)
    y = (x * 2.0).tanh()
    y.backward()
    source = draw_dot(y).source
    assert '"{ data 0.5000 | grad ' in source  # no label part
    assert "label=tanh" in source

    no_grad_source = draw_dot(y, show_grad=False).source
    assert "grad" not in no_grad_source
    assert '"{ data 0.5000 }"' in no_grad_source

    assert '"{ data 0.50 | grad ' in draw_dot(y, precision=2).source


def test_draw_dot_number_formats() -> None:
    big = Value(2.5e12, label="big")
    tiny = Value(3e-9, label="tiny")
    out = big * tiny + Value(-0.0)
    source = draw_dot(out, show_grad=False).source
    assert "data 2.5000e+12" in source
    assert "data 3.0000e-09" in source
    assert "-0.0000" not in source
    assert "data 0.0000" in source


def test_draw_dot_top_to_bottom() -> None:
    v = lecture_expression()
    dot = draw_dot(v["L"], rankdir="TB")
    assert "rankdir=TB" in dot.source
    assert '"b | data -3.0000 | grad -4.0000"' in dot.source
    assert "grad -4.0000" in svg_texts(dot.pipe(format="svg").decode())


@pytest.mark.parametrize("rankdir", ["RL", "BT", "lr", "", "sideways"])
def test_draw_dot_rejects_unknown_rankdir(rankdir: str) -> None:
    with pytest.raises(ValueError, match=r"'LR'.*'TB'"):
        draw_dot(Value(1.0), rankdir=rankdir)


@pytest.mark.parametrize("fmt", ["bogus", "SVG", "", "x11"])
def test_draw_dot_rejects_unknown_format(fmt: str) -> None:
    with pytest.raises(ValueError, match="format must be"):
        draw_dot(Value(1.0), format=fmt)


@pytest.mark.parametrize("kwargs", [{"precision": -1}, {"precision": 30}, {"max_nodes": 0}])
def test_draw_dot_rejects_bad_options(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        draw_dot(Value(1.0), **kwargs)  # type: ignore[arg-type]


def test_draw_dot_format_is_kept() -> None:
    assert draw_dot(Value(1.0), format="png").format == "png"


def test_draw_dot_max_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    x = Value(1.0)
    y = x
    for _ in range(300):
        y = y + 1.0  # a constant and a sum per step
    assert len(trace(y)[0]) == 601

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Digraph was built for a graph over the limit")

    with monkeypatch.context() as m:
        m.setattr(graphviz, "Digraph", fail)
        with pytest.raises(GraphTooLargeError) as info:
            draw_dot(y)
    message = str(info.value)
    assert "601" in message
    assert "max_nodes=500" in message
    assert "max_nodes=601" in message  # how to raise the limit
    assert (info.value.nodes, info.value.max_nodes) == (601, 500)  # for callers' own hints
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ChainruleError)

    assert draw_dot(y, max_nodes=601).source.count("shape=record") == 601
    assert draw_dot(y, max_nodes=None).source.count("shape=record") == 601
    with pytest.raises(GraphTooLargeError):
        draw_dot(y, max_nodes=600)


def test_draw_dot_any_op_and_any_number_of_inputs() -> None:
    ws = [Value(float(i), label=f"w{i}") for i in range(5)]
    xs = [Value(1.0, label=f"x{i}") for i in range(5)]
    n = fused_dot(ws, xs, 0.5)
    n.label = "n"
    n.backward()
    source = draw_dot(n).source
    assert source.count("-> v11_op") == 11  # five weights, five inputs and the bias: v0..v10
    assert "label=dot" in source
    svg = draw_dot(n).pipe(format="svg").decode()
    assert "dot" in svg_texts(svg)
    assert "grad 4.0000" in svg_texts(svg)  # d n / d x4 = w4


def test_draw_dot_escapes_special_characters() -> None:
    tricky = 'a{b}|c<d>"e" \\f'
    x = Value(1.0, label=tricky)
    y = x * 2.0
    y._op = '<op|{x}> \\ "q"'  # an op name made of Graphviz's special characters
    y.label = "<html>"
    texts = svg_texts(draw_dot(y).pipe(format="svg", encoding="utf-8"))
    assert tricky in texts
    assert "<html>" in texts
    assert y._op in texts


def test_importing_chainrule_does_not_import_graphviz() -> None:
    code = "import sys, chainrule; sys.exit('graphviz' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- render ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("graph.svg", b"<?xml"),
        ("graph.png", b"\x89PNG"),
        ("graph.pdf", b"%PDF"),
        ("graph.dot", b"digraph chainrule {"),
        ("graph.gv", b"digraph chainrule {"),
    ],
)
def test_render_writes_the_format_of_the_suffix(tmp_path: Path, name: str, magic: bytes) -> None:
    v = lecture_expression()
    written = render(v["L"], tmp_path / name)
    assert written == tmp_path / name
    content = written.read_bytes()
    assert content.startswith(magic)
    assert os.listdir(tmp_path) == [name]  # nothing else left behind
    if name.endswith(".svg"):
        assert "grad -4.0000" in svg_texts(content.decode())


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("graph.svg", "svg"),
        ("GRAPH.SVG", "svg"),
        ("g.Png", "png"),
        ("g.gv", "dot"),
        ("g.tif", "tiff"),
        ("dir.v1/noext", None),
        ("g.txt", None),
        ("g.x11", None),
    ],
)
def test_format_for_suffix(name: str, fmt: str | None) -> None:
    assert format_for_suffix(name) == fmt


def test_render_takes_the_format_from_an_upper_case_suffix(tmp_path: Path) -> None:
    assert render(Value(1.0), tmp_path / "g.SVG").read_bytes().startswith(b"<?xml")


def test_render_bytes_is_what_render_writes(tmp_path: Path) -> None:
    v = lecture_expression()
    for fmt in ("dot", "svg"):
        path = render(v["L"], tmp_path / f"g.{fmt}", rankdir="TB")
        assert render_bytes(v["L"], fmt, rankdir="TB") == path.read_bytes()


def test_render_dot_is_the_source(tmp_path: Path) -> None:
    v = lecture_expression()
    path = render(v["L"], str(tmp_path / "g.dot"), rankdir="TB", precision=2)
    assert path.read_text() == draw_dot(v["L"], rankdir="TB", precision=2).source


def test_render_explicit_format_and_overwrite(tmp_path: Path) -> None:
    v = lecture_expression()
    target = tmp_path / "drawing"
    target.write_text("old")
    render(v["L"], target, format="svg")
    assert target.read_bytes().startswith(b"<?xml")
    assert os.listdir(tmp_path) == ["drawing"]


def test_render_rejects_unknown_or_missing_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format='svg'"):
        render(Value(1.0), tmp_path / "graph")
    with pytest.raises(ValueError, match="unknown format 'xyz'"):
        render(Value(1.0), tmp_path / "graph.xyz")
    assert os.listdir(tmp_path) == []


def test_render_without_graphviz_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v = lecture_expression()
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GraphvizNotFoundError) as info:
        render(v["L"], tmp_path / "graph.svg")
    message = str(info.value)
    assert "apt-get install graphviz" in message
    assert "brew install graphviz" in message
    assert "https://graphviz.org/download/" in message
    assert 'format "dot"' in message
    assert isinstance(info.value, ChainruleError)
    assert os.listdir(tmp_path) == []

    # The DOT source needs no Graphviz program, and neither does building the Digraph.
    path = render(v["L"], tmp_path / "graph.dot")
    assert "grad -4.0000" in path.read_text()
    assert os.listdir(tmp_path) == ["graph.dot"]
    assert "grad -4.0000" in draw_dot(v["L"]).source


def test_render_into_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render(Value(1.0), tmp_path / "no" / "such" / "graph.svg")
    assert os.listdir(tmp_path) == []


def test_render_reports_a_graphviz_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pipe(self: graphviz.Digraph, *args: object, **kwargs: object) -> bytes:
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: something broke")

    monkeypatch.setattr(graphviz.Digraph, "pipe", failing_pipe)
    with pytest.raises(GraphvizError, match="something broke") as info:
        render(Value(1.0), tmp_path / "graph.png")
    assert not isinstance(info.value, GraphvizNotFoundError)
    assert isinstance(info.value, ChainruleError)
    assert os.listdir(tmp_path) == []
