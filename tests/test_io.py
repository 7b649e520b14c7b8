"""Safe output: atomic files, devices and pipes written in place, whole result folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chainrule._io import atomic_write_bytes, ensure_writable_folder, staged_folder


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
