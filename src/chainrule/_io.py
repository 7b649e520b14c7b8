"""Safe file output: atomic writes of files and of whole folders.

A regular file is written to a temporary file in the same folder, then renamed over
the target, so readers see the old file or the new, never half. A target that is not
a regular file -- ``/dev/null``, a named pipe, a terminal -- is written straight
into: renaming over it would replace the device or pipe itself. A folder of results
(:func:`staged_folder`, :func:`replace_folder`) is filled under a temporary name and
renamed into place, so it never mixes the files of two runs.

A replaced file keeps its permissions (and, where allowed, its owner and group); a
new one gets the usual mode for the umask. Temporaries are hidden siblings named
``.NAME.PID.XXXXXXXX.tmp``: the process id lets a later write of ``NAME`` remove
those that a killed process (SIGKILL, a crash) left behind, and only those -- a
temporary of a process that is still running is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_writable_folder",
    "replace_folder",
    "staged_folder",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half.

    Parent folders are created as needed. A replaced file keeps its permissions (and,
    where allowed, its owner and group); a new one gets ``0666`` less the umask. A
    symbolic link is followed (the file it
    points to is replaced, the link kept). An existing target that is not a regular
    file (a device such as ``/dev/null``, a named pipe) is opened and written
    directly, as is a file reached through ``/dev`` or ``/proc`` (``/dev/stdout``):
    those are someone's open file, and a rename would detach or replace it. This
    process's own descriptor (``/dev/stdout``, ``/dev/fd/N``) is written through,
    after what is already there -- behind it may be the file of a shell's ``> log``. A
    folder
    raises :class:`IsADirectoryError`.
    """
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        raise NotADirectoryError(
            f"cannot write {str(target)!r}: a part of its folder path is a file"
        ) from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"cannot write {str(target)!r}: it is a folder")
        if _names_a_descriptor(target):
            _write_to_descriptor(target, data)
            return target
        if not stat.S_ISREG(info.st_mode):
            with open(target, "wb") as f:
                f.write(data)
            return target
        if target.is_symlink():
            target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _give_mode(Path(tmp), info, 0o666)  # mkstemp makes 0600 files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for text, encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _give_mode(path: Path, replaced: os.stat_result | None, new_mode: int) -> None:
    """Give the temporary ``path`` the mode (and, where allowed, the owner and group) of
    the file or folder ``replaced`` it is about to replace, or for a new one
    ``new_mode`` less the umask: mkstemp and mkdtemp make private 0600 / 0700 entries."""
    if replaced is None:
        os.chmod(path, new_mode & ~_umask())
        return
    if os.name == "posix" and (replaced.st_uid, replaced.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # only root may give a file away
            os.chown(path, replaced.st_uid, replaced.st_gid)
    os.chmod(path, stat.S_IMODE(replaced.st_mode))  # after chown, which clears set-id bits


def _temporary_prefix(target: Path) -> str:
    """``.NAME.PID.``: how the temporaries for ``target`` of this process begin."""
    return f".{target.name}.{os.getpid()}."


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove the temporaries for ``name`` in ``folder`` (``.NAME.PID.XXXXXXXX.tmp``, files
    or staging folders) whose process is gone: what a killed run left behind.

    A temporary of a live process, or one whose process cannot be told, is left alone.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.([0-9]+)\.[a-z0-9_]+\.tmp")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # an unreadable folder: the write itself will say what is wrong
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or _process_alive(int(found.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    """Whether the process ``pid`` may still be running (True when it cannot be told)."""
    if pid == os.getpid() or os.name != "posix":  # elsewhere os.kill would end it
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), or no such pid
        return True
    return True


def _staging_folder(target: Path) -> Path:
    """A new hidden folder beside ``target``, with the permissions a new folder gets
    (:func:`_swap_in` gives it those of the folder it replaces)."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(parent, target.name)
        staging = Path(
            tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=parent)
        )
        _give_mode(staging, None, 0o777)
    except OSError as exc:
        raise _cannot_write(parent, exc) from None
    return staging


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str], replaceable: Collection[str]) -> Iterator[Path]:
    """Fill a folder under a temporary name; on success, rename it to ``path``.

    Yields the temporary folder (a hidden sibling of ``path``). When the ``with``
    block ends normally the folder is renamed to ``path``; if it raises (or is
    interrupted) the temporary folder is removed and ``path`` is left as it was. So
    ``path`` never holds a mix of two runs' files.

    Everything is checked on entry, before any work: ``path`` must not be a file, nor
    the current folder or one above it, and an existing folder may hold only files
    named in ``replaceable`` (an earlier run's results, which the new run replaces) --
    anything else raises :class:`FileExistsError` rather than being deleted. Making
    the temporary folder proves the parent folder writable.

    Replacing an existing folder takes two renames (old out of the way, new in); a
    crash between them leaves the old results in a hidden ``.NAME.*.old`` sibling.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{str(target)!r} is a file, not a folder")
    here = Path.cwd().resolve()
    if target.resolve() in (here, *here.parents):
        raise FileExistsError(
            f"{str(target)!r} is the current folder or holds it; name a folder for the results"
        )
    if target.is_dir():
        for name in replaceable:  # a killed run's half-written checkpoint, say
            _remove_stale_temporaries(target, name)
        foreign = sorted(p.name for p in target.iterdir() if p.name not in replaceable)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise FileExistsError(
                f"{str(target)!r} holds files that are not results of a run ({shown}); "
                "choose a new or empty folder"
            )
    staging = _staging_folder(target)
    try:
        yield staging
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(path: str | os.PathLike[str], files: Mapping[str, bytes]) -> Path:
    """Make the folder ``path`` hold exactly ``files`` (name -> content), as one unit.

    The files are written into a hidden temporary sibling folder, which then takes the
    place of ``path`` (see :func:`staged_folder`): a reader sees the old folder or the
    new one, never a mix, and an interruption leaves the old one as it was.
    """
    target = Path(path)
    staging = _staging_folder(target)
    try:
        for name, data in files.items():
            with open(staging / name, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _swap_in(staging: Path, target: Path) -> None:
    """Rename the folder ``staging`` to ``target``, replacing what is there.

    Replacing a non-empty folder takes two renames (old out of the way, new in); a
    crash between them leaves the old folder in a hidden ``.NAME.*.old`` sibling. The
    new folder gets the permissions of the one it replaces.
    """
    if target.is_dir():  # the results folder keeps its permissions
        _give_mode(staging, target.stat(), 0o777)
    if target.is_dir() and any(target.iterdir()):
        old = Path(
            tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".old", dir=target.parent)
        )
        os.replace(target, old)  # onto the empty placeholder
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)  # a missing or empty folder is replaced at once


def ensure_writable_folder(path: str | os.PathLike[str]) -> Path:
    """Create the folder ``path`` if needed and prove it writable, before a long job.

    Raises :class:`FileExistsError` when ``path`` is a file and :class:`OSError`
    (``PermissionError``, ...) when the folder cannot be made or written to.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{str(target)!r} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    return target


def _cannot_write(folder: Path, exc: OSError) -> OSError:
    """The same kind of OSError, saying which folder could not be made or written."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a part of that path is a file"
    return type(exc)(exc.errno, f"cannot write into the folder {str(folder)!r} ({reason})")


def _names_a_descriptor(path: Path) -> bool:
    """``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``: another name for an open file."""
    parts = path.absolute().parts
    if parts[1:2] == ("dev",):
        return parts[2:3] in (("stdout",), ("stderr",), ("fd",))
    return parts[1:2] == ("proc",) and "fd" in parts


def _write_to_descriptor(path: Path, data: bytes) -> None:
    """Write ``data`` to the open file that ``path`` names (``/dev/stdout``, ...).

    This process's own descriptor is written through, at its position and after what
    Python has buffered for it: reopening the file behind it (a shell's ``> log``)
    would truncate it, or write where later output then overwrites. Another
    process's descriptor (``/proc/PID/fd/N``) is opened to append.
    """
    parts = path.absolute().parts
    number = {"stdout": 1, "stderr": 2}.get(parts[2]) if len(parts) == 3 else None
    if parts[2:3] == ("fd",) or parts[1:4] == ("proc", "self", "fd"):
        number = int(parts[-1]) if len(parts) in (4, 5) and parts[-1].isdigit() else None
    if number is None:
        with open(path, "ab") as f:
            f.write(data)
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.flush()
    view = memoryview(data)
    while view:
        view = view[os.write(number, view) :]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
