"""The explorer in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

`chainrule explore --no-browser` serves the page from 127.0.0.1; the page loads
chainrule's own source into Pyodide. Every number the page shows is checked against
the same computation in this CPython. These tests never skip: without Chromium they
fail, saying how to install it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainrule import topological_order
from chainrule.expr import evaluate, parse_assignments

CHROMIUM = os.environ.get("CHAINRULE_CHROMIUM", "/usr/bin/chromium")
# As root in a container Chromium needs --no-sandbox; the rest keep it off the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_TIMEOUT_MS = 60_000
NEURON = "tanh(x1*w1 + x2*w2 + b)"
NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"


@pytest.fixture(scope="module")
def explorer_url() -> Iterator[str]:
    """`chainrule explore --no-browser` on a free port; its printed address."""
    command = [sys.executable, "-m", "chainrule.cli", "explore", "--no-browser"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server prints its address
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if match is None:
        proc.kill()
        pytest.fail(f"chainrule explore printed no address: {line!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]
    try:
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"the explorer's browser tests need Chromium at {CHROMIUM}: install it with "
            "`apt-get install chromium` (Debian/Ubuntu; .ci/run does), or point "
            "CHAINRULE_CHROMIUM at a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context()
        yield context
        context.close()
        chromium.close()


class Page:
    """A page of the explorer, recording console errors and every request it makes."""

    def __init__(self, context, url: str, viewport=(1280, 800)) -> None:
        self.page = context.new_page()
        self.page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.by("status").filter(has_text=re.compile("^ready$")).wait_for(timeout=LOAD_TIMEOUT_MS)

    def by(self, testid: str):
        return self.page.get_by_test_id(testid)

    def text(self, testid: str) -> str:
        return self.by(testid).inner_text().strip()

    def number(self, testid: str) -> float:
        return float(self.text(testid))

    def check_clean(self, base: str) -> None:
        """No console errors, and nothing fetched from anywhere but the explorer itself."""
        assert self.errors == []
        assert self.requests and all(u.startswith((base, "data:")) for u in self.requests), [
            u for u in self.requests if not u.startswith((base, "data:"))
        ]


@pytest.fixture(scope="module")
def shared(browser, explorer_url) -> Iterator[Page]:
    """One page for the expression tests: each test sets its own view by changing the
    hash (as a learner pasting a link into the open page does)."""
    page = Page(browser, explorer_url + "#expr=x*y&at=x=2,y=5")  # a link, loaded fresh
    page.by("graph").locator("svg").wait_for()
    assert page.text("value") == "10.0000" and page.text("grad-x") == "5.0000"
    yield page
    page.page.close()


def show(page: Page, base: str, fragment: str) -> None:
    """Go to ``#fragment`` in the open page and wait for the drawing it asks for."""
    page.errors.clear()
    page.page.evaluate("document.querySelector('[data-testid=graph]').replaceChildren()")
    page.page.goto(base + "#" + fragment)
    page.by("graph").locator("svg").wait_for()


def cpython(text: str, at: str):
    out, leaves = evaluate(text, parse_assignments(at))
    out.backward()
    return out, leaves


def test_the_lecture_neuron_and_its_backward_pass_step_by_step(shared, explorer_url) -> None:
    page = shared
    show(page, explorer_url, "expr=tanh(x1*w1%20%2B%20x2*w2%20%2B%20b)&at=" + NEURON_AT)
    out, leaves = cpython(NEURON, NEURON_AT)
    # The value and gradients the lecture shows, equal to CPython's at the printed precision.
    assert page.text("value") == "0.7071" == f"{out.data:.4f}"
    assert page.text("grad-x1") == "-1.5000" == f"{leaves['x1'].grad:.4f}"
    for name, leaf in leaves.items():
        assert page.text(f"grad-{name}") == f"{leaf.grad:.4f}"
    # One g.node per Value in the drawing (operations are ovals of class "op").
    order = topological_order(out)
    nodes = page.by("graph").locator("g.node")
    assert nodes.count() == len(order)
    assert page.by("graph").locator("g.op").count() == sum(1 for v in order if v._prev)

    # Step: every node once, in reverse topological order, each highlighted in turn.
    expected = [f"v{i}" for i in reversed(range(len(order)))]
    seen = []
    for k in range(len(order)):
        page.by("step-backward").click()
        page.page.wait_for_function(
            "k => document.querySelector('[data-testid=step-progress]').textContent"
            ".startsWith(`node ${k} of`)",
            arg=k + 1,
        )
        current = page.by("graph").locator("g.node.current")
        assert current.count() == 1
        seen.append(current.get_attribute("data-id"))
        assert page.by("step-explain").locator(".step").get_attribute("data-node") == seen[-1]
    assert seen == expected
    # The first step seeds the output's gradient; a multiplication's term is
    # local derivative × upstream = contribution (x1: w1 × 0.5 = -1.5).
    assert "Every node visited" in page.text("step-explain")
    page.by("step-restart").click()
    page.page.wait_for_function(
        "document.querySelector('[data-testid=step-progress]').textContent.startsWith('node 0')"
    )
    lines = []
    for _ in range(4):
        page.by("step-backward").click()
        page.page.wait_for_function(
            "n => document.querySelector('[data-testid=step-progress]').textContent"
            ".startsWith(`node ${n} of`)",
            arg=len(lines) + 1,
        )
        lines.append(page.text("step-explain"))
    assert "the output: its gradient starts at 1" in lines[0]
    assert "∂v6/∂x1 = w1 = -3.0000 × upstream 0.5000 = -1.5000" in lines[3]
    # the node the text calls v6 is labelled v6 on the drawing too
    first_words = page.page.evaluate(
        """id => [...document.querySelectorAll('[data-testid=graph] g.node')]
            .filter(g => g.querySelector('title')?.textContent === id)
            .map(g => g.querySelector('text')?.textContent)""",
        "v6",
    )
    assert first_words == ["v6"]

    # The nudge: the finite difference agrees with backward().
    page.by("nudge-variable").select_option("w1")
    page.by("nudge").click()
    page.by("nudge-result").filter(has_text="backward() gives").wait_for()
    result = page.text("nudge-result")
    numeric = float(re.search(r"2h = (\S+);", result).group(1))  # type: ignore[union-attr]
    assert abs(numeric - leaves["w1"].grad) < 1e-6
    page.check_clean(explorer_url)


def test_a_value_used_twice_shows_the_running_sum(shared, explorer_url) -> None:
    page = shared
    show(page, explorer_url, "expr=a*a&at=a=3")
    assert page.text("value") == "9.0000" and page.text("grad-a") == "6.0000"
    page.by("step-backward").click()
    page.by("step-explain").filter(has_text="adds up").wait_for()
    assert "3.0000 + 3.0000 = 6.0000" in page.text("step-explain")
    # A typing error is shown, not thrown.
    page.by("expr-input").fill("log(a) +")
    page.by("expr-go").click()
    page.by("expr-error").filter(has_text="expression").wait_for()
    page.by("expr-input").fill("log(a)")
    page.by("at-input").fill("a=-1")
    page.by("expr-go").click()
    page.by("expr-error").filter(has_text="log: operand must be positive").wait_for()
    page.check_clean(explorer_url)


def test_training_moons_from_a_shared_link(shared, explorer_url) -> None:
    """A training link pasted into the open page restores the training view; moons
    reaches 95% within 200 steps."""
    page = shared
    page.errors.clear()
    page.page.evaluate("document.querySelector('[data-testid=train-network]').replaceChildren()")
    page.page.goto(explorer_url + "#view=train&dataset=moons&layers=16,16&lr=0.3")
    page.by("train-network").locator("svg").wait_for()
    assert page.by("tab-train").get_attribute("aria-selected") == "true"
    assert page.by("train-dataset").input_value() == "moons"
    assert page.by("train-layers").input_value() == "16,16"
    assert page.by("train-lr").input_value() == "0.3"
    page.by("train-network").locator("svg").wait_for()
    assert page.by("train-network").locator("circle").count() == 2 + 16 + 16 + 1
    page.by("train-step").click()
    page.page.wait_for_function(
        "document.querySelector('[data-testid=train-step-count]').textContent === '1'"
    )
    page.by("train-play").click()
    page.page.wait_for_function(
        "Number(document.querySelector('[data-testid=train-accuracy]').textContent) >= 95"
        " || Number(document.querySelector('[data-testid=train-step-count]').textContent) >= 200",
        timeout=120_000,
    )
    page.by("train-play").click()  # pause
    steps = int(page.text("train-step-count"))
    assert page.number("train-accuracy") >= 95.0, f"{page.text('train-accuracy')}% after {steps}"
    assert steps < 200
    assert page.number("train-loss") > 0
    # Clicking the canvas adds a point; shift-clicking the same place removes it again.
    assert page.text("train-points") == "100"
    box = page.by("train-canvas").bounding_box()
    assert box is not None
    page.page.mouse.click(box["x"] + 10, box["y"] + 10)
    page.by("train-points").filter(has_text="101").wait_for()
    page.page.keyboard.down("Shift")
    page.page.mouse.click(box["x"] + 10, box["y"] + 10)
    page.page.keyboard.up("Shift")
    page.by("train-points").filter(has_text=re.compile("^100$")).wait_for()
    page.check_clean(explorer_url)


def test_play_clicked_the_moment_the_page_is_ready_trains(browser, explorer_url) -> None:
    """Play works from the moment it can be clicked: clicked as soon as "ready" shows,
    while the link's first network is still being built, it trains that network."""
    page = Page(browser, explorer_url + "#view=train&dataset=moons&layers=8&lr=0.3")
    try:
        page.by("train-play").click()  # nothing waited for since "ready"
        page.page.wait_for_function(
            "Number(document.querySelector('[data-testid=train-step-count]').textContent) >= 5",
            timeout=30_000,
        )
        page.by("train-play").click()  # pause
        assert page.text("train-play") == "Play"
        assert int(page.text("train-step-count")) >= 5
        assert page.number("train-loss") > 0
        assert page.text("train-points") == "100"
        assert page.by("train-network").locator("circle").count() == 2 + 8 + 1
        page.check_clean(explorer_url)
    finally:
        page.page.close()


def test_phone_viewport_keyboard_and_an_expression_link(shared, explorer_url) -> None:
    page = shared
    page.page.set_viewport_size({"width": 390, "height": 844})
    try:
        show(page, explorer_url, "expr=x*y%2By&at=x=3,y=-2")
        out, leaves = cpython("x*y+y", "x=3,y=-2")
        assert page.number("value") == round(out.data, 4) == -8.0
        assert page.number("grad-x") == leaves["x"].grad == -2.0
        assert page.number("grad-y") == leaves["y"].grad == 4.0
        # Nothing wider than the phone's screen.
        assert page.page.evaluate("document.documentElement.scrollWidth") <= 390
        # The keyboard alone: a step of backward, and the arrow keys between the tabs.
        page.by("step-backward").focus()
        page.page.keyboard.press("Enter")
        page.by("step-explain").filter(has_text="output").wait_for()
        page.by("tab-expr").focus()
        page.page.keyboard.press("ArrowRight")
        assert page.by("tab-train").get_attribute("aria-selected") == "true"
        assert page.page.evaluate("document.activeElement.dataset.testid") == "tab-train"
        page.by("train-network").locator("svg").wait_for()
        page.check_clean(explorer_url)
    finally:
        page.page.set_viewport_size({"width": 1280, "height": 800})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def static_site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The documentation site as `make docs` builds it, served by a plain static server
    (Python's http.server: no Content-Security-Policy, no headers of chainrule's own)."""
    from test_docs import build_site

    site = build_site(tmp_path_factory.mktemp("docs") / "site")
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/"
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


def test_the_explorer_in_the_built_site_works_from_a_static_server(
    browser, static_site_url
) -> None:
    """The guide's link opens the explorer, whose engine becomes ready, and an expression
    evaluates with CPython's value and gradients; nothing is fetched from elsewhere."""
    guide = browser.new_page()
    try:
        guide.goto(static_site_url + "explorer.html")
        guide.get_by_role("link", name="Open the explorer").click()
        guide.wait_for_url(static_site_url + "explorer/index.html")
    finally:
        guide.close()
    base = static_site_url + "explorer/index.html"
    page = Page(browser, base + "#expr=x*y%2By&at=x=3,y=-2")
    try:
        page.by("graph").locator("svg").wait_for()
        out, leaves = cpython("x*y+y", "x=3,y=-2")
        assert page.text("value") == f"{out.data:.4f}"
        assert page.text("grad-x") == f"{leaves['x'].grad:.4f}"
        assert page.text("grad-y") == f"{leaves['y'].grad:.4f}"
        page.check_clean(static_site_url + "explorer/")
    finally:
        page.page.close()
