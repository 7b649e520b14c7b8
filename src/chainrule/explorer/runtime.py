"""The explorer's browser runtime (Pyodide, Viz.js): found, or fetched once, without Node.

The page needs a few files from two npm packages, at the versions pinned in
``explorer/package-lock.json`` (:data:`PACKAGES` is a copy of what it pins: the
tests check that they agree). They are looked for, in order:

1. in the package, ``static/vendor/`` -- filled by ``make explorer`` (``npm ci``) in a
   checkout, and shipped in a wheel built after it;
2. in the per-user cache, ``$XDG_CACHE_HOME/chainrule/explorer/<name>-<version>/`` (or
   ``~/.cache/...``; ``$CHAINRULE_CACHE`` replaces ``.../chainrule``).

:func:`ensure` fetches what is in neither: each package's tarball from the npm
registry (``$CHAINRULE_NPM_REGISTRY``, else ``https://registry.npmjs.org``), with a
progress bar, checked against the lock file's sha512 integrity *before* anything in
it is read; a tarball whose members would land outside their folder (``../``, an
absolute path) is refused whole. Only the files the page needs are kept, each one a
regular file of the tarball, written by this module (never by ``tarfile.extract``)
into a staging folder that is renamed into the cache when complete
(:func:`chainrule.io.files.staged_folder`): the cache holds a whole package or none.

So ``chainrule explore`` needs neither Node nor a checkout; shipping the runtime in
every wheel instead would add about 8 MB compressed (15 MB unpacked) to a wheel
of 0.36 MB, for a feature not every user opens.

Standard library only (and tqdm for the bar, which chainrule depends on).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from chainrule.errors import ChainruleError
from chainrule.io.files import staged_folder

__all__ = [
    "DEFAULT_REGISTRY",
    "MAX_TARBALL_BYTES",
    "PACKAGES",
    "Package",
    "RuntimeFetchError",
    "cache_root",
    "ensure",
    "fetch",
    "find",
    "registry",
]


@dataclass(frozen=True)
class Package:
    """One npm package of the runtime: what the lock file pins, and which of its files
    the page needs (path in the tarball -> name in the page's ``vendor/<folder>/``)."""

    name: str
    version: str
    integrity: str  # the lock file's "sha512-<base64>"
    folder: str  # vendor/<folder>/ on the page
    files: Mapping[str, str]

    @property
    def label(self) -> str:
        """``pyodide 314.0.7``: how messages name the package."""
        return f"{self.name} {self.version}"

    def tarball_url(self, base: str) -> str:
        """The registry's address of the tarball: ``<base>/<name>/-/<basename>-<v>.tgz``."""
        return f"{base}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def cache_name(self) -> str:
        """The package's folder in the cache: ``pyodide-314.0.7``, ``viz-js-viz-3.31.0``."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"


def _same_names(*names: str, under: str = "package/") -> dict[str, str]:
    return {under + name: name for name in names}


#: The packages the page needs, as explorer/package-lock.json pins them.
PACKAGES = (
    Package(
        name="pyodide",
        version="314.0.7",
        integrity="sha512-0YvXxEhfEdpLfb/XkM2BFAeMROq0iMUX2bzzH9pOttyMcWkwq+HbE5uyuGD82LN7y2q+"
        "SNvi/6V5JEsOlD2R1A==",
        folder="pyodide",
        files=_same_names(
            "pyodide.mjs",
            "pyodide.asm.mjs",
            "pyodide.asm.wasm",
            "python_stdlib.zip",
            "pyodide-lock.json",
            "README.md",
        ),
    ),
    Package(
        name="@viz-js/viz",
        version="3.31.0",
        integrity="sha512-r7zlQdRvcwvIpjHGgs+KNWHeE/P5/Dq7k8ZAKaMCbZqomxCBJV78gVuQYaHzFVca+kB0"
        "mX0fMW9UFevCOBG50A==",
        folder="viz",
        files={"package/dist/viz.js": "viz.js", "package/README.md": "README.md"},
    ),
)

#: Where the tarballs come from unless ``$CHAINRULE_NPM_REGISTRY`` says otherwise.
DEFAULT_REGISTRY = "https://registry.npmjs.org"

#: The largest tarball read (the pinned ones are 6.5 MB and 1.9 MB): a registry that
#: sends without end must not fill the memory.
MAX_TARBALL_BYTES = 64 * 2**20

#: Seconds a connection to the registry may stay silent.
_TIMEOUT = 30.0


class RuntimeFetchError(ChainruleError, OSError):
    """The runtime could not be fetched, or what was fetched is not what the lock pins."""


def registry() -> str:
    """The npm registry's base address, without a trailing slash."""
    return (os.environ.get("CHAINRULE_NPM_REGISTRY") or DEFAULT_REGISTRY).rstrip("/")


def cache_root() -> Path:
    """The per-user folder the fetched runtime is kept in."""
    chainrule_cache = os.environ.get("CHAINRULE_CACHE")
    if chainrule_cache:
        return Path(chainrule_cache) / "explorer"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "chainrule" / "explorer"


def _complete(folder: Path, package: Package) -> bool:
    return all((folder / name).is_file() for name in package.files.values())


def find(static: Path) -> dict[str, Path] | None:
    """Each package's folder (``vendor/<folder>`` on the page -> a folder on disk), from
    the package's ``static/vendor`` or the cache; None when any is in neither."""
    found = {}
    for package in PACKAGES:
        for folder in (static / "vendor" / package.folder, cache_root() / package.cache_name()):
            if _complete(folder, package):
                found[package.folder] = folder
                break
        else:
            return None
    return found


def ensure(static: Path, say: Callable[[str], None] | None = print) -> dict[str, Path]:
    """:func:`find`, fetching into the cache whatever is missing first (``say`` prints
    what is fetched, and a progress bar is shown; None: silently, no bar)."""
    for package in PACKAGES:
        vendored = static / "vendor" / package.folder
        if not _complete(vendored, package) and not _complete(
            cache_root() / package.cache_name(), package
        ):
            fetch(package, say=say)
    found = find(static)
    assert found is not None  # each package is now in the cache
    return found


def fetch(
    package: Package, base: str | None = None, say: Callable[[str], None] | None = print
) -> Path:
    """Download ``package``'s tarball, check it, and keep its files in the cache.

    Returns the package's cache folder. Raises :class:`RuntimeFetchError` when the
    registry cannot be reached or answers with an error, when the tarball does not
    match the lock file's integrity, or when it is not a safe tarball holding the
    files; the cache is then left as it was.
    """
    url = package.tarball_url(base or registry())
    data = _download(package, url, say)
    _check_integrity(package, url, data)
    files = _unpack(package, url, data)
    target = cache_root() / package.cache_name()
    with staged_folder(target, replaceable=tuple(files)) as staging:
        for name, content in files.items():
            (staging / name).write_bytes(content)
    return target


def _cannot_fetch(package: Package, reason: object) -> RuntimeFetchError:
    return RuntimeFetchError(
        f"cannot fetch the explorer's runtime ({package.label}) from the npm registry: "
        f"{reason}; connect to the internet once, or run `make explorer` in a checkout"
    )


def _download(package: Package, url: str, say: Callable[[str], None] | None) -> bytes:
    """The tarball's bytes, read with a progress bar, at most :data:`MAX_TARBALL_BYTES`."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as answer:
            size = int(answer.headers.get("Content-Length") or 0) or None
            if size is not None and size > MAX_TARBALL_BYTES:
                raise _cannot_fetch(package, f"{url} is {size:,} bytes, more than expected")
            if say is not None:
                shown = f" ({size / 1e6:.1f} MB)" if size else ""
                say(f"fetching the explorer's runtime: {package.label} from {url}{shown}")
            return _read_all(package, url, answer, size, bar=say is not None)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        if isinstance(exc, RuntimeFetchError):
            raise
        raise _cannot_fetch(package, _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    """The words for a failed download: "HTTP Error 404: Not Found", "Connection
    refused", "Name or service not known", "timed out"."""
    reason: object = exc
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _read_all(package: Package, url: str, answer: Any, size: int | None, bar: bool) -> bytes:
    from tqdm import tqdm

    chunks, total = [], 0
    with tqdm(
        total=size, unit="B", unit_scale=True, desc=package.name, disable=not bar, file=sys.stderr
    ) as progress:
        while chunk := answer.read(1 << 16):
            total += len(chunk)
            if total > MAX_TARBALL_BYTES:
                raise _cannot_fetch(package, f"{url} is larger than {MAX_TARBALL_BYTES:,} bytes")
            chunks.append(chunk)
            progress.update(len(chunk))
    return b"".join(chunks)


def _check_integrity(package: Package, url: str, data: bytes) -> None:
    """Refuse bytes whose sha512 is not the lock file's, before anything reads them."""
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if digest != package.integrity:
        raise RuntimeFetchError(
            f"the tarball of {package.label} from {url} does not match the sha512 integrity "
            "that explorer/package-lock.json pins; nothing was kept"
        )


def _unpack(package: Package, url: str, data: bytes) -> dict[str, bytes]:
    """The needed files of the tarball (name in the cache -> bytes). A member whose path
    is absolute or climbs out (``..``) refuses the whole tarball; a needed file must be
    a regular file (not a link, a device, a folder)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            unsafe = [n for n in members if _unsafe(n)]
            if unsafe:
                raise RuntimeFetchError(
                    f"the tarball of {package.label} from {url} is refused: its member "
                    f"{unsafe[0]!r} would be written outside its folder; nothing was kept"
                )
            files = {}
            for inside, name in package.files.items():
                member = members.get(inside)
                source = tar.extractfile(member) if member is not None and member.isreg() else None
                if source is None:
                    raise RuntimeFetchError(
                        f"the tarball of {package.label} from {url} has no file {inside!r}; "
                        "nothing was kept"
                    )
                files[name] = source.read()
            return files
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, RuntimeFetchError):
            raise
        raise RuntimeFetchError(
            f"the tarball of {package.label} from {url} cannot be read ({exc}); nothing was kept"
        ) from None


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts
