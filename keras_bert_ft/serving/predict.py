"""Predict with an exported serving SavedModel, as a TF Serving client would see it.

Only TensorFlow and tensorflow-text are needed: the SavedModel tokenizes raw
text itself. Used by `keras-bert-ft predict`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from keras_bert_ft.errors import require_positive_whole
from keras_bert_ft.serving.op_check import saved_model_ops
from keras_bert_ft.serving.signatures import PAIR_INPUT, TEXT_INPUT, TEXT_SIGNATURE
from keras_bert_ft.tokenizers.wordpiece import text_batch

# Python's csv module refuses fields over 131,072 characters by default; texts
# may be longer. The limit is a C long, so stay within 32 bits on every platform.
CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


def resolve_export(path: str | os.PathLike) -> Path:
    """A version folder (holding saved_model.pb), or the newest version under a base path."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such folder")
    children = p.iterdir() if p.is_dir() else []
    versions = sorted((int(c.name), c) for c in children
                      if c.name.isdigit() and (c / "saved_model.pb").is_file())
    if not versions:
        raise FileNotFoundError(f"{p}: no SavedModel here (nor in a numbered version folder)")
    return versions[-1][1]


def export_inputs(version_dir: str | os.PathLike) -> list[str]:
    """The input names of an export's `serving_default` signature, read from saved_model.pb.

    Raises `ValueError` when the file is not a SavedModel or has no text signature.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(version_dir) / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except (DecodeError, OSError) as err:
        raise ValueError(f"{pb}: cannot be read as a SavedModel ({err})") from None
    for meta in proto.meta_graphs:
        if TEXT_SIGNATURE in meta.signature_def:
            inputs = sorted(meta.signature_def[TEXT_SIGNATURE].inputs)
            if TEXT_INPUT in inputs:
                return inputs
    raise ValueError(f"{pb}: no {TEXT_SIGNATURE!r} signature taking {TEXT_INPUT!r}; "
                     "is this an export written by keras-bert-ft export?")


class ExportedClassifier:
    """The `serving_default` signature of an export, called in batches.

    `pairs` tells whether the export classifies sentence pairs (its signature
    takes `text_pair`); `label_names` are the labels by id.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the WordPiece kernels)

        self.path = resolve_export(path)
        self.inputs = export_inputs(self.path)
        self.pairs = PAIR_INPUT in self.inputs
        if "KbfWordPieceEncode" in saved_model_ops(self.path):  # a tokenizer_ops="custom" export
            from keras_bert_ft.tokenizers import op  # noqa: F401  (loads the op's kernels)
        self._tf = tf
        try:
            self._fn = tf.saved_model.load(str(self.path)).signatures[TEXT_SIGNATURE]
        except (tf.errors.OpError, OSError, ValueError) as err:
            reason = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ValueError(f"{self.path}: the SavedModel cannot be loaded ({reason})") from None
        labels = self.path / "assets" / "labels.txt"
        self.label_names = labels.read_text("utf-8").split("\n")[:-1] if labels.is_file() else None
        # A multi-label export answers with `label_mask` and `labels` instead of `label`.
        self.multi_label = "label_mask" in self._fn.structured_outputs

    def predict(self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None,
                batch_size: int = 64) -> dict[str, np.ndarray]:
        """`probabilities`, `label_id` and `label` (str) for each text (or pair).

        From a multi-label export: `probabilities`, `label_mask` and `labels`,
        each row's list of label names above its threshold.

        A bare string is one text. Raises `ValueError` for pairs given to a
        single-text export, none given to a pair export, or a count mismatch.
        """
        if self.pairs and pairs is None:
            raise ValueError(f"{self.path} classifies sentence pairs: give the second texts too")
        if not self.pairs and pairs is not None:
            raise ValueError(f"{self.path} classifies single texts, not pairs")
        require_positive_whole(batch_size, "batch_size")
        texts = text_batch(texts)
        pairs = None if pairs is None else text_batch(pairs)
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        tf = self._tf
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(texts), batch_size):
            args = {TEXT_INPUT: tf.constant(texts[start:start + batch_size], tf.string)}
            if pairs is not None:
                args[PAIR_INPUT] = tf.constant(pairs[start:start + batch_size], tf.string)
            for name, value in self._fn(**args).items():
                parts.setdefault(name, []).append(value.numpy())
        if not parts:  # no texts: one empty call gives the right shapes
            args = {name: tf.constant([], tf.string) for name in self.inputs}
            parts = {name: [value.numpy()] for name, value in self._fn(**args).items()}
        out = {name: np.concatenate(values) for name, values in parts.items()}
        if self.multi_label:
            labels = np.empty(len(out["labels"]), dtype=object)
            labels[:] = [[b.decode("utf-8") for b in row if b] for row in out["labels"]]
            out["labels"] = labels
        else:
            out["label"] = np.asarray([b.decode("utf-8") for b in out["label"]], dtype=object)
        return out


@contextlib.contextmanager
def _long_csv_fields() -> Iterator[None]:
    """Let the csv module read fields of any length, for the duration of the block."""
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_texts(path: str | os.PathLike, text_column: str | int = "text",
               pair_column: str | int | None = None,
               header: bool = True) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) to classify from a .csv, .tsv or .jsonl file.

    CSV/TSV columns are header names or 0-based indices; JSONL columns are the
    keys of each line's object. Bad input raises `DataError` naming the file
    and line (the readers of `keras_bert_ft.data`).
    """
    from keras_bert_ft.data.readers import read_file, read_jsonl
    from keras_bert_ft.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError("no such file" if not p.exists() else "not a file", path=p,
                        hint="pass a .csv, .tsv or .jsonl file")
    if not os.access(p, os.R_OK):
        raise DataError("the file cannot be read (permission denied)", path=p,
                        hint="check the file's permissions")
    if p.suffix.lower() == ".jsonl" and not header:
        raise DataError("a JSON Lines file has no header row to skip", path=p,
                        hint="drop --no-header; name the keys with --text-column")
    try:
        if p.suffix.lower() == ".jsonl":
            pair_key = None if pair_column is None else str(pair_column)
            data = read_jsonl(p, str(text_column), pair_key, None)
        else:
            with _long_csv_fields():
                data = read_file(p, text_column, pair_column, None, header=header)
    except OSError as err:  # e.g. a read error of the device
        raise DataError(f"the file cannot be read ({err.strerror or err})", path=p) from None
    return data.texts, data.pairs
