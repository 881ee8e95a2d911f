"""The package's infrastructure: atomic writes, manifests, the cache folder, the offline
switch and HTTP downloads. Every module that writes files, caches something or fetches
something uses these, so there is one behaviour for each.

Atomic writes go to a temporary file (or folder) beside the target, which is renamed
onto it only when complete: a reader never sees half a file, and an interrupted write
leaves the previous version (or nothing) in place, because `os.replace` is atomic on
POSIX and Windows when source and target are on the same file system.

Environment variables:
  KBF_CACHE_DIR      the cache root (default $XDG_CACHE_HOME/keras_bert_ft, else
                     ~/.cache/keras_bert_ft); each kind of cache is a folder under it:
                     hf/ (Hub models), datasets/, vocab/.
  KBF_OFFLINE, HF_HUB_OFFLINE
                     either set to 1, true or yes (any case): never touch the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from keras_bert_ft.errors import DownloadError

# --------------------------------------------------------------------------- atomic writes

# What `atomic_write` accepts: the file's text or bytes, or a function that writes the
# file at the path it is given (for writers that insist on a path, e.g. safetensors).
Content = str | bytes | Callable[[Path], None]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error it is
    renamed onto `path`.

    `directory=False`: the temporary path is an empty file, to be overwritten.
    `directory=True`: it is an empty folder to fill; an existing folder at `path` is
    replaced whole (moved aside, then deleted), so readers see the old or the new one.
    On an exception the temporary file or folder is removed and `path` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, parent = f".{target.name}.", target.parent
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            _replace_dir(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if directory:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def _replace_dir(new: Path, target: Path) -> None:
    # A non-empty folder cannot be renamed onto another, so the old one goes aside first.
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, trash / "old")
        os.replace(new, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(new, target)


def atomic_write(path: str | os.PathLike, data: Content, encoding: str = "utf-8") -> Path:
    """Write `data` to the file `path` atomically and return the path.

    `data` is text (encoded with `encoding`), bytes, or a function called with the
    temporary path that writes the file there itself.
    """
    with atomic_path(path) as tmp:
        if callable(data):
            data(tmp)
        else:
            payload = data.encode(encoding) if isinstance(data, str) else data
            tmp.write_bytes(payload)
        _fsync(tmp)
    return Path(path)


def _fsync(path: Path) -> None:
    # Flush the contents to disk before the rename makes them visible.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- manifests

MANIFEST_FILE = "manifest.json"


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | os.PathLike) -> Path:
    """Record the name, size and sha256 of every file in `directory` in manifest.json.

    Write it last, once every other file is complete: `check_manifest` then
    tells a finished folder from a truncated or altered one.
    """
    root = Path(directory)
    files = [
        {"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(root.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    ]
    return atomic_write(root / MANIFEST_FILE, json.dumps({"files": files}, indent=2) + "\n")


def check_manifest(directory: str | os.PathLike) -> str | None:
    """None when every file listed in `directory`/manifest.json is there with its
    recorded size and sha256; otherwise a short phrase saying what is wrong."""
    root = Path(directory)
    try:
        listed = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
        entries = [(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in listed]
    except FileNotFoundError:
        return f"{MANIFEST_FILE} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} is unreadable"
    if not entries:
        return f"{MANIFEST_FILE} lists no files"
    for name, size, sha256 in entries:
        if Path(name).name != name:
            return f"{MANIFEST_FILE} names a file outside the folder ({name!r})"
        path = root / name
        if not path.is_file():
            return f"{name} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"{name} has {actual:,} bytes, the manifest says {size:,}"
        if sha256_file(path) != sha256:
            return f"{name} differs from the sha256 in the manifest"
    return None


# --------------------------------------------------------------------------- cache

_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")


def cache_root() -> Path:
    """$KBF_CACHE_DIR, else $XDG_CACHE_HOME/keras_bert_ft, else ~/.cache/keras_bert_ft."""
    if os.environ.get("KBF_CACHE_DIR"):
        return Path(os.environ["KBF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_bert_ft"


def cache_dir(kind: str) -> Path:
    """The cache folder for one kind of file ("hf", "datasets", "vocab"): `cache_root()`/kind.

    The folder is not created here; writers create it when they first write.
    """
    if not _KIND.match(kind):
        raise ValueError(f"cache kind {kind!r} is not a plain lowercase folder name")
    return cache_root() / kind


# --------------------------------------------------------------------------- network

OFFLINE_VARIABLES = ("KBF_OFFLINE", "HF_HUB_OFFLINE")
DEFAULT_TIMEOUT_S = 15.0


def offline_variable() -> str | None:
    """The first of KBF_OFFLINE / HF_HUB_OFFLINE set to 1, true or yes (any case), or None."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes"):
            return name
    return None


def offline() -> bool:
    """True when KBF_OFFLINE or HF_HUB_OFFLINE is set to 1, true or yes: never touch the
    network (file:// URLs still work)."""
    return offline_variable() is not None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    missing_ok: bool = False,
) -> Path | None:
    """Fetch `url` (http, https or file) to `dest` atomically; verify `sha256` when given.

    Raises DownloadError when offline (for network URLs), on a network or HTTP error,
    a short body or a checksum mismatch; nothing is left at `dest` then. With
    `missing_ok`, an HTTP 404 returns None instead. `timeout` bounds each network
    operation, so a machine without network access fails within seconds.
    """
    dest = Path(dest)
    variable = offline_variable()
    if variable is not None and not url.startswith("file:"):
        raise DownloadError(f"not downloading {url}: {variable} is set")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            expected = response.headers.get("Content-Length") if response.headers else None
            received = 0
            with open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
            # urllib returns a short body without complaint when the
            # connection drops; the declared length catches that.
            if expected is not None and received != int(expected):
                raise DownloadError(
                    f"could not download {url}: connection closed after {received} of "
                    f"{expected} bytes"
                )
            if sha256 is not None and digest.hexdigest() != sha256.lower():
                raise DownloadError(
                    f"checksum mismatch for {url}: got sha256 {digest.hexdigest()}, "
                    f"expected {sha256}"
                )
    except urllib.error.HTTPError as e:
        if missing_ok and e.code == 404:
            return None
        raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url}: {reason}") from e
    return dest
