"""Safe file output: atomic writes of files and of whole folders.

A regular file is written to a temporary file in the same folder, then renamed over
the target, so readers see the old file or the new, never half. A target that is not
a regular file -- ``/dev/null``, a named pipe, a terminal -- is written straight
into: renaming over it would replace the device or pipe itself. A folder of results
(:func:`staged_folder`, :func:`replace_folder`) is filled under a temporary name and
renamed into place, so it never mixes the files of two runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
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

    Parent folders are created as needed. A symbolic link is followed (the file it
    points to is replaced, the link kept). An existing target that is not a regular
    file (a device such as ``/dev/null``, a named pipe) is opened and written
    directly, as is a file reached through ``/dev`` or ``/proc`` (``/dev/stdout``):
    those are someone's open file, and a rename would detach or replace it. A folder
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
        if not stat.S_ISREG(info.st_mode) or _names_a_descriptor(target):
            with open(target, "wb") as f:
                f.write(data)
            return target
        if target.is_symlink():
            target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for text, encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _staging_folder(target: Path) -> Path:
    """A new hidden folder beside ``target``, with the permissions a new folder gets."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
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
    crash between them leaves the old folder in a hidden ``.NAME.*.old`` sibling.
    """
    if target.is_dir() and any(target.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
