"""Serve the explorer on this machine (``chainrule explore``), or write it out as a static site.

The explorer is a static page: HTML, CSS and JavaScript in ``static/``, the browser
runtime served beside it as ``vendor/`` (Pyodide and Viz.js at the versions pinned in
``explorer/package-lock.json``: from ``static/vendor/``, filled by ``make explorer``,
or from the per-user cache that ``chainrule explore`` fetches them into, see
:mod:`chainrule.explorer.runtime`), and
``chainrule.zip``: chainrule's own source, the very files of the installed package,
zipped when the server starts (with the pure-Python ``graphviz`` package that
:func:`chainrule.graph.draw_dot` builds its DOT source with).

The server binds ``127.0.0.1`` only and answers ``GET`` and ``HEAD`` for exactly the
files of the site, found by exact name in a table made at start: a path that is not in
the table is a 404, and one with ``..``, a backslash or an encoded slash is refused
with a 400 before it is looked up. Nothing outside the site can be reached. A request
whose ``Host`` is not this machine's own name and port gets a 421, so a page on another
site cannot read the explorer through a name rebound to 127.0.0.1. Every answer, errors
included, carries the same security headers; a silent connection is closed after
:data:`TIMEOUT` seconds, one whose request is not in after :data:`REQUEST_DEADLINE`
seconds too (however slowly it drips), and at most :data:`MAX_CONNECTIONS` are served
at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import shutil
import socket
import sys
import threading
import webbrowser
import zipfile
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import chainrule
from chainrule.errors import ChainruleError
from chainrule.explorer import runtime
from chainrule.io.files import staged_folder

__all__ = [
    "HOST",
    "MAX_CONNECTIONS",
    "PACKAGE_DATA",
    "REQUEST_DEADLINE",
    "STATIC",
    "TIMEOUT",
    "ExplorerNotInstalledError",
    "ExplorerServer",
    "serve",
    "site_files",
    "source_archive",
    "write_site",
]

#: The only address the server listens on: this machine, never the network.
HOST = "127.0.0.1"

#: The page's own files; ``vendor/`` in it may hold the runtime that ``make explorer`` fetches.
STATIC = Path(__file__).resolve().parent / "static"

_STATIC_IN_PACKAGE = STATIC.relative_to(Path(__file__).resolve().parents[1]).as_posix()

#: What chainrule.zip carries of the package besides its modules (``*.py``): the data
#: files that pyproject.toml's package-data declares, less the explorer's own page.
PACKAGE_DATA = ("py.typed", "datasets/names.txt", "datasets/NAMES-SOURCE.md")

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

#: The page may load only its own files; WebAssembly needs 'wasm-unsafe-eval', and
#: Pyodide's loader compiles a little JavaScript of its own ('unsafe-eval').
_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "worker-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


#: Headers on every answer, errors included (a browser must not guess a type, nor run a
#: script from anywhere else).
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", _CSP),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)

#: Seconds a connection may stay silent (no request yet, a request half sent, an answer
#: not read) before it is closed: idle connections must not hold threads for ever.
TIMEOUT = 20.0

#: Seconds a client has to send its whole request (line and headers), however it drips
#: them: a client sending a byte now and then must not hold a thread for ever either.
REQUEST_DEADLINE = 30.0

#: Connections served at once (a browser opens about six); more are answered 503.
MAX_CONNECTIONS = 32


def _answer(status: HTTPStatus, message: str) -> bytes:
    """A whole HTTP answer with a one-line body, for when there is no handler to send it."""
    body = f"{status.value} {message}\n".encode()
    head = [f"HTTP/1.0 {status.value} {status.phrase}", "Content-Type: text/plain; charset=utf-8"]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{header}: {value}" for header, value in _SECURITY_HEADERS]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


_BUSY = _answer(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections at once; try again")


class ExplorerNotInstalledError(ChainruleError, FileNotFoundError):
    """The explorer's browser runtime (Pyodide, Viz.js) has not been fetched."""


def _runtime(static: Path) -> dict[str, Path]:
    """The runtime's folders (see :func:`chainrule.explorer.runtime.find`), or
    :class:`ExplorerNotInstalledError` saying how to fetch it."""
    found = runtime.find(static)
    if found is None:
        raise ExplorerNotInstalledError(
            "the explorer's browser runtime (Pyodide, Viz.js) is missing: run "
            "`chainrule explore` once with an internet connection (it fetches it into "
            f"{runtime.cache_root()}), or `make explorer` in the chainrule checkout"
        )
    return found


def _visible_files(root: Path) -> list[Path]:
    """Every file under ``root``, as paths relative to it, sorted; never a hidden one.

    Names that start with a dot (``.env``, ``.engine.py.swp``, ``.git/``) and
    ``__pycache__`` folders are left out. A folder that is a symbolic link is followed
    (``static/vendor`` may be one), each real folder once.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back into a folder already walked
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        here = Path(folder).relative_to(root)
        found += [here / n for n in names if not n.startswith(".") and Path(folder, n).is_file()]
    return sorted(found)


def _package_files(
    root: Path, prefix: str, data: tuple[str, ...] = (), skip: str | None = None
) -> list[tuple[Path, str]]:
    """(file, name in the archive) for a package folder: its modules (``*.py``) and the
    data files named in ``data``, the folder ``skip`` left out; nothing else (no
    ``*.pyc``, no editor's or hidden files)."""
    out = []
    for rel in _visible_files(root):
        name = rel.as_posix()
        if skip is not None and name.startswith(skip + "/"):
            continue
        if rel.suffix == ".py" or name in data:
            out.append((root / rel, f"{prefix}/{name}"))
    return out


def source_archive(package: Path | None = None) -> bytes:
    """chainrule's installed source as a zip, for the page to import under Pyodide.

    The modules of the ``chainrule`` package folder (``package``; by default the one
    installed) and its declared data files (:data:`PACKAGE_DATA`), and the modules of
    the pure-Python ``graphviz`` package that :func:`chainrule.graph.draw_dot` needs:
    an allow-list, so a hidden file (``.env``), an editor's swap file or compiled
    bytecode lying in the folder is never published. The explorer's static folder is
    left out (it is the page itself). Made afresh from the files on disk, so the
    browser runs exactly the code this Python runs. The entries carry a fixed date, so
    the same files always give the same bytes.
    """
    root = package if package is not None else Path(chainrule.__file__).resolve().parent
    files = _package_files(root, "chainrule", PACKAGE_DATA, skip=_STATIC_IN_PACKAGE)
    spec = importlib.util.find_spec("graphviz")
    if spec is None or spec.origin is None:
        raise ExplorerNotInstalledError("the graphviz Python package, a dependency, is missing")
    files += _package_files(Path(spec.origin).resolve().parent, "graphviz")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in files:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def site_files(static: Path = STATIC) -> dict[str, Path | bytes]:
    """The site, as a table from URL path to a file on disk or to bytes.

    Every file under ``static`` (names starting with a dot left out), ``/`` for the
    page itself, ``/chainrule.zip`` (:func:`source_archive`), and the runtime's files
    as ``/vendor/<package>/<name>``, from ``static/vendor`` or the per-user cache
    (:mod:`chainrule.explorer.runtime`). Raises :class:`ExplorerNotInstalledError`
    when the runtime is in neither.
    """
    vendor = _runtime(static)
    table: dict[str, Path | bytes] = {}
    for rel in _visible_files(static):
        if rel.parts[0] != "vendor":  # the runtime's files, found where they are, below
            table["/" + rel.as_posix()] = static / rel
    for package in runtime.PACKAGES:
        for name in package.files.values():
            table[f"/vendor/{package.folder}/{name}"] = vendor[package.folder] / name
    table["/"] = table["/index.html"]
    table["/chainrule.zip"] = source_archive()
    return table


def write_site(directory: str | Path) -> Path:
    """Write the whole site to ``directory`` (made if missing; must be empty if it exists),
    ready to publish on any static web server. Returns the folder.

    The site is built in a hidden sibling folder and renamed into place
    (:func:`chainrule.io.files.staged_folder`): a failure part-way leaves ``directory`` as it
    was, so trying again just works.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target}: exists and is not an empty folder")
    files = site_files()
    with staged_folder(target, replaceable=()) as staging:
        for url, content in files.items():
            if url == "/":
                continue
            path = staging / url.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_bytes(content)
    return target


def _refused(raw: str) -> bool:
    """True for a request path that tries to leave the site, in any spelling."""
    path = urlsplit(raw).path
    if not path.startswith("/"):
        return True  # absolute-form or empty: not a path on this site
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered or "\\" in path:
        return True
    decoded = unquote(path)
    if "%" in decoded:  # encoded twice: %252e%252e decodes to %2e%2e
        return True
    return any(part in (".", "..") for part in decoded.split("/"))


def _host_error(values: list[str], port: int) -> tuple[HTTPStatus, str] | None:
    """Why a request's Host header is refused, or None when it names this server.

    Only ``127.0.0.1:PORT``, ``localhost:PORT`` and ``[::1]:PORT`` (without the port on
    port 80) are this server: a page on another site whose name was made to point at
    127.0.0.1 (DNS rebinding) sends its own name, and must not read the answer.
    """
    if len(values) != 1:
        return HTTPStatus.BAD_REQUEST, "a request needs exactly one Host header"
    names = ("127.0.0.1", "localhost", "[::1]")
    allowed = {f"{name}:{port}" for name in names} | (set(names) if port == 80 else set())
    if values[0].strip().lower() in allowed:
        return None
    return (
        HTTPStatus.MISDIRECTED_REQUEST,
        f"this server answers to 127.0.0.1:{port}, localhost:{port} or [::1]:{port} only",
    )


def _handler(
    files: Mapping[str, Path | bytes], quiet: bool, seconds: float, deadline: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "chainrule-explorer"
        sys_version = ""
        # errors in one line of plain text (the base class writes a page of HTML)
        error_message_format = "%(code)d %(message)s\n"
        error_content_type = "text/plain; charset=utf-8"
        # a request line without a version gets an answer with headers too, not HTTP/0.9's
        default_request_version = "HTTP/1.0"
        timeout = seconds  # on the socket: a silent client is dropped

        def setup(self) -> None:
            super().setup()
            self._deadline = threading.Timer(deadline, self._too_slow)
            self._deadline.daemon = True
            self._deadline.start()

        def _too_slow(self) -> None:
            """The request is not in after ``deadline`` seconds: end the connection (the
            handler's read then sees its end)."""
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def parse_request(self) -> bool:
            """Read the headers; once they are in, the deadline no longer applies."""
            done = super().parse_request()
            self._deadline.cancel()
            return done

        def finish(self) -> None:
            self._deadline.cancel()
            super().finish()

        def do_GET(self) -> None:
            self._send(body=True)

        def do_HEAD(self) -> None:
            self._send(body=False)

        def _send(self, body: bool) -> None:
            port = self.connection.getsockname()[1]  # the port this server listens on
            wrong_host = _host_error(self.headers.get_all("Host") or [], port)
            if wrong_host is not None:
                self.send_error(*wrong_host)
                return
            if _refused(self.path):
                self.send_error(HTTPStatus.BAD_REQUEST, "path not allowed")
                return
            url = unquote(urlsplit(self.path).path)
            content = files.get(url)
            if content is None:
                self.send_error(HTTPStatus.NOT_FOUND, "not a file of the explorer")
                return
            data = content.read_bytes() if isinstance(content, Path) else content
            name = "/index.html" if url == "/" else url
            self.send_response(HTTPStatus.OK)
            self.send_header(
                "Content-Type", _TYPES.get(Path(name).suffix, "application/octet-stream")
            )
            self.send_header("Content-Length", str(len(data)))
            vendor = url.startswith("/vendor/")
            self.send_header("Cache-Control", "max-age=86400" if vendor else "no-cache")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def end_headers(self) -> None:
            """Every answer, an error too, keeps the page to itself."""
            for header, value in _SECURITY_HEADERS:
                self.send_header(header, value)
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            if not quiet:
                super().log_message(format, *args)

    return Handler


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server on ``127.0.0.1:port`` (``port`` 0: a free one).

    A connection that sends nothing for ``timeout`` seconds (:data:`TIMEOUT`), or has
    not sent its whole request after ``deadline`` seconds (:data:`REQUEST_DEADLINE`), is
    closed, and at most ``max_connections`` (:data:`MAX_CONNECTIONS`) are served at once,
    each holding a thread; one more is answered 503 at once and closed.
    """

    daemon_threads = True

    def __init__(
        self,
        port: int = 0,
        quiet: bool = True,
        timeout: float | None = None,
        max_connections: int | None = None,
        deadline: float | None = None,
    ) -> None:
        timeout = TIMEOUT if timeout is None else timeout
        deadline = REQUEST_DEADLINE if deadline is None else deadline
        max_connections = MAX_CONNECTIONS if max_connections is None else max_connections
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number from 0 to 65535, got {port!r}")
        for name, seconds in (("timeout", timeout), ("deadline", deadline)):
            if not (isinstance(seconds, (int, float)) and 0 < seconds < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
        if isinstance(max_connections, bool) or not (
            isinstance(max_connections, int) and max_connections >= 1
        ):
            raise ValueError(
                f"max_connections must be a whole number >= 1, got {max_connections!r}"
            )
        files = site_files()
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((HOST, port), _handler(files, quiet, float(timeout), float(deadline)))

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own if a slot is free; else refuse it."""
        if self._slots.acquire(blocking=False):
            super().process_request(request, client_address)
            return
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
        except OSError:
            pass  # the client is gone already
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is its own business: nothing is printed. Any
        other failure is one line on stderr, never a traceback in the user's terminal."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        print(f"chainrule explore: error serving a request: {exc!r:.200}", file=sys.stderr)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handle the connection; its slot is free again before the socket is closed."""
        try:
            super().finish_request(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


def serve(port: int = 0, open_browser: bool = True, quiet: bool = True) -> None:
    """Serve the explorer until Ctrl-C: print its address, open it in the browser
    unless ``open_browser`` is False, and stop cleanly on ``KeyboardInterrupt``."""
    with ExplorerServer(port, quiet=quiet) as server:
        try:  # from the first line printed on, Ctrl-C stops the server cleanly
            print(f"chainrule explorer: {server.url}  (Ctrl-C stops it)", flush=True)
            if open_browser:
                threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
            server.serve_forever()
        except KeyboardInterrupt:
            print("chainrule explorer: stopped", file=sys.stderr, flush=True)
