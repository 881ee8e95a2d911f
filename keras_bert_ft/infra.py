"""Atomic file writes: write to a temporary file beside the target, then rename;
and manifests (name, size, sha256 of each file) that tell a complete folder from
a damaged one.

A reader never sees a half-written file, and an interrupted write leaves the
previous version (or nothing) in place, because `os.replace` is atomic on
POSIX and Windows when source and target are on the same file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`.

    On an exception the temporary file is removed and `path` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write `data` (text or bytes) to `path` atomically and return the path."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


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
