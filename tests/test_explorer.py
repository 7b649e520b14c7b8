"""The explorer without a browser: its server (127.0.0.1 only, nothing but the site's
files, no path traversal), the source archive, and the session the page runs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from setuptools.config.pyprojecttoml import read_configuration

import chainrule
from chainrule import data, plots, topological_order
from chainrule.cli import build_parser, main, train_config
from chainrule.explorer import runtime, server
from chainrule.explorer.session import ExpressionSession, TrainingSession, call
from chainrule.expr import ExpressionError, evaluate
from chainrule.training import Run, TrainConfig, build, train

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serving(**options: Any) -> Iterator[server.ExplorerServer]:
    """An explorer server on a free port, answering in a thread of its own."""
    srv = server.ExplorerServer(0, **options)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def running() -> Iterator[server.ExplorerServer]:
    with serving() as srv:
        yield srv


def connect(srv: server.ExplorerServer) -> socket.socket:
    host, port = srv.server_address[:2]
    return socket.create_connection((str(host), port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(srv: server.ExplorerServer, request: bytes) -> tuple[int, str, bytes]:
    """Send ``request`` byte for byte; the answer's status, lower-cased head and body."""
    with connect(srv) as sock:
        sock.sendall(request)
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1").lower(), body


def raw_get(srv: server.ExplorerServer, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the request line exactly as written (no client-side normalising)."""
    host = f"127.0.0.1:{srv.server_address[1]}"
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, _, body = exchange(srv, request.encode())
    return status, body


def test_the_server_listens_on_loopback_only(running) -> None:
    assert running.server_address[0] == "127.0.0.1"
    assert running.url.startswith("http://127.0.0.1:")
    # Another address of this machine, if it has one, gets no answer.
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        own = probe.getsockname()[0]
        probe.close()
    except OSError:
        own = None
    if own and not own.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((own, running.server_address[1]), timeout=2)


def test_it_serves_the_page_the_runtime_and_chainrules_own_source(running) -> None:
    status, body = raw_get(running, "/")
    assert status == 200 and b'data-testid="status"' in body
    assert raw_get(running, "/index.html")[1] == body
    status, wasm = raw_get(running, "/vendor/pyodide/pyodide.asm.wasm")
    assert status == 200 and wasm[:4] == b"\0asm"
    status, archive = raw_get(running, "/chainrule.zip")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        names = set(z.namelist())
        package = Path(chainrule.__file__).parent
        # Every module of the installed package, byte for byte, wherever it lies.
        modules = [p.relative_to(package).as_posix() for p in package.rglob("*.py")]
        assert len(modules) > 40 and "core/rules.py" in modules
        for rel in modules:
            assert z.read(f"chainrule/{rel}") == (package / rel).read_bytes(), rel
        assert "graphviz/__init__.py" in names
        assert not any(n.startswith("chainrule/explorer/static/") for n in names)
        assert not any("__pycache__" in n for n in names)
    assert server.source_archive() == archive  # the same files give the same bytes


def test_the_source_archive_ships_modules_and_declared_data_never_hidden_files(tmp_path) -> None:
    """A package folder holding a .env, editor swap and backup files, bytecode and a
    hidden folder: the archive carries its modules and declared data files, nothing else."""
    package = Path(chainrule.__file__).resolve().parent
    copy = tmp_path / "chainrule"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("static", "__pycache__"))
    strays = [
        ".env",
        ".engine.py.swp",
        "engine.py~",
        "#engine.py#",
        "engine.pyc",
        "notes.txt",
        "__pycache__/engine.cpython-311.pyc",
        ".hidden/secret.py",
        "datasets/.DS_Store",
        "datasets/extra.csv",
    ]
    for name in strays:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("SECRET=1\n")
    with zipfile.ZipFile(io.BytesIO(server.source_archive(copy))) as z:
        shipped = {n.removeprefix("chainrule/") for n in z.namelist() if n.startswith("chainrule/")}
    modules = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts and "static" not in p.parts
    }
    assert shipped == modules | set(server.PACKAGE_DATA)
    # The data files are exactly those pyproject.toml declares (less the page itself).
    config = read_configuration(str(ROOT / "pyproject.toml"))
    declared = config["tool"]["setuptools"]["package-data"]["chainrule"]
    assert set(server.PACKAGE_DATA) == {d for d in declared if not d.startswith("explorer/static")}


@pytest.mark.parametrize(
    "target",
    [
        "/../pyproject.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/pyproject.toml",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/vendor/../../server.py",
        "/vendor/%2e%2e/%2e%2e/server.py",
        "/..%2fserver.py",
        "/..%2Fsession.py",
        "/%252e%252e/server.py",
        "/..\\server.py",
        "/vendor\\..\\..\\server.py",
        "/./index.html",
        "/index.html%00.png",
        "//etc/passwd",
        "/etc/passwd",
        "/server.py",
        "/session.py",
        "/__init__.py",
        "/static/index.html",
        "/vendor/pyodide/",
        "/.gitignore",
        "http://127.0.0.1/../pyproject.toml",
        "*",
    ],
)
def test_nothing_outside_the_site_is_served(running, target) -> None:
    status, body = raw_get(running, target)
    assert status in (400, 404)
    assert b"import " not in body and b"root:" not in body and b"[project]" not in body


def test_only_get_and_head(running) -> None:
    status, body = raw_get(running, "/", method="HEAD")
    assert status == 200 and body == b""
    assert raw_get(running, "/", method="POST")[0] == 501
    assert raw_get(running, "/", method="PUT")[0] == 501


def test_headers_keep_the_page_to_itself(running) -> None:
    host = f"127.0.0.1:{running.server_address[1]}"
    request = f"GET /app.js HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, head, _ = exchange(running, request.encode())
    assert status == 200
    assert "content-type: text/javascript" in head
    assert "content-security-policy: default-src 'self'" in head
    assert "x-content-type-options: nosniff" in head


def assert_a_one_line_error_that_keeps_the_page_to_itself(head: str, body: bytes) -> None:
    assert "content-security-policy: default-src 'self'" in head
    assert "x-content-type-options: nosniff" in head
    assert "content-type: text/plain" in head
    assert body.endswith(b"\n") and body.count(b"\n") == 1, body


@pytest.mark.parametrize(
    ("request_line", "expected"),
    [
        ("GET /../server.py HTTP/1.1", 400),
        ("GET /nothing-here HTTP/1.1", 404),
        ("POST / HTTP/1.1", 501),
        ("DELETE /index.html HTTP/1.1", 501),
        ("GET / HTTP/9.9", 505),
        ("NONSENSE", 400),
        ("GET / HTTP/1.1 extra", 400),
    ],
)
def test_every_error_answer_carries_the_headers_in_one_line(
    running, request_line, expected
) -> None:
    host = f"127.0.0.1:{running.server_address[1]}"
    request = f"{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, head, body = exchange(running, request.encode())
    assert status == expected
    assert_a_one_line_error_that_keeps_the_page_to_itself(head, body)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_the_page_answers_to_this_machines_names_with_the_port(running, name) -> None:
    port = running.server_address[1]
    request = f"GET / HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n"
    status, _, body = exchange(running, request.encode())
    assert status == 200 and b'data-testid="status"' in body


@pytest.mark.parametrize(
    "hosts",
    [
        ["evil.example"],
        ["evil.example:{port}"],
        ["localhost.evil.example:{port}"],
        ["127.0.0.1.nip.io:{port}"],
        ["127.0.0.1:{other}"],
        ["localhost:{other}"],
        ["localhost"],
        ["127.0.0.1"],
        ["127.0.0.2:{port}"],
        ["0.0.0.0:{port}"],
        ["[::1]"],
        [""],
        [],
        ["127.0.0.1:{port}", "evil.example"],
    ],
    ids=lambda hosts: repr(hosts),
)
def test_a_page_of_another_site_cannot_read_the_server(running, hosts) -> None:
    """DNS rebinding: a site whose name points at 127.0.0.1 sends its own Host. Only
    127.0.0.1, localhost or [::1] with this port are answered; the rest get a 421 (or a
    400 without exactly one Host), in one line, and none of the site."""
    port = running.server_address[1]
    lines = [f"Host: {h.format(port=port, other=port + 1)}" for h in hosts]
    for target in ("/", "/chainrule.zip"):
        request = "\r\n".join([f"GET {target} HTTP/1.1", *lines, "Connection: close", "", ""])
        status, head, body = exchange(running, request.encode())
        assert status == (421 if len(hosts) == 1 else 400)
        assert_a_one_line_error_that_keeps_the_page_to_itself(head, body)
        assert b"data-testid" not in body and not body.startswith(b"PK")


def test_idle_connections_are_closed_after_the_timeout() -> None:
    """A client that connects and sends nothing, or half a request, is dropped after
    the server's timeout (short here): the server closes, the client reads the end."""
    with serving(timeout=0.3) as srv:
        host = f"127.0.0.1:{srv.server_address[1]}"
        idle = [connect(srv) for _ in range(3)]
        idle[1].sendall(b"GET / HTTP/1.1\r\n")
        idle[2].sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
        for sock in idle:
            with sock:
                assert sock.recv(1024) == b""  # closed: no answer, no waiting for ever
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        assert exchange(srv, request)[0] == 200  # and the server still serves


def test_a_request_dripped_slowly_is_cut_off_at_the_deadline() -> None:
    """A client that keeps sending part of a request is not idle, so the timeout never
    fires; the deadline for the whole request ends it all the same."""
    with serving(timeout=30.0, deadline=0.3) as srv:
        with connect(srv) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
            sock.settimeout(10.0)  # far below the 30 s timeout: only the deadline can end it
            assert sock.recv(1024) == b""
        host = f"127.0.0.1:{srv.server_address[1]}"
        assert exchange(srv, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())[0] == 200


def test_a_client_that_goes_away_mid_answer_prints_nothing(capsys) -> None:
    """A reset or closed connection is the client's business: no traceback in the
    user's terminal; any other failure is one line."""
    with serving() as srv:
        for gone in (ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")):
            try:
                raise gone
            except OSError:
                srv.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise RuntimeError("disk on fire")
        except RuntimeError:
            srv.handle_error(None, ("127.0.0.1", 1))
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "disk on fire" in err and "Traceback" not in err


def test_connections_beyond_the_limit_are_refused_at_once() -> None:
    with serving(max_connections=2) as srv:
        host = f"127.0.0.1:{srv.server_address[1]}"
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        first, second = connect(srv), connect(srv)  # both idle, each holding a thread
        with connect(srv) as third:
            data = read_all(third)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 503 ")
        assert_a_one_line_error_that_keeps_the_page_to_itself(head.decode().lower(), body)
        with first:  # the first finishes its request: its slot is free again
            first.sendall(request)
            assert read_all(first).startswith(b"HTTP/1.0 200 ")
        assert exchange(srv, request)[0] == 200
        second.close()


def test_server_limits_must_make_sense() -> None:
    for bad in ({"timeout": 0}, {"timeout": math.inf}, {"max_connections": 0}):
        with pytest.raises(ValueError, match=r"timeout|max_connections"):
            server.ExplorerServer(0, **bad)


def test_write_site_makes_a_static_copy(tmp_path) -> None:
    out = server.write_site(tmp_path / "site")
    assert (out / "index.html").read_bytes() == (server.STATIC / "index.html").read_bytes()
    assert (out / "vendor/viz/viz.js").is_file()
    assert zipfile.is_zipfile(out / "chainrule.zip")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        server.write_site(out)


def test_a_site_that_fails_part_way_leaves_nothing_and_a_retry_works(tmp_path, monkeypatch) -> None:
    """The site is built beside the target and renamed into place: a copy failing
    part-way leaves no half-written folder (nor a hidden staging one), and the same
    command run again succeeds."""
    copyfile = shutil.copyfile
    copied = []

    def failing(src, dst, *args, **kwargs):
        if len(copied) == 3:
            raise OSError(28, "No space left on device", str(dst))
        copied.append(dst)
        return copyfile(src, dst, *args, **kwargs)

    for target in (tmp_path / "new", tmp_path / "empty"):
        copied.clear()
        (tmp_path / "empty").mkdir(exist_ok=True)
        monkeypatch.setattr(shutil, "copyfile", failing)
        with pytest.raises(OSError, match="No space left"):
            server.write_site(target)
        assert len(copied) == 3  # it did fail part-way
        assert not target.exists() or list(target.iterdir()) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no staging left
        monkeypatch.setattr(shutil, "copyfile", copyfile)
        server.write_site(target)
        assert (target / "index.html").read_bytes() == (server.STATIC / "index.html").read_bytes()
        assert (target / "vendor/pyodide/pyodide.asm.wasm").is_file()
        shutil.rmtree(target)


def test_a_missing_runtime_says_how_to_fetch_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(server.ExplorerNotInstalledError, match="make explorer"):
        server.site_files(tmp_path)


# -- the runtime fetched from the npm registry, without Node ------------------------------


def tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tarball holding ``files`` (member name -> content), as npm packs one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@contextlib.contextmanager
def fake_registry(tarballs: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """An npm registry on 127.0.0.1 serving ``tarballs`` (URL path -> bytes); yields its
    address and the list of paths asked for."""
    asked: list[str] = []

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = tarballs.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", asked
    finally:
        srv.shutdown()
        srv.server_close()


def fake_package(content: bytes, members: dict[str, bytes] | None = None) -> tuple[Any, bytes]:
    """A one-file runtime package and its tarball (``members``: the tarball's own)."""
    data = tarball(members if members is not None else {"package/dist/x.js": content})
    package = runtime.Package(
        name="@fake/x", version="1.2.3", integrity=integrity(data), folder="x",
        files={"package/dist/x.js": "x.js"},
    )  # fmt: skip
    return package, data


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "explorer"


def test_the_runtime_is_fetched_checked_and_cached_and_then_served(
    cache, tmp_path, monkeypatch
) -> None:
    package, data = fake_package(b"export const x = 1;")
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html>")
    said: list[str] = []
    monkeypatch.setattr(runtime, "PACKAGES", (package,))
    with fake_registry({"/@fake/x/-/x-1.2.3.tgz": data}) as (base, asked):
        monkeypatch.setenv("CHAINRULE_NPM_REGISTRY", base)
        assert runtime.find(static) is None
        folders = runtime.ensure(static, say=said.append)
        assert folders == {"x": cache / "fake-x-1.2.3"}
        assert (cache / "fake-x-1.2.3" / "x.js").read_bytes() == b"export const x = 1;"
        assert runtime.ensure(static, say=said.append) == folders  # from the cache
        table = server.site_files(static)
    assert asked == ["/@fake/x/-/x-1.2.3.tgz"]  # once: the second call fetched nothing
    assert len(said) == 1 and "@fake/x 1.2.3" in said[0] and "MB" in said[0]
    assert table["/vendor/x/x.js"] == cache / "fake-x-1.2.3" / "x.js"
    assert sorted(p.name for p in cache.iterdir()) == ["fake-x-1.2.3"]  # no staging left


@pytest.mark.parametrize(
    ("members", "why"),
    [
        (None, "does not match the sha512 integrity"),  # bytes changed after locking
        ({"package/dist/x.js": b"x", "package/../../evil.js": b"y"}, "outside its folder"),
        ({"/etc/evil": b"y", "package/dist/x.js": b"x"}, "outside its folder"),
        ({"package/dist/y.js": b"x"}, "has no file 'package/dist/x.js'"),
    ],
    ids=["integrity", "dot-dot", "absolute", "missing"],
)
def test_a_bad_tarball_is_refused_and_nothing_is_cached(cache, members, why) -> None:
    package, data = fake_package(b"good", members)
    served = data if members is not None else tarball({"package/dist/x.js": b"evil"})
    refused = pytest.raises(runtime.RuntimeFetchError, match=re.escape(why))
    with fake_registry({"/@fake/x/-/x-1.2.3.tgz": served}) as (base, _), refused:
        runtime.fetch(package, base, say=None)
    assert not cache.exists() or list(cache.iterdir()) == []
    assert not (cache.parent.parent / "evil.js").exists()


def test_offline_explore_fails_in_one_line_saying_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path / "cache"))
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("CHAINRULE_NPM_REGISTRY", f"http://127.0.0.1:{closed}")
    static = tmp_path / "static"  # a package installed without the runtime
    static.mkdir()
    monkeypatch.setattr(server, "STATIC", static)
    assert main(["explore", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "chainrule explore: error: cannot fetch the explorer's runtime (pyodide 314.0.7) "
        "from the npm registry: "
    )
    assert "connect to the internet once, or run `make explorer` in a checkout" in err
    assert not (tmp_path / "cache" / "explorer").exists() or not any(
        (tmp_path / "cache" / "explorer").iterdir()
    )


def test_the_runtime_pinned_in_the_package_is_the_lock_files() -> None:
    lock = json.loads((ROOT / "explorer" / "package-lock.json").read_text())["packages"]
    wanted = lock[""]["dependencies"]
    assert {p.name: p.version for p in runtime.PACKAGES} == wanted
    for package in runtime.PACKAGES:
        assert lock[f"node_modules/{package.name}"]["version"] == package.version
        assert lock[f"node_modules/{package.name}"]["integrity"] == package.integrity
    makefile = (ROOT / "Makefile").read_text()  # `make explorer` copies the same files
    for name in runtime.PACKAGES[0].files.values():
        assert name in makefile


def test_bad_ports_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        server.ExplorerServer(70000)
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "explore", "--port", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "port number from 0 to 65535" in result.stderr


def test_a_busy_port_is_one_line(running) -> None:
    port = running.server_address[1]
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "explore", "--no-browser", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"chainrule explore: error: cannot listen on 127.0.0.1:{port}"
    )


def test_ctrl_c_stops_the_server_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule.cli", "explore", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert "http://127.0.0.1:" in proc.stdout.readline()
    proc.send_signal(__import__("signal").SIGINT)
    assert proc.wait(timeout=20) == 0
    err = proc.stderr.read()
    assert "stopped" in err and "Traceback" not in err


# -- the session the page runs --------------------------------------------------------------


def test_the_expression_session_is_chainrules_own_computation() -> None:
    s = ExpressionSession("tanh(x1*w1 + x2*w2 + b)", "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432")
    state = s.state()
    out, leaves = evaluate(s.text, s.values)
    out.backward()
    assert state["value"] == out.data
    assert state["grads"] == {n: v.grad for n, v in leaves.items()}
    assert state["nodes"] == len(topological_order(out))
    assert state["dot"].startswith("digraph chainrule")
    assert state["order"] == [f"v{i}" for i in reversed(range(state["nodes"]))]
    s.begin_steps()
    ids = []
    while not (step := s.step())["done"]:
        ids.append(step["id"])
        for term in step["terms"]:
            assert term["contribution"] == term["local"] * term["upstream"]
    assert ids == state["order"]
    s.begin_steps()
    lines = [line for _ in range(len(ids)) for line in s.step()["lines"]]
    assert "∂v9/∂v8 = 1 − v9² = 0.5000 × upstream 1.0000 = 0.5000; grad of v8 = 0.5000" in lines
    assert "∂v6/∂x1 = w1 = -3.0000 × upstream 0.5000 = -1.5000; grad of x1 = -1.5000" in lines
    assert {n: s.leaves[n].grad for n in s.names} == state["grads"]  # ends where backward ends


def test_the_graph_names_each_node_as_the_step_text_does() -> None:
    s = ExpressionSession("x*y + 2*x", "x=3,y=-1")
    s.begin_steps()
    named = {}
    while not (step := s.step())["done"]:
        named[step["id"]] = step["name"]
        dot = step["dot"]
    assert "v5 (+)" in named.values() and any("the constant 2" in n for n in named.values())
    for nid, name in named.items():
        shown = re.search(rf"^\s*{nid} \[label=\"\{{ ([^|]*) \|", dot, re.M)
        assert shown is not None, nid
        # "v6 (+)" in the text, "v6" on the drawing; a variable by its name in both
        assert name.split(" (")[0] == shown.group(1), (name, shown.group(1))


def test_the_graph_can_run_top_to_bottom_for_narrow_screens() -> None:
    assert "rankdir=TB" in ExpressionSession("x*y", "x=1,y=2", "TB").dot()
    assert "rankdir=LR" in ExpressionSession("x*y", "x=1,y=2").dot()
    with pytest.raises(ValueError, match="rankdir"):
        ExpressionSession("x", "x=1", "RL")


def test_nudge_and_missing_variables() -> None:
    s = ExpressionSession("x**3 + y", "x=2")
    assert s.values == {"x": 2.0, "y": 1.0}  # y had no value: it starts at 1
    r = s.nudge("x", 1e-5)
    assert r["analytic"] == 12.0 and math.isclose(r["numeric"], 12.0, rel_tol=1e-8)
    with pytest.raises(ExpressionError, match="no variable `z`"):
        s.nudge("z")
    with pytest.raises(ExpressionError, match="positive"):
        s.nudge("x", 0.0)


def test_training_session_learns_and_takes_edits() -> None:
    s = TrainingSession("moons", (8,), "tanh", lr=0.2)
    first = s.step(1)
    assert first["step"] == 1 and len(first["losses"]) == 1
    out = s.step(30)
    assert out["step"] == 31 and len(out["losses"]) == 30
    assert out["loss"] < first["loss"]
    grid = s.grid(12)
    assert len(grid["classes"]) == len(grid["scores"]) == 144
    assert set(grid["classes"]) == {0, 1}
    assert [len(layer) for layer in s.weights()] == [8, 1]
    n = len(s.X)
    s.add_point(0.5, 0.5, 1)
    assert len(s.X) == n + 1 and s.y[-1] == 1
    s.remove_point(0.5, 0.5, radius=1e-9)
    assert len(s.X) == n
    with pytest.raises(ValueError, match="class must be 0 to 1"):
        s.add_point(0.0, 0.0, 2)
    spiral = TrainingSession("spiral")
    assert spiral.task.classes == 3
    # The classes' colours are the plots' (and the notebooks'): one palette everywhere.
    assert spiral.points()["colors"] == list(plots.CLASS_COLORS[:3])


def test_the_training_session_runs_the_very_steps_of_chainrule_train() -> None:
    """The page's training is a training.Run, not a copy of the loop: its losses are
    train()'s, mini-batches and all, and a learning rate set by hand is checked as
    --lr is and used from the next step on."""
    session = TrainingSession("moons", (8,), "tanh", lr=0.2, batch_size=16)
    assert isinstance(session.run, Run)
    session.step(12)
    config = replace(session.config, steps=12)
    assert session.loss == train(config).history.loss
    with pytest.raises(ValueError, match="lr must be a positive number"):
        session.set_lr(-1.0)
    session.set_lr(0.05)
    session.step(1)
    assert session.run.history.lr[-1] == 0.05 and session.steps == 13
    assert json.loads(call(json.dumps({"cmd": "train_new", "args": {"layers": [4]}})))["ok"]
    bad = json.loads(call(json.dumps({"cmd": "train_step", "args": {"lr": 0.0}})))
    assert not bad["ok"] and bad["error"].startswith("lr must be a positive number")
    good = json.loads(call(json.dumps({"cmd": "train_step", "args": {"lr": 0.05}})))
    assert good["ok"] and good["result"]["step"] == 1


def test_the_training_session_imports_with_the_standard_library_only() -> None:
    """Pyodide's page has no NumPy: the session, and the training package it runs,
    must import without it (the compiler is loaded only by compiled runs)."""
    code = (
        "import sys; import chainrule.explorer.session, chainrule.training; "
        "print(sorted(m for m in ('numpy', 'matplotlib', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_every_tool_makes_a_dataset_with_its_one_set_of_defaults(name) -> None:
    """data.DEFAULTS is the one place a dataset's size, noise and classes are written:
    TrainConfig, `chainrule train` and the explorer take them from it, and all make the
    very points the generator makes by default."""
    own = data.DEFAULTS[name]
    command_line = train_config(build_parser().parse_args(["train", "--dataset", name]))
    session = TrainingSession(name)
    configs = {
        "TrainConfig": TrainConfig(dataset=name),
        "chainrule train": command_line,
        "explorer": session.config,
    }
    for who, config in configs.items():
        assert (config.samples, config.noise, config.classes) == (
            own.samples,
            own.noise,
            own.classes,
        ), who
    generated = data.DATASETS[name](seed=command_line.seed)  # the generator's own defaults
    assert build(command_line)[2:] == generated
    assert (session.X, session.y) == generated


def test_train_help_shows_each_datasets_own_noise(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    shown = re.search(r"--noise NOISE noise \(([^)]*)\)", text)
    assert shown is not None, text
    noise = {}
    for group in shown.group(1).split("; "):
        names, value = group.rsplit(" ", 1)
        noise.update(dict.fromkeys(names.split(", "), float(value)))
    assert noise == {name: d.noise for name, d in data.DEFAULTS.items()}


@pytest.mark.parametrize("layers", [[], [0], [65], [8, 8, 8, 8, 8], [2.5], [True]])
def test_networks_too_big_or_malformed_for_the_page_are_refused(layers) -> None:
    with pytest.raises(ValueError, match="hidden layers: 1 to 4 layers of 1 to 64 neurons"):
        TrainingSession("moons", layers)


def test_call_answers_json_and_errors_in_one_line() -> None:
    ok = json.loads(call(json.dumps({"cmd": "expr_set", "args": {"text": "a*a", "at": "a=3"}})))
    assert ok["ok"] and ok["result"]["grads"] == {"a": 6.0}
    bad = json.loads(call(json.dumps({"cmd": "expr_set", "args": {"text": "a.b", "at": ""}})))
    assert not bad["ok"] and "\n" not in bad["error"]
    assert "unknown command" in json.loads(call('{"cmd": "rm"}'))["error"]
    assert "lr" in json.loads(call(json.dumps({"cmd": "train_new", "args": {"lr": -1}})))["error"]


def test_without_chromium_the_browser_tests_fail_with_the_install_hint(tmp_path) -> None:
    """They never skip: a machine without Chromium is told how to get it."""
    env = {**os.environ, "CHAINRULE_CHROMIUM": str(tmp_path / "no-chromium")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_explorer_browser.py"),
            "-k",
            "running_sum",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "apt-get install chromium" in result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout
