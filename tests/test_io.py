"""Safe output: atomic files, devices and pipes written in place, whole result folders;
and the one checked reader of JSON files, and the layout of the io package."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chainrule.errors import ChainruleError
from chainrule.io.files import (
    atomic_write_bytes,
    ensure_writable_folder,
    parse_json_text,
    read_json_file,
    staged_folder,
)


def test_a_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_bytes(target, b"old")
    inode = target.stat().st_ino
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_ino != inode  # renamed over
    assert os.listdir(target.parent) == ["out.txt"]


def test_a_named_pipe_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so opening to write works
    try:
        assert atomic_write_bytes(fifo, b"drawing") == fifo
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the pipe, not a regular file
        assert os.read(reader, 100) == b"drawing"
    finally:
        os.close(reader)
    assert os.listdir(tmp_path) == ["pipe"]


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        atomic_write_bytes(tmp_path, b"x")


RUN = ("a.txt", "b.txt")


def test_a_staged_folder_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with staged_folder(out, RUN) as staging:
        (staging / "a.txt").write_text("1")
        assert not out.exists()
        assert staging.parent == tmp_path and staging.name.startswith(".run.")
    assert sorted(os.listdir(out)) == ["a.txt"] and os.listdir(tmp_path) == ["run"]


def test_a_failed_run_leaves_the_previous_results_untouched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "b.txt").write_text("old b")
    with pytest.raises(KeyboardInterrupt), staged_folder(out, RUN) as staging:
        (staging / "a.txt").write_text("new a")
        raise KeyboardInterrupt
    assert (out / "a.txt").read_text() == "old a" and (out / "b.txt").read_text() == "old b"
    assert os.listdir(tmp_path) == ["run"]  # the staging folder is gone


def test_a_new_run_replaces_the_old_one_entirely(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "b.txt").write_text("old b")
    with staged_folder(out, RUN) as staging:
        (staging / "a.txt").write_text("new a")
    assert os.listdir(out) == ["a.txt"] and (out / "a.txt").read_text() == "new a"
    assert os.listdir(tmp_path) == ["run"]


def refused(out: Path, error: type[Exception], words: str) -> None:
    """``staged_folder(out)`` raises on entry, before the block runs, and changes nothing."""
    top = out.parent.parent
    before = sorted(str(p.relative_to(top)) for p in top.rglob("*"))
    entered = []
    with pytest.raises(error, match=words), staged_folder(out, RUN):
        entered.append(True)
    assert entered == []
    assert sorted(str(p.relative_to(top)) for p in top.rglob("*")) == before


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("x")
    refused(tmp_path / "run", FileExistsError, "is a file, not a folder")
    refused(tmp_path / "run" / "sub", OSError, "a part of that path is a file")


def test_a_folder_with_other_files_is_refused_not_emptied(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "notes.txt").write_text("mine")
    refused(out, FileExistsError, r"holds files that are not results of a run \(notes.txt\)")
    assert (out / "notes.txt").read_text() == "mine"


def test_the_current_folder_is_never_replaced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for out in (".", tmp_path, tmp_path.parent):
        with pytest.raises(FileExistsError, match="current folder"), staged_folder(out, RUN):
            pass
    assert tmp_path.is_dir()


def test_ensure_writable_folder(tmp_path: Path) -> None:
    assert ensure_writable_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        ensure_writable_folder(tmp_path / "f")
    with pytest.raises(OSError, match="a part of that path is a file"):
        ensure_writable_folder(tmp_path / "f" / "sub")


@pytest.mark.parametrize("out", ["/proc/x", "/proc/x/y"])
def test_a_folder_that_refuses_new_entries_is_not_called_missing(out: str) -> None:
    # /proc exists, but refuses new entries with ENOENT: "No such file or directory"
    # would be untrue, so the message names /proc and says what it does not allow
    for attempt in (
        lambda: ensure_writable_folder(out),
        lambda: staged_folder(out, ()).__enter__(),
    ):
        with pytest.raises(OSError) as caught:
            attempt()
        message = str(caught.value.strerror)  # what the CLI prints
        assert message.startswith("cannot write into the folder '/proc' (it exists, ")
        assert "does not allow new files" in message and "No such file" not in message


# -- permissions ------------------------------------------------------------------------


@pytest.fixture
def umask_027():
    """A umask that differs from the usual 022, so a mode taken from it shows."""
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path, umask_027) -> None:
    private = tmp_path / "secret.json"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic_write_bytes(private, b"new")
    assert private.read_bytes() == b"new" and mode(private) == 0o600
    shared = tmp_path / "shared.json"
    shared.write_bytes(b"old")
    shared.chmod(0o664)
    link = tmp_path / "link.json"
    link.symlink_to(shared)
    atomic_write_bytes(link, b"new")  # the file behind the link keeps its mode
    assert shared.read_bytes() == b"new" and mode(shared) == 0o664


def test_a_new_file_gets_the_mode_of_the_umask(tmp_path: Path, umask_027) -> None:
    atomic_write_bytes(tmp_path / "new.json", b"x")  # not mkstemp's private 0600
    assert mode(tmp_path / "new.json") == 0o666 & ~0o027


def test_a_replaced_results_folder_keeps_its_permissions(tmp_path: Path, umask_027) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "a.txt").write_text("old")
    (out / "a.txt").chmod(0o600)
    out.chmod(0o700)
    with staged_folder(out, RUN) as staging:
        (staging / "a.txt").write_text("new")
        (staging / "b.txt").write_text("new too")
    assert (out / "a.txt").read_text() == "new" and mode(out) == 0o700
    assert mode(out / "a.txt") == 0o600  # each file keeps its own mode
    assert mode(out / "b.txt") == 0o600  # a new one: no more open than its 0700 folder
    out.chmod(0o750)
    with staged_folder(out, RUN) as staging:
        (staging / "b.txt").write_text("again")  # a.txt goes: the folder holds b.txt alone
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"] and mode(out / "b.txt") == 0o600
    with staged_folder(out, RUN) as staging:
        (staging / "a.txt").write_text("back")
    assert mode(out / "a.txt") == 0o640  # the umask's (027), within the 0750 folder
    with staged_folder(tmp_path / "fresh", RUN):
        pass
    assert mode(tmp_path / "fresh") == 0o777 & ~0o027


# -- what a killed process leaves behind ------------------------------------------------


@pytest.fixture
def dead_pid() -> int:
    """The process id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def live_pid():
    """The process id of another process, running until the test ends."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)  # fmt: skip
    yield process.pid
    process.stdin.close()
    process.wait()


def leftover(folder: Path, name: str, pid: int, is_folder: bool) -> Path:
    """A temporary as the process ``pid`` leaves it when killed (SIGKILL) mid-write."""
    path = folder / f".{name}.{pid}.k3x_9q2z.tmp"
    if is_folder:
        path.mkdir()
        (path / "a.txt").write_text("half")
    else:
        path.write_bytes(b"half")
    return path


def test_temporaries_of_dead_processes_are_removed_not_those_of_live_ones(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    stale_file = leftover(tmp_path, "out.txt", dead_pid, is_folder=False)
    live_file = leftover(tmp_path, "out.txt", live_pid, is_folder=False)
    atomic_write_bytes(tmp_path / "out.txt", b"new")
    assert not stale_file.exists() and live_file.read_bytes() == b"half"
    out = tmp_path / "run"
    out.mkdir()
    (out / "a.txt").write_text("old")
    inside = leftover(out, "a.txt", dead_pid, is_folder=False)  # a half-written result
    stale_folder = leftover(tmp_path, "run", dead_pid, is_folder=True)
    live_folder = leftover(tmp_path, "run", live_pid, is_folder=True)
    with staged_folder(out, RUN) as staging:  # the stale file inside is not "foreign"
        assert staging.name.startswith(f".run.{os.getpid()}.")
        (staging / "a.txt").write_text("new")
    assert not inside.exists() and not stale_folder.exists()
    assert (live_folder / "a.txt").read_text() == "half"  # a live run's: never touched
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["out.txt", "run", live_file.name, live_folder.name]
    )
    assert os.listdir(out) == ["a.txt"]


def test_dev_stdout_is_written_through_not_truncated(tmp_path: Path) -> None:
    """`(echo earlier; chainrule ... -o /dev/stdout) > log`: every line kept, in order."""
    log = tmp_path / "log.txt"
    script = (
        "from chainrule.io.files import atomic_write_bytes; print('before'); "
        "atomic_write_bytes('/dev/stdout', b'data\\n'); print('after')"
    )
    with open(log, "wb") as shell_redirect:
        shell_redirect.write(b"earlier\n")
        shell_redirect.flush()
        subprocess.run([sys.executable, "-c", script], stdout=shell_redirect, check=True)
    assert log.read_bytes() == b"earlier\nbefore\ndata\nafter\n"


class Refused(ChainruleError):
    """The error a caller of the JSON reader asks for."""


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a": [1, NaN]}', "non-finite number NaN in the test file"),
        ('{"a": -Infinity}', "non-finite number -Infinity in the test file"),
        ('{"a": {"lr": 1e999}}', "the entry a.lr holds 1e999, too large for a float"),
        ('{"a": [0, -1e400]}', "the entry a[1] holds -1e400, too large"),
        ('{"n": ' + "7" * 5_000 + "}", "entry n holds 777777777777...77777 (5,000 digits)"),
        ('{"n": ' + str(10**400) + "}", "(401 digits), too large for a float; not a test file"),
        ('{"a": [1, 2', "not a valid test file (truncated or corrupt JSON"),
        ("{" * 10 + "}", "not a valid test file"),
        (deep(100_000), "nested too deeply to read"),
    ],
    ids=["nan", "infinity", "1e999", "-1e400", "5000-digits", "10**400", "cut", "bad", "deep"],
)
def test_json_that_no_file_of_chainrule_holds_is_refused_naming_what(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(Refused, match=re.escape(words)):
        parse_json_text(text, "test file", Refused)
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(Refused, match=f"{re.escape(str(path))}: "):
        read_json_file(path, kind="test file", limit=10**6, limit_name="LIMIT", error=Refused)


def test_json_within_reach_reads_back_exactly() -> None:
    text = '{"n": ' + "9" * 300 + ', "x": [1.5, -2.2250738585072014e-308], "s": "NaN"}'
    assert parse_json_text(text, "test file", Refused) == {
        "n": int("9" * 300), "x": [1.5, -2.2250738585072014e-308], "s": "NaN"}  # fmt: skip
    assert parse_json_text(deep(64), "test file", Refused, max_depth=64) == json.loads(deep(64))


@pytest.mark.parametrize("levels", [65, 900, 100_000])
def test_json_deeper_than_asked_is_refused_however_deep(levels: int) -> None:
    with pytest.raises(Refused, match=r"not a test file \(its JSON nests more than 64 levels deep"):
        parse_json_text(deep(levels), "test file", Refused, max_depth=64)


def test_a_json_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(Refused, match=r"larger than 100 bytes \(LIMIT\); it is not a test file"):
        read_json_file(path, kind="test file", limit=100, limit_name="LIMIT", error=Refused)
    with pytest.raises(Refused, match="no such test file"):
        read_json_file(
            tmp_path / "nowhere", kind="test file", limit=100, limit_name="L", error=Refused
        )


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_nn_loads_no_file_code_and_no_numpy_and_still_offers_save_and_load() -> None:
    """The layering: nn imports nothing of io at import time; its model-file names come
    from chainrule.io.model_files on first use, the very same objects."""
    loaded = run_python(
        "import sys, chainrule.nn as nn\n"
        "print(sorted(m for m in sys.modules if m.startswith('chainrule.io') or m in "
        "('numpy', 'matplotlib')))\n"
        "from chainrule.io import model_files\n"
        "print(all(getattr(nn, n) is getattr(model_files, n) for n in model_files.__all__))\n"
        "print(all(hasattr(nn, n) for n in nn.__all__), 'save' in dir(nn))"
    )
    assert loaded.splitlines() == ["[]", "True", "True True"]


@pytest.mark.parametrize(
    "first",
    [
        "chainrule.io.model_files",
        "chainrule.io.export",
        "chainrule.io.files",
        "chainrule.nn",
        "chainrule.export",
        "chainrule.csvrows",
    ],
)
def test_every_module_of_io_and_nn_imports_first_without_a_cycle(first: str) -> None:
    """Whichever is imported first, nothing is half-initialised."""
    assert (
        run_python(
            f"import {first}\n"
            "import chainrule.nn as nn, chainrule.export as e, chainrule.csvrows as c\n"
            "from chainrule.io import files, model_files\n"
            "print(nn.save is model_files.save, e.ModelFileError is nn.ModelFileError,\n"
            "      c.read_rows.__module__, nn.MAX_MODEL_BYTES == model_files.MAX_MODEL_BYTES)"
        )
        == "True True chainrule.io.csvrows True"
    )
