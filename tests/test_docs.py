"""The documentation site: every guide's code runs and prints what it says, the site
builds with ``mkdocs build --strict``, and every internal link and anchor resolves."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from chainrule.explorer.server import write_site

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = sorted(DOCS.glob("*.md"))


def build_site(folder: Path) -> Path:
    """``make docs`` into ``folder``: the strict mkdocs build, then the explorer in it."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
    command += ["-f", str(ROOT / "mkdocs.yml"), "-d", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    write_site(folder / "explorer")
    return folder


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order (shell blocks are ```console, never run)."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)


def test_every_guide_is_in_the_site() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert {p.name for p in GUIDES} <= set(re.findall(r"\b([\w-]+\.md)\b", nav))


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_code_runs_and_prints_what_it_claims(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page's blocks run in order in one namespace, in an empty folder; a print's
    comment is exactly what it prints."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in python_blocks(page):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(page), "exec"), namespace)
        claimed = " ".join(re.findall(r"print\(.*\)\s+# (.*)", block)).split()
        assert out.getvalue().split() == claimed, block


def test_guides_show_only_runnable_or_shell_blocks() -> None:
    """Every fenced block is Python (run above), a shell session or plain output.

    Shell sessions (```console) are shown, not run: they start a server (`chainrule
    explore`), train for seconds, or need a run's files; the commands behind them are
    tested in test_cli.py, test_gpt_cli.py and the other command-line tests.
    """
    for page in GUIDES:
        fences = re.findall(r"^```(\S*)", page.read_text(encoding="utf-8"), re.M)
        languages = set(fences[::2])  # opening fences only
        assert languages <= {"python", "console", "text"}, (page.name, languages)


class _Links(HTMLParser):
    """Every href and src of a page, and every id (anchor) in it."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and name in ("href", "src"):
                self.links.append(value)
            if value is not None and name in ("id", "name"):
                self.ids.add(value)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _broken_links(site: Path) -> list[str]:
    """``page: link`` for each relative link whose file or anchor is missing.

    404.html is left out: a host serves it for any missing path, at any depth, so mkdocs
    gives it links from the site's root on purpose.
    """
    parsed = {page: _parse(page) for page in site.rglob("*.html")}
    broken = []
    for page, links in parsed.items():
        if page == site / "404.html":
            continue
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue  # off the site: not ours to check
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            inside = target.is_relative_to(site.resolve())
            if not inside or not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    return broken


def test_the_site_builds_strictly_and_every_internal_link_resolves(tmp_path: Path) -> None:
    site = build_site(tmp_path / "site")
    assert (site / "index.html").is_file() and (site / "api" / "core.html").is_file()
    assert (site / "explorer" / "index.html").is_file()
    explorer_guide = (site / "explorer.html").read_text(encoding="utf-8")
    assert 'href="explorer/index.html"' in explorer_guide
    assert _broken_links(site) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a><a href="c.html">c</a>')
    (tmp_path / "b.html").write_text('<h1 id="y">b</h1>')
    assert _broken_links(tmp_path) == ["a.html: b.html#x (no such anchor)", "a.html: c.html"]
