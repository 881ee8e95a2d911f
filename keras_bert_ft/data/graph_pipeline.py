"""Tokenize inside `tf.data` with the custom op: streaming, parallel, no Python in the loop.

Where `pipeline.py` tokenizes a whole data set up front on the host, these
functions read text files or TFRecords lazily and tokenize each batch in the
graph with `KbfWordPieceEncode` under a parallel `map`, so data sets larger
than memory stream through. The ids equal `WordPieceTokenizer.encode_batch`'s
for the same batch: both run the same C++ code.

Elements are `features` or `(features, label)`, where `features` maps
`input_word_ids`, `input_mask` and `input_type_ids` to int32 `[batch, seq]`.

By default the maps run `MAP_PARALLELISM` calls at once and tf.data's autotuning
is off, as in `pipeline.py`: its background thread made deleting an iterator (which
`fit` does after every epoch and evaluation) wait up to seconds (docs/speed.md,
round 3). Passing `num_parallel_calls=tf.data.AUTOTUNE` leaves autotuning on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from keras_bert_ft.data.pipeline import MAP_PARALLELISM, without_autotune
from keras_bert_ft.tokenizers import op
from keras_bert_ft.tokenizers.options import PackingOptions
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

AUTOTUNE = tf.data.AUTOTUNE
Files = str | os.PathLike | Sequence[str | os.PathLike]


def tokenize_dataset(
    dataset: tf.data.Dataset,
    tokenizer: WordPieceTokenizer,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    truncation: str = "longest_first",
    padding: str = "longest",
    pad_to_multiple_of: int | None = None,
    drop_remainder: bool = False,
    num_parallel_calls: int = MAP_PARALLELISM,
    deterministic: bool | None = None,
) -> tf.data.Dataset:
    """Batch and tokenize a dataset of examples with the op, in parallel.

    Args:
        dataset: scalar string elements (texts), or dicts with "text" and
            optional "pair" and "label" entries.
        tokenizer: gives the vocabulary file and the tokenization options.
        batch_size, drop_remainder: as `tf.data.Dataset.batch`.
        max_length, truncation, padding, pad_to_multiple_of: as `encode_batch`.
        num_parallel_calls, deterministic: as `tf.data.Dataset.map`.
    """
    vocab_file = op.vocab_file_of(tokenizer)
    packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of)

    def encode(batch):
        if not isinstance(batch, dict):
            batch = {"text": batch}
        features = op.encode_with_op(
            batch["text"], batch.get("pair"), vocab_file=vocab_file,
            options=tokenizer.options, packing=packing)
        return (features, batch["label"]) if "label" in batch else features

    return _fixed_unless_autotuned(dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        encode, num_parallel_calls=num_parallel_calls, deterministic=deterministic),
        num_parallel_calls)


def _fixed_unless_autotuned(ds: tf.data.Dataset, num_parallel_calls: int) -> tf.data.Dataset:
    return ds if num_parallel_calls == AUTOTUNE else without_autotune(ds)


def from_text_files(
    files: Files,
    tokenizer: WordPieceTokenizer,
    *,
    delimiter: str | None = None,
    text_column: int = 0,
    pair_column: int | None = None,
    label_column: int | None = None,
    skip_header_lines: int = 0,
    num_parallel_reads: int | None = None,
    **kwargs,
) -> tf.data.Dataset:
    """Tokenize the lines of text files (or the columns of delimited ones, such as TSV).

    Each line is one example. With `delimiter`, lines are split on it (plain
    splitting, no quoting) and `text_column` / `pair_column` / `label_column`
    pick the fields; labels are parsed as int32. Other arguments: see
    `tokenize_dataset`.
    """
    paths = [os.fspath(files)] if isinstance(files, str | os.PathLike) else [
        os.fspath(f) for f in files]
    if skip_header_lines:
        # Headers are per file, so each file is read (and skipped) on its own.
        lines = tf.data.Dataset.from_tensor_slices(paths).interleave(
            lambda path: tf.data.TextLineDataset(path).skip(skip_header_lines),
            cycle_length=num_parallel_reads or 1, num_parallel_calls=num_parallel_reads)
    else:
        lines = tf.data.TextLineDataset(paths, num_parallel_reads=num_parallel_reads)
    if delimiter is None:
        if pair_column is not None or label_column is not None:
            raise ValueError("pair_column and label_column need a delimiter")
        return tokenize_dataset(lines, tokenizer, **kwargs)

    def fields(line):
        parts = tf.strings.split(line, delimiter)
        example = {"text": parts[text_column]}
        if pair_column is not None:
            example["pair"] = parts[pair_column]
        if label_column is not None:
            example["label"] = tf.strings.to_number(parts[label_column], tf.int32)
        return example

    parallel = kwargs.get("num_parallel_calls", MAP_PARALLELISM)
    return tokenize_dataset(lines.map(fields, num_parallel_calls=parallel), tokenizer, **kwargs)


def from_tfrecords(
    files: Files,
    tokenizer: WordPieceTokenizer,
    *,
    text_feature: str = "text",
    pair_feature: str | None = None,
    label_feature: str | None = None,
    batch_size: int = 32,
    drop_remainder: bool = False,
    num_parallel_reads: int | None = None,
    num_parallel_calls: int = MAP_PARALLELISM,
    deterministic: bool | None = None,
    **kwargs,
) -> tf.data.Dataset:
    """Tokenize `tf.train.Example` records: bytes features for texts, an int64 label.

    Records are batched first, then each batch is parsed and tokenized in one
    parallel map. Other arguments: see `tokenize_dataset`; the packing ones
    (`max_length`, `truncation`, ...) are those of `PackingOptions`.
    """
    paths = [os.fspath(files)] if isinstance(files, str | os.PathLike) else [
        os.fspath(f) for f in files]
    spec = {text_feature: tf.io.FixedLenFeature([], tf.string)}
    if pair_feature is not None:
        spec[pair_feature] = tf.io.FixedLenFeature([], tf.string)
    if label_feature is not None:
        spec[label_feature] = tf.io.FixedLenFeature([], tf.int64)
    vocab_file = op.vocab_file_of(tokenizer)
    packing = PackingOptions(**kwargs)  # max_length, truncation, padding, ...

    def encode(records):
        parsed = tf.io.parse_example(records, spec)
        features = op.encode_with_op(
            parsed[text_feature], None if pair_feature is None else parsed[pair_feature],
            vocab_file=vocab_file, options=tokenizer.options, packing=packing)
        if label_feature is None:
            return features
        return features, tf.cast(parsed[label_feature], tf.int32)

    records = tf.data.TFRecordDataset(paths, num_parallel_reads=num_parallel_reads)
    return _fixed_unless_autotuned(records.batch(batch_size, drop_remainder=drop_remainder).map(
        encode, num_parallel_calls=num_parallel_calls, deterministic=deterministic),
        num_parallel_calls)
