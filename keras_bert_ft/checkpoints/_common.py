"""Helpers shared by the checkpoint formats: weight assignment with clear errors,
vocabulary checks, atomic writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

import numpy as np

# fetch(canonical_name) -> (name in the source, array in canonical layout or None,
# whether the source stores it transposed).
Fetch = Callable[[str], tuple[str, "np.ndarray | None", bool]]


def assign_weights(encoder, fetch: Fetch, where: str) -> None:
    """Copy every weight of `encoder` from a source, checking names and shapes.

    Raises ValueError naming the source variable, the expected and the found
    shape (in the source's own layout) when one is missing or misshapen.
    """
    for name, var in encoder.weight_map().items():
        source_name, value, transposed = fetch(name)
        expected = tuple(var.shape)[::-1] if transposed else tuple(var.shape)
        if value is None:
            raise ValueError(
                f"{where}: variable {source_name!r} is missing "
                f"(expected shape {expected}, found none)"
            )
        value = np.asarray(value)
        found = value.shape[::-1] if transposed else value.shape
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(
                f"{where}: variable {source_name!r} has the wrong shape: "
                f"expected {expected}, found {tuple(found)}"
            )
        var.assign(value.astype("float32"))


def count_vocab(vocab_file: str | os.PathLike) -> int:
    """Number of entries (lines) in a `vocab.txt`."""
    with open(vocab_file, encoding="utf-8") as f:
        return sum(1 for _ in f)


def check_vocab(vocab_file: str | os.PathLike | None, vocab_size: int) -> None:
    """Fail when the vocabulary and the embedding matrix disagree in size.

    Ids beyond the vocab would index rows that have no token, and a larger vocab
    would index past the table; neither is silently fixable.
    """
    if vocab_file is None:
        return
    n = count_vocab(vocab_file)
    if n != vocab_size:
        raise ValueError(
            f"{vocab_file} has {n} tokens but the word embedding matrix has "
            f"{vocab_size} rows; the vocabulary does not belong to these weights"
        )


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` then rename onto `path`, so readers never see half a file."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def tokenizer_for(vocab_file: str | None, lowercase: bool):
    """The package's WordPiece tokenizer over `vocab_file`, or None without one."""
    if vocab_file is None:
        return None
    from keras_bert_ft.tokenization import WordPieceTokenizer

    return WordPieceTokenizer(os.fspath(vocab_file), lowercase=lowercase)
