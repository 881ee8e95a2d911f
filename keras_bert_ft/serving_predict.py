"""Predict with an exported serving SavedModel, as a TF Serving client would see it.

Only TensorFlow and tensorflow-text are needed: the SavedModel tokenizes raw
text itself. Used by `keras-bert-ft predict`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_bert_ft.serving_ops import saved_model_ops

TEXT_SIGNATURE = "serving_default"


def resolve_export(path: str | os.PathLike) -> Path:
    """A version folder (holding saved_model.pb), or the newest version under a base path."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    children = p.iterdir() if p.is_dir() else []
    versions = sorted((int(c.name), c) for c in children
                      if c.name.isdigit() and (c / "saved_model.pb").is_file())
    if not versions:
        raise FileNotFoundError(f"{p}: no SavedModel here (nor in a numbered version folder)")
    return versions[-1][1]


class ExportedClassifier:
    """The `serving_default` signature of an export, called in batches."""

    def __init__(self, path: str | os.PathLike) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the WordPiece kernels)

        self.path = resolve_export(path)
        if "KbfWordPieceEncode" in saved_model_ops(self.path):  # a tokenizer_ops="custom" export
            from keras_bert_ft import ops  # noqa: F401  (loads the op's kernels)
        self._tf = tf
        self._fn = tf.saved_model.load(str(self.path)).signatures[TEXT_SIGNATURE]
        self.inputs = sorted(self._fn.structured_input_signature[1])
        self.pairs = "text_pair" in self.inputs
        labels = self.path / "assets" / "labels.txt"
        self.label_names = labels.read_text("utf-8").split("\n")[:-1] if labels.is_file() else None

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                batch_size: int = 64) -> dict[str, np.ndarray]:
        """`probabilities`, `label_id` and `label` (str) for each text (or pair)."""
        if self.pairs and pairs is None:
            raise ValueError(f"{self.path} classifies sentence pairs: give the second texts too")
        if not self.pairs and pairs is not None:
            raise ValueError(f"{self.path} classifies single texts, not pairs")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        tf = self._tf
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(texts), batch_size):
            args = {"text": tf.constant(list(texts[start:start + batch_size]), tf.string)}
            if pairs is not None:
                args["text_pair"] = tf.constant(list(pairs[start:start + batch_size]), tf.string)
            for name, value in self._fn(**args).items():
                parts.setdefault(name, []).append(value.numpy())
        if not parts:  # no texts: one empty call gives the right shapes
            args = {name: tf.constant([], tf.string) for name in self.inputs}
            parts = {name: [value.numpy()] for name, value in self._fn(**args).items()}
        out = {name: np.concatenate(values) for name, values in parts.items()}
        out["label"] = np.asarray([b.decode("utf-8") for b in out["label"]], dtype=object)
        return out


def read_texts(path: str | os.PathLike, text_column: str | int = "text",
               pair_column: str | int | None = None,
               header: bool = True) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) from a .csv or .tsv file, by column name or 0-based index."""
    p = Path(path)
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    with open(p, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    names = rows.pop(0) if header and rows else []

    def index(column: str | int) -> int:
        if isinstance(column, int):
            return column
        if column not in names:
            raise ValueError(f"{p}: no column {column!r}; columns are {names}")
        return names.index(column)

    rows = [r for r in rows if r]
    text_i = index(text_column)
    pair_i = None if pair_column is None else index(pair_column)
    for line, row in enumerate(rows, start=2 if header else 1):
        if max(text_i, pair_i or 0) >= len(row):
            raise ValueError(f"{p}: line {line}: {len(row)} columns, too few")
    texts = [r[text_i] for r in rows]
    return texts, None if pair_i is None else [r[pair_i] for r in rows]
