"""The `tf.data` input pipeline: tokenize once, bucket by length, pad per batch.

The whole dataset is tokenized once, up front, on the host by the C++
tokenizer and kept ragged (a flat id array plus row offsets). The `tf.data`
graph then only shuffles row numbers, slices rows out of those arrays,
groups rows of similar length and pads each batch to its own longest row,
rounded up to a multiple (8 by default, which suits matrix units). Short
sentences therefore cost short batches instead of `max_length` columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.long_documents import window_rows

FEATURES = ("input_word_ids", "input_mask", "input_type_ids")

# Fixed parallelism instead of tf.data's autotuning. Deleting an autotuned
# iterator waits for the autotune thread's next wake-up, up to ~9 s on a 2-core
# CPU (seen in gdb: ~RootDataset::Iterator waiting on Model::OptimizeLoop), and
# `model.fit` deletes one at the end of every epoch and every evaluation.
MAP_PARALLELISM = max(1, min(4, os.cpu_count() or 1))
PREFETCH_BATCHES = 2


def without_autotune(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning off (set its map parallelism and prefetch yourself,
    e.g. to `MAP_PARALLELISM` and `PREFETCH_BATCHES`)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


@dataclass
class EncodedTexts:
    """Tokenized rows kept ragged: row i is `word_ids[row_splits[i]:row_splits[i+1]]`."""

    word_ids: np.ndarray
    type_ids: np.ndarray
    row_splits: np.ndarray
    max_length: int

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.row_splits[i], self.row_splits[i + 1]
        return self.word_ids[s:e], self.type_ids[s:e]


def encode_texts(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
    truncation: str = "longest_first",
    chunk_size: int = 4096,
    num_threads: int | None = None,
    head_tokens: int | None = None,
) -> EncodedTexts:
    """Tokenize all rows once with `tokenizer.encode_batch` and keep them ragged.

    Rows are encoded in chunks (each padded only to its own longest row) so
    that memory stays proportional to the real number of tokens.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(pairs)} pairs for {len(texts)} texts")
    words, types, lengths = [], [], []
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        chunk_pairs = None if pairs is None else list(pairs[start : start + chunk_size])
        enc = tokenizer.encode_batch(
            chunk,
            pairs=chunk_pairs,
            max_length=max_length,
            truncation=truncation,
            padding="longest",
            num_threads=num_threads,
            **({} if head_tokens is None else {"head_tokens": head_tokens}),
        )
        mask = np.asarray(enc["input_mask"]).astype(bool)
        # Padding is on the right, so boolean indexing (row-major) keeps each
        # row's tokens contiguous and in order.
        words.append(np.asarray(enc["input_word_ids"], dtype=np.int32)[mask])
        types.append(np.asarray(enc["input_type_ids"], dtype=np.int32)[mask])
        lengths.append(mask.sum(axis=1))
    row_splits = np.zeros(len(texts) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=row_splits[1:])
    empty = np.zeros(0, np.int32)
    return EncodedTexts(
        word_ids=np.concatenate(words) if words else empty,
        type_ids=np.concatenate(types) if types else empty,
        row_splits=row_splits,
        max_length=max_length,
    )


def encode_windows(
    tokenizer, texts: Sequence[str], *, max_length: int = 128, stride: int = 0,
) -> tuple[EncodedTexts, np.ndarray]:
    """Overlapping windows of each text (see `keras_bert_ft.long_documents`), kept ragged.

    Returns the windows as `EncodedTexts` (one row per window, texts in order)
    and each window's text index (int32).
    """
    token_ids = []
    for i, text in enumerate(texts):
        try:
            token_ids.append(tokenizer.token_ids(text))
        except ValueError as err:
            raise ValueError(f"texts[{i}]: {err}") from None
    pieces, docs = window_rows(token_ids, max_length, stride)
    rows = [np.concatenate([[tokenizer.cls_id], p, [tokenizer.sep_id]]).astype(np.int32)
            for p in pieces]  # fmt: skip
    row_splits = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=row_splits[1:])
    word_ids = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    encoded = EncodedTexts(word_ids=word_ids, type_ids=np.zeros_like(word_ids),
                           row_splits=row_splits, max_length=max_length)  # fmt: skip
    return encoded, docs


def make_window_dataset(
    texts: Sequence[str], labels: np.ndarray | None, tokenizer, *, max_length: int = 128,
    stride: int = 0, **kwargs,
) -> tuple[tf.data.Dataset, np.ndarray]:
    """`make_dataset` over windows: each window is a row labelled with its text's label.

    Returns the dataset and each window's text index (to pool predictions).
    Takes the keyword arguments of `make_tf_dataset`.
    """
    encoded, docs = encode_windows(tokenizer, texts, max_length=max_length, stride=stride)
    window_labels = None if labels is None else np.asarray(labels)[docs]
    return make_tf_dataset(encoded, window_labels, **kwargs), docs


def compute_class_weight(labels: np.ndarray, num_classes: int | None = None) -> dict[int, float]:
    """'Balanced' class weights, n / (k * count_c), as a dict for `model.fit(class_weight=)`.

    Classes absent from `labels` get weight 0.
    """
    labels = np.asarray(labels).astype(np.int64)
    k = int(num_classes if num_classes is not None else labels.max() + 1)
    counts = np.bincount(labels, minlength=k)
    present = int((counts > 0).sum())
    return {c: (len(labels) / (present * counts[c]) if counts[c] else 0.0) for c in range(k)}


def _sample_weights(labels: np.ndarray, class_weight: str | Mapping[int, float]) -> np.ndarray:
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced' or a dict, got {class_weight!r}")
        class_weight = compute_class_weight(labels)
    table = np.zeros(int(max(max(class_weight), labels.max())) + 1, dtype=np.float32)
    for c, w in class_weight.items():
        table[int(c)] = w
    return table[labels.astype(np.int64)]


def make_tf_dataset(
    encoded: EncodedTexts,
    labels: np.ndarray | None = None,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
    bucket: bool | None = None,
    pool_batches: int = 64,
    pad_to_multiple_of: int | None = 8,
    fixed_length: bool = False,
    class_weight: str | Mapping[int, float] | None = None,
    drop_remainder: bool = False,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Batches of `(features, labels[, sample_weights])`, or `features` without labels.

    - `shuffle` reshuffles every epoch from `seed`.
    - `bucket` batches rows of similar length together: the shuffled rows
      are cut into pools of `pool_batches * batch_size`, each pool is sorted
      by length and cut into batches, and the batches are shuffled again.
      Every batch stays full (unlike per-length buckets), so the number of
      batches per epoch is fixed and Keras knows it. `bucket` defaults to
      `shuffle` because it reorders rows, which `predict` must not do.
    - Each batch is padded to its longest row, rounded up to
      `pad_to_multiple_of` (never beyond the encoding's `max_length`); with
      `fixed_length=True` every batch is padded to `max_length` instead.
    - `class_weight` ('balanced' or {class: weight}) adds per-row sample weights.
    """
    n = len(encoded)
    if n == 0:
        raise ValueError("cannot build a dataset from zero rows")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} rows")
    if class_weight is not None and labels is None:
        raise ValueError("class_weight needs labels")
    bucket = shuffle if bucket is None else bucket

    words = tf.constant(encoded.word_ids, dtype=tf.int32)
    types = tf.constant(encoded.type_ids, dtype=tf.int32)
    splits = tf.constant(encoded.row_splits, dtype=tf.int64)
    lengths = tf.constant(encoded.lengths.astype(np.int32))
    extras = []
    if labels is not None:
        extras.append(tf.constant(np.asarray(labels)))
    if class_weight is not None:
        extras.append(tf.constant(_sample_weights(np.asarray(labels), class_weight)))
    multiple = max(1, pad_to_multiple_of or 1)
    cap = encoded.max_length

    def make_batch(rows):
        # One vectorised gather per batch (not one op per row): the rows
        # come out of the ragged arrays padded to the batch's own width.
        longest = tf.reduce_max(tf.gather(lengths, rows))
        if fixed_length:
            width = tf.constant(cap, tf.int32)
        else:
            width = tf.maximum(
                tf.minimum((longest + multiple - 1) // multiple * multiple, cap), longest
            )
        shape = tf.stack([tf.shape(rows, out_type=tf.int32)[0], width])

        def take(flat):
            ragged = tf.RaggedTensor.from_row_splits(flat, splits, validate=False)
            return tf.gather(ragged, rows).to_tensor(shape=shape)

        mask = tf.sequence_mask(tf.gather(lengths, rows), maxlen=width, dtype=tf.int32)
        features = {
            "input_word_ids": take(words),
            "input_mask": mask,
            "input_type_ids": take(types),
        }
        if not extras:
            return features
        return (features, *(tf.gather(t, rows) for t in extras))

    ds = tf.data.Dataset.range(n)
    if shuffle:
        # Shuffling row numbers is cheap, so the buffer can hold the whole set.
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if bucket:
        pool = max(1, pool_batches) * batch_size

        def sort_by_length(rows):
            return tf.gather(rows, tf.argsort(tf.gather(lengths, rows), stable=True))

        ds = ds.batch(pool).map(sort_by_length).unbatch()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(make_batch, num_parallel_calls=MAP_PARALLELISM, deterministic=True)
    if bucket:
        # Within a pool the batches come out shortest first; mix them.
        ds = ds.shuffle(max(1, pool_batches), seed=seed, reshuffle_each_iteration=True)
    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    if prefetch:
        ds = ds.prefetch(PREFETCH_BATCHES)
    return without_autotune(ds)


def make_dataset(
    texts: Sequence[str],
    labels: np.ndarray | None,
    tokenizer,
    *,
    pairs: Sequence[str] | None = None,
    max_length: int = 128,
    truncation: str = "longest_first",
    num_threads: int | None = None,
    head_tokens: int | None = None,
    **kwargs,
) -> tf.data.Dataset:
    """Tokenize `texts` (and `pairs`) once and return a batched `tf.data.Dataset`.

    Takes the keyword arguments of `make_tf_dataset` (batch_size, shuffle,
    seed, bucket, pad_to_multiple_of, class_weight, ...). The result feeds
    `model.fit` directly.
    """
    encoded = encode_texts(
        tokenizer, texts, pairs, max_length=max_length, truncation=truncation,
        num_threads=num_threads, head_tokens=head_tokens,
    )  # fmt: skip
    return make_tf_dataset(encoded, labels, **kwargs)


def dataset_from(data: TextDataset, tokenizer, **kwargs) -> tf.data.Dataset:
    """`make_dataset` for a `TextDataset` (its texts, pairs and labels)."""
    return make_dataset(data.texts, data.labels, tokenizer, pairs=data.pairs, **kwargs)
