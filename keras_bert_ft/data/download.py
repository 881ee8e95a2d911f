"""Downloading and unpacking data set files, atomically.

A file is fetched into a temporary file beside its target and renamed into
place only when complete, so an interrupted download never looks finished.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from keras_bert_ft.atomic import atomic_path
from keras_bert_ft.errors import DownloadError

DEFAULT_TIMEOUT_S = 15.0


def offline() -> bool:
    """True when KBF_OFFLINE is set to a true value: never touch the network."""
    return os.environ.get("KBF_OFFLINE", "").lower() in ("1", "true", "yes")


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Fetch `url` to `dest` atomically; verify `sha256` when given.

    `timeout` bounds each network operation, so a machine without network
    access fails within seconds instead of hanging.
    """
    dest = Path(dest)
    if offline() and not url.startswith("file:"):
        raise DownloadError(f"not downloading {url}: KBF_OFFLINE is set")
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
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url}: {reason}") from e
    return dest


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a .zip, .tar.gz/.tgz or .tar archive into `dest_dir`.

    Members with absolute paths or `..` are refused rather than written
    outside `dest_dir`; links and devices in tar files are skipped.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not _safe_member(member):
                    raise DownloadError(f"unsafe path {member!r} in {archive}")
            zf.extractall(dest_dir)
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tf:
            members = []
            for m in tf.getmembers():
                if not _safe_member(m.name):
                    raise DownloadError(f"unsafe path {m.name!r} in {archive}")
                if m.isfile() or m.isdir():
                    members.append(m)
            for m in members:
                target = dest_dir / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    else:
        raise DownloadError(f"unknown archive type: {archive}")
    return dest_dir
