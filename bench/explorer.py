"""The explorer in a real browser: how long until the engine is ready, and 100 moons steps.

Drives Debian's Chromium (``/usr/bin/chromium``) with Playwright against
``chainrule explore``'s server on 127.0.0.1, as a learner would use the page:

- **engine ready**: from starting to load the page until its status says ``ready``
  (Pyodide started, chainrule's source unpacked and imported), in a fresh browser
  context each round, so nothing is cached;
- **100 moons steps**: the training view as a shared link opens it
  (``#view=train&dataset=moons&layers=16,16&lr=0.1``), Play pressed, until the step
  counter reaches 100 -- with the page drawing the decision regions, curves and network
  as it goes;
- for scale, the same 100 steps of the same session in this CPython.

``python bench/explorer.py --rounds 5 --write bench/RESULTS.md`` records the medians;
``--screenshots docs`` also takes the explorer guide's pictures of both views at 1280×800.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import ROOT, machine, write_block  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
# The browser and its flags, as the explorer's tests run it.
from test_explorer_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from chainrule.explorer.server import ExplorerServer  # noqa: E402
from chainrule.explorer.session import TrainingSession  # noqa: E402

TRAIN_LINK = "#view=train&dataset=moons&layers=16,16&lr=0.1"
STEPS = 100


def wait_ready(page: Any) -> None:
    page.wait_for_function(
        "document.querySelector('[data-testid=status]').textContent === 'ready'", timeout=120_000
    )


def play_until(page: Any, steps: int) -> None:
    """In the training view: press Play, wait for the step counter to reach ``steps``
    (the network drawn first, so the run has started), press Pause."""
    page.get_by_test_id("train-network").locator("svg").wait_for()
    page.get_by_test_id("train-play").click()
    page.wait_for_function(
        f"Number(document.querySelector('[data-testid=train-step-count]').textContent) >= {steps}",
        timeout=600_000,
    )
    page.get_by_test_id("train-play").click()


def one_round(browser: Any, url: str) -> dict[str, float]:
    """A fresh context: the page loaded cold, then 100 training steps played."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url + TRAIN_LINK)
    wait_ready(page)
    ready = time.perf_counter() - start
    page.get_by_test_id("train-network").locator("svg").wait_for()  # before the clock
    start = time.perf_counter()
    play_until(page, STEPS)
    steps = time.perf_counter() - start
    reached = int(page.get_by_test_id("train-step-count").inner_text())
    accuracy = float(page.get_by_test_id("train-accuracy").inner_text())
    context.close()
    return {"ready": ready, "steps": steps * STEPS / reached, "accuracy": accuracy}


def cpython_steps() -> float:
    session = TrainingSession("moons", (16, 16), "relu", lr=0.1)
    start = time.perf_counter()
    session.step(STEPS)
    return time.perf_counter() - start


def screenshots(browser: Any, url: str, folder: Path) -> list[Path]:
    """Both views at 1280×800: the lecture's neuron mid-backward, and moons after training."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url)
    wait_ready(page)
    page.get_by_test_id("graph").locator("svg").wait_for()
    for k in range(1, 8):  # stop at the step where x1 gets its gradient
        page.get_by_test_id("step-backward").click()
        page.wait_for_function(
            "k => document.querySelector('[data-testid=step-progress]').textContent"
            ".startsWith(`node ${k} of`)",
            arg=k,
        )
    expression = folder / "explorer-expression.png"
    page.screenshot(path=str(expression))
    page.goto(url + TRAIN_LINK)
    page.reload()
    wait_ready(page)
    play_until(page, 150)
    page.wait_for_timeout(500)  # let the last drawing land before the picture
    training = folder / "explorer-training.png"
    page.screenshot(path=str(training))
    context.close()
    return [expression, training]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="also record the results in this file")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="save both views here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = ExplorerServer(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rounds: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for r in range(args.rounds):
            rounds.append(one_round(browser, server.url))
            print(f"round {r + 1}: {rounds[-1]}", file=sys.stderr)
        if args.screenshots:
            for path in screenshots(browser, server.url, args.screenshots):
                print(f"wrote {path}", file=sys.stderr)
        version = browser.version
        browser.close()
    server.shutdown()
    native = statistics.median(cpython_steps() for _ in range(3))
    ready = statistics.median(r["ready"] for r in rounds)
    steps = statistics.median(r["steps"] for r in rounds)
    accuracy = min(r["accuracy"] for r in rounds)
    table = "\n".join(
        [
            "| explorer, in Chromium " + version + " | target | measured (median) | met |",
            "|---|---|---|---|",
            f"| engine ready (page load, cold cache) | < 10 s | {ready:.2f} s | "
            f"{'yes' if ready < 10 else '**NO**'} |",
            f"| 100 moons steps, Play, drawing as it goes | < 60 s | {steps:.2f} s "
            f"({1000 * steps / STEPS:.0f} ms/step; lowest accuracy {accuracy:.0f}%) | "
            f"{'yes' if steps < 60 else '**NO**'} |",
            f"| the same 100 steps in CPython {platform.python_version()}, for scale | – | "
            f"{native:.2f} s ({steps / native:.1f}× faster than the page) | – |",
        ]
    )
    print(table)
    if args.write:
        command = f"python bench/explorer.py --rounds {args.rounds} --write {args.write}"
        write_block(args.write, "explorer", f"{machine()}\nCommand: `{command}`.\n", table)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
