"""The dataset registry: how a data set is found, fetched and loaded.

`load_dataset(name)` looks for the files in this order, like
`tensorflow_datasets` and `keras.datasets` do:

1. `$KBF_DATA_DIR/<name>/` (or the `data_dir` argument), a local copy;
2. the cache, `infra.cache_dir("datasets")/<name>/`: `$KBF_CACHE_DIR/datasets/<name>/`
   (default `$XDG_CACHE_HOME/keras_bert_ft/...` or `~/.cache/keras_bert_ft/...`);
   a copy cached by an earlier release directly under `$KBF_CACHE_DIR/<name>/` is
   still found;
3. the data set's canonical public URL, downloaded into the cache
   atomically (fetched into a temporary folder, renamed when complete).

Each entry (a `DatasetSpec`) knows its files and how to parse them into named
splits. The built-in ones (sst2, sms_spam, snli, mrpc, imdb, goemotions) live
in `keras_bert_ft.data.datasets`, one module each, and register themselves
here when `keras_bert_ft.data` is imported; this module never imports them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keras_bert_ft import infra
from keras_bert_ft.data.download import extract
from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.errors import DownloadError
from keras_bert_ft.infra import DEFAULT_TIMEOUT_S


class DatasetUnavailableError(DownloadError):
    """A registered data set is neither on disk nor downloadable right now."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set at its canonical URL; archives are unpacked."""

    url: str
    filename: str
    extract: bool = False
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, fetch and parse one data set."""

    name: str
    description: str
    homepage: str
    files: tuple[RemoteFile, ...]
    label_names: tuple[str, ...]
    text_pair: bool
    layout: str  # the local files, for error messages
    locate: Callable[[Path], Path | None]  # the data root inside a folder, or None
    parse: Callable[[Path], dict[str, TextDataset]]


def default_cache_dir() -> Path:
    """The data set cache: `infra.cache_dir("datasets")` ($KBF_CACHE_DIR/datasets, ...)."""
    return infra.cache_dir("datasets")


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) a registry entry."""
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    """The registered entry called `name`; KeyError naming the known ones otherwise."""
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def list_datasets() -> list[str]:
    """The registered data set names, sorted."""
    return sorted(DATASETS)


def fetch(
    spec: DatasetSpec, cache_dir: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Path:
    """Download and unpack `spec`'s files into `cache_dir/<name>/`, atomically.

    Everything goes into a temporary folder first, which is renamed into
    place only once the expected files are there.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / spec.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".partial", dir=cache_dir))
    try:
        for f in spec.files:
            path = infra.download(f.url, tmp / f.filename, sha256=f.sha256, timeout=timeout)
            if f.extract:
                extract(path, tmp)
                path.unlink()
        if spec.locate(tmp) is None:
            raise DownloadError(f"the downloaded files do not contain {spec.layout}")
        if final.exists():
            shutil.rmtree(final)  # an incomplete copy left by hand
        try:
            os.replace(tmp, final)
        except OSError:
            # Another process finished the same download first; use its copy.
            if spec.locate(final) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    root = spec.locate(final)
    assert root is not None
    return root


def dataset_dir(
    name: str | DatasetSpec,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """The folder holding a data set's files: local dir, then cache, then download."""
    spec = get_spec(name) if isinstance(name, str) else name
    base = data_dir if data_dir is not None else os.environ.get("KBF_DATA_DIR")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    looked = []
    candidates = ([Path(base) / spec.name] if base else []) + [cache / spec.name]
    if cache_dir is None:  # where releases before the shared cache layout put data sets
        candidates.append(infra.cache_root() / spec.name)
    for candidate in candidates:
        looked.append(str(candidate))
        if candidate.is_dir() and (root := spec.locate(candidate)) is not None:
            return root
    urls = ", ".join(f.url for f in spec.files)
    advice = (
        f"set KBF_DATA_DIR to a folder that holds {spec.name}/ with {spec.layout}, "
        f"or put those files in {cache / spec.name}/ (they come from {urls})"
    )
    if not download:
        raise DatasetUnavailableError(
            f"data set {spec.name!r} not found (looked in {', '.join(looked)}); {advice}"
        )
    try:
        return fetch(spec, cache, timeout=timeout)
    except DownloadError as e:
        raise DatasetUnavailableError(
            f"data set {spec.name!r} not found locally (looked in {', '.join(looked)}) and the "
            f"download failed: {e}. If this machine is offline, {advice}"
        ) from e


def load_dataset(
    name: str | DatasetSpec,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, TextDataset] | TextDataset:
    """Load a registered data set: all splits as a dict, or one `split`.

    Splits are named "train", "validation" and "test" (where the data set
    has labels for them).
    """
    spec = get_spec(name) if isinstance(name, str) else name
    root = dataset_dir(spec, data_dir=data_dir, cache_dir=cache_dir, download=download)
    splits = spec.parse(root)
    if split is None:
        return splits
    if split not in splits:
        raise KeyError(f"{spec.name} has no split {split!r}; it has: {', '.join(splits)}")
    return splits[split]


# Constants that moved to the data set modules; the old names go after one release.
_MOVED = {
    "SMS_SPLIT": "sms_spam",
    "SMS_SPLIT_SEED": "sms_spam",
    "IMDB_VALIDATION_FRACTION": "imdb",
    "IMDB_SPLIT_SEED": "imdb",
}


def __getattr__(name: str):
    if name in _MOVED:
        new = f"keras_bert_ft.data.datasets.{_MOVED[name]}"
        warnings.warn(
            f"keras_bert_ft.data.registry.{name} moved to {new}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
