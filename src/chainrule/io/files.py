"""Safe file input and output: atomic writes of files and of whole folders, and the one
bounded, checked reader of JSON files.

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

A JSON file that chainrule reads back (a model file, a checkpoint, an exported model's
metadata) is read by :func:`read_json_file` (or, for text already in memory,
:func:`parse_json_text`): at most so many bytes, UTF-8, no ``NaN`` or ``Infinity``, no
number that a float cannot hold (named by its entry: :func:`find_number_beyond_float`),
no nesting too deep to parse. So every number in what it returns converts to a finite
float.

This module needs only the standard library (and :mod:`chainrule.errors`): every unit
that reads or writes files may import it, and the explorer runs it in the browser.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError

__all__ = [
    "MAX_FLOAT_CHARS",
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_writable_folder",
    "find_number_beyond_float",
    "parse_json_text",
    "read_bounded_bytes",
    "read_json_file",
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


def _within(folder_mode: int) -> int:
    """The permission bits a file may have in a folder of ``folder_mode``: the owner's,
    and the group's or others' only where the folder lets them in at all."""
    group = 0o070 if folder_mode & 0o070 else 0
    other = 0o007 if folder_mode & 0o007 else 0
    return 0o700 | group | other


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
    new folder gets the permissions of the one it replaces, and each new file those of
    the file of its name that it replaces (a private ``model.json`` stays private); a
    file with no namesake there is made no more open than the folder (a file in a 0700
    folder is 0600), so a private run folder's results stay private from run to run.
    """
    if target.is_dir():  # the results folder keeps its permissions, and so do its files
        folder = target.stat()
        _give_mode(staging, folder, 0o777)
        for new in staging.iterdir():
            if not new.is_file():
                continue
            try:
                replaced: os.stat_result | None = (target / new.name).stat()
            except OSError:
                replaced = None
            if replaced is not None and stat.S_ISREG(replaced.st_mode):
                _give_mode(new, replaced, 0o666)
            else:
                os.chmod(new, stat.S_IMODE(new.stat().st_mode) & _within(folder.st_mode))
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
    elif isinstance(exc, FileNotFoundError):
        # /proc, /sys: the folder (or the nearest one above it that exists) is there,
        # but its file system refuses new entries with ENOENT, "No such file or
        # directory", which would be untrue: name that folder and say what happened
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and existing.is_dir():
            folder = existing
            reason = "it exists, but its file system does not allow new files or folders"
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


# -- reading JSON back ------------------------------------------------------------------

#: The longest JSON text of a finite float: ``json.dumps`` writes ``repr(x)``, the
#: shortest text that reads back exactly -- at most a sign, 17 significant digits, a
#: point and a three-digit exponent, as in ``-2.2250738585072014e-308``.
MAX_FLOAT_CHARS = 24


def read_json_file(
    path: str | os.PathLike[str],
    *,
    kind: str,
    limit: int,
    limit_name: str,
    error: type[ChainruleError],
    max_depth: int | None = None,
) -> Any:
    """The JSON value in the file ``path``, read with the care a model file gets.

    A file larger than ``limit`` bytes is refused unread (a device or pipe is read no
    further than that), and so is text that is not UTF-8; the text is then checked as
    :func:`parse_json_text` checks it (corrupt JSON, ``NaN``, numbers beyond a float,
    nesting). Each raises ``error``, naming the file and using ``kind`` ("model file",
    "checkpoint") and ``limit_name`` (the constant that sets ``limit``) in its message.
    """
    source = Path(path)
    try:
        text = _read_limited_text(source, kind, limit, limit_name, error)
        return parse_json_text(text, kind, error, max_depth=max_depth)
    except error as exc:
        raise error(f"{source}: {exc}") from None


def parse_json_text(
    text: str, kind: str, error: type[ChainruleError], *, max_depth: int | None = None
) -> Any:
    """``json.loads(text)``, refusing what no file chainrule writes holds, with ``error``.

    Refused: corrupt or truncated JSON; ``NaN``, ``Infinity`` and ``-Infinity``; a
    number that no float can hold (``1e999``, ``10**400``, an integer of thousands of
    digits, which is never converted: Python refuses past 4,300 digits), named by its
    entry (:func:`find_number_beyond_float`); JSON nested more than ``max_depth``
    levels (lists and objects), or, with no ``max_depth``, too deeply to parse. So
    every number in the value returned is an ``int`` or a finite ``float`` that
    ``float()`` converts without overflow. ``kind`` ("model file", "checkpoint")
    names the text in the messages.
    """
    too_deep = (
        f"not a {kind} (its JSON is nested too deeply to read)"
        if max_depth is None
        else f"not a {kind} (its JSON nests more than {max_depth} levels deep)"
    )

    def reject_constant(name: str) -> float:
        raise error(f"non-finite number {name} in the {kind}")

    try:
        doc = _loads_within_float(text, kind, error, reject_constant)
    except json.JSONDecodeError as exc:
        raise error(
            f"not a valid {kind} (truncated or corrupt JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise error(too_deep) from None
    if max_depth is not None and _depth(doc) > max_depth:
        raise error(too_deep)
    return doc


class _Unreadable:
    """A number in a JSON text that no float can hold, kept as its text so that
    :func:`find_number_beyond_float` can say where it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_FLOAT_MAX_INT = int(sys.float_info.max)
_FLOAT_MAX_DIGITS = len(str(_FLOAT_MAX_INT))


def _loads_within_float(
    text: str, kind: str, error: type[ChainruleError], constant: Callable[[str], float]
) -> Any:
    """``json.loads(text)``, refusing a number that no float can hold, by its entry.

    Such a number is parsed to an :class:`_Unreadable` (an integer's digits are never
    converted past a float's range), and the document is searched for it only if one
    was met.
    """
    met: list[_Unreadable] = []

    def parse_int(digits: str) -> int | _Unreadable:
        if len(digits) - digits.startswith("-") <= _FLOAT_MAX_DIGITS:
            n = int(digits)
            if -_FLOAT_MAX_INT <= n <= _FLOAT_MAX_INT:
                return n
        met.append(_Unreadable(digits))
        return met[-1]

    def parse_float(number: str) -> float | _Unreadable:
        x = float(number)
        if -math.inf < x < math.inf:
            return x
        met.append(_Unreadable(number))
        return met[-1]

    doc = json.loads(text, parse_constant=constant, parse_int=parse_int, parse_float=parse_float)
    beyond = find_number_beyond_float(doc) if met else None
    if beyond is not None:  # (None: a repeated key replaced the number)
        raise error(f"{beyond}; not a {kind} written by chainrule")
    return doc


def _depth(value: object) -> int:
    """How many levels of lists and objects ``value`` (parsed JSON) has, counted without
    recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _beyond_float(x: object) -> bool:
    if type(x) is int:  # not bool
        return not -_FLOAT_MAX_INT <= x <= _FLOAT_MAX_INT
    return type(x) is _Unreadable


def find_number_beyond_float(doc: object) -> str | None:
    """Where JSON-ready ``doc`` first holds a number that no float can hold, or None.

    The one check of the size of numbers in model files and checkpoints: their readers
    turn numbers into floats, and an integer like ``10**400`` would overflow there.
    Returns a phrase naming the entry and the number, such as ``the entry config.lr
    holds 100000000000...00000 (401 digits), too large for a float``.
    """
    found = _first_entry(doc, _beyond_float)
    if found is None:
        return None
    keys, x = found
    if isinstance(x, int):  # from Python, not from a file: too long to print in full
        shown = f"an integer of {x.bit_length():,} bits"
    elif isinstance(x, _Unreadable) and len(x.text) > MAX_FLOAT_CHARS:
        digits = x.text.lstrip("-")
        size = f"{len(digits):,} digits" if digits.isdigit() else f"{len(x.text):,} characters"
        shown = f"{x.text[:12]}...{x.text[-5:]} ({size})"
    else:
        shown = str(getattr(x, "text", x))
    return f"the entry {_entry_name(keys)} holds {shown}, too large for a float"


def _first_entry(
    doc: object, wanted: Callable[[object], bool]
) -> tuple[list[str | int], object] | None:
    """The keys leading to the first value in ``doc`` (dicts and lists, in order) that is
    ``wanted``, and that value. Iterative: deep JSON does not exhaust the stack."""
    if wanted(doc):
        return [], doc
    keys: list[str | int] = []
    levels = [_items(doc)]
    while levels:  # invariant: len(keys) == len(levels) - 1
        step = next(levels[-1], None)
        if step is None:
            levels.pop()
            if keys:
                keys.pop()
            continue
        key, value = step
        if wanted(value):
            return [*keys, key], value
        if isinstance(value, dict | list) and value:
            keys.append(key)
            levels.append(_items(value))
    return None


def _items(value: object) -> Iterator[tuple[str | int, object]]:
    if isinstance(value, dict):
        return iter(value.items())
    return enumerate(value) if isinstance(value, list) else iter(())


def _entry_name(keys: Sequence[str | int]) -> str:
    """``config.lr``, ``optimizer.m[3]``, ``parameters["wte.weight.0.0"]``."""
    name = ""
    for key in keys:
        if isinstance(key, int):
            name += f"[{key}]"
        elif key.isidentifier():
            name += f".{key}" if name else key
        else:
            name += f"[{json.dumps(key[:60])}]"
    return name or "(the whole file)"


def read_bounded_bytes(
    path: str | os.PathLike[str],
    *,
    kind: str,
    limit: int,
    limit_name: str,
    error: type[ChainruleError],
) -> bytes:
    """The bytes of the file ``path``, refusing anything larger than ``limit`` bytes unread.

    A regular file's size is checked before it is read; a device or pipe (which has no
    size) is read no further than ``limit + 1`` bytes. A missing file, a folder, and a
    file that cannot be read raise ``error`` too; every message names the file and
    uses ``kind`` ("model file") and ``limit_name`` (the constant that sets ``limit``).
    """
    source = Path(path)
    try:
        return _read_bounded(source, kind, limit, limit_name, error)
    except error as exc:
        raise error(f"{source}: {exc}") from None


def _read_bounded(
    source: Path, kind: str, limit: int, limit_name: str, error: type[ChainruleError]
) -> bytes:
    too_big = error(
        f"the file is larger than {limit:,} bytes ({limit_name}); "
        f"it is not a {kind} written by chainrule"
    )
    try:
        with open(source, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > limit:
                raise too_big
            data = f.read(limit + 1)  # devices and pipes have no size: read at most this
    except FileNotFoundError:
        raise error(f"no such {kind}") from None
    except IsADirectoryError:
        raise error(f"cannot read the {kind} (it is a folder; name a file)") from None
    except OSError as exc:
        raise error(f"cannot read the {kind} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise too_big
    return data


def _read_limited_text(
    source: Path, kind: str, limit: int, limit_name: str, error: type[ChainruleError]
) -> str:
    """The file's text, refusing anything larger than ``limit`` bytes unread."""
    data = _read_bounded(source, kind, limit, limit_name, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"not a {kind} (not UTF-8 text)") from None
