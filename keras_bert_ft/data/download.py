"""Unpacking data set archives safely. Downloads live in `keras_bert_ft.infra`;
`download` and `offline` are re-exported here for old callers."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from keras_bert_ft.errors import DownloadError
from keras_bert_ft.infra import DEFAULT_TIMEOUT_S, download, offline

__all__ = ["DEFAULT_TIMEOUT_S", "DownloadError", "download", "extract", "offline"]


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
