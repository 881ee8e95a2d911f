"""Pretraining data: raw text read into documents of sentences, sentences packed into
sequences of up to `max_length` tokens (or into sentence pairs for next-sentence
prediction), and a `tf.data` pipeline that masks every batch in C++ with new masks
each epoch.

Text files hold one document per line, or documents separated by blank lines
(then each line is one or more sentences). `.jsonl` files hold one document per
line in the field "text" (the layout of the shared IMDB files).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np

from keras_bert_ft.data.readers import split_lines
from keras_bert_ft.errors import DataError
from keras_bert_ft.pretraining.masking import MaskingOptions, MaskingVocab, mask_tokens_op

_HTML_BREAKS = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A sentence ends at . ! ? (and closing quotes or brackets) followed by space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


class PretrainingDataError(DataError):
    """The text cannot be used for pretraining (empty, too short for NSP, ...)."""


def split_sentences(text: str) -> list[str]:
    """A paragraph split into sentences at . ! ? followed by whitespace."""
    text = _HTML_BREAKS.sub(" ", text)
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _json_documents(path: str, field: str) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise PretrainingDataError(
                    f"{path}: line {number}, column {e.colno}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise PretrainingDataError(
                    f"{path}: line {number}: expected an object with a string field {field!r}")
            docs.append(record[field])
    return docs


def read_documents(path: str | os.PathLike, json_field: str = "text") -> list[list[str]]:
    """The documents of a text or `.jsonl` file, each a list of sentences.

    Raises PretrainingDataError for a missing, undecodable or empty file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PretrainingDataError(f"{path}: no such text file")
    if path.endswith(".jsonl"):
        paragraphs = [[text] for text in _json_documents(path, json_field)]
    else:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                lines = split_lines(f.read())
        except UnicodeDecodeError as e:
            raise PretrainingDataError(f"{path}: not valid UTF-8 (byte {e.start})") from None
        if any(not line.strip() for line in lines[:-1]) and sum(
                1 for line in lines if line.strip()) > 1:
            # Blank lines separate documents; each line of one is a paragraph.
            paragraphs, current = [], []
            for line in lines:
                if line.strip():
                    current.append(line)
                elif current:
                    paragraphs.append(current)
                    current = []
            if current:
                paragraphs.append(current)
        else:
            paragraphs = [[line] for line in lines if line.strip()]
    documents = [[s for p in doc for s in split_sentences(p)] for doc in paragraphs]
    documents = [d for d in documents if d]
    if not documents:
        raise PretrainingDataError(f"{path}: the file holds no text")
    return documents


@dataclass
class PackedExamples:
    """Packed rows, [n, max_length] int32, padded with 0 (`[PAD]`)."""

    input_word_ids: np.ndarray
    input_mask: np.ndarray
    input_type_ids: np.ndarray
    next_sentence_labels: np.ndarray  # [n]; all 0 without NSP

    def __len__(self) -> int:
        return len(self.input_word_ids)

    def subset(self, index) -> PackedExamples:
        return PackedExamples(self.input_word_ids[index], self.input_mask[index],
                              self.input_type_ids[index], self.next_sentence_labels[index])

    def features(self) -> dict[str, np.ndarray]:
        return {"input_word_ids": self.input_word_ids, "input_mask": self.input_mask,
                "input_type_ids": self.input_type_ids,
                "next_sentence_labels": self.next_sentence_labels}


def _tokenize(documents: list[list[str]], tokenizer) -> list[list[list[int]]]:
    return [[ids for s in doc if (ids := tokenizer.token_ids(s))] for doc in documents]


def _rows(first_segments, second_segments, tokenizer, max_length: int, pad_id: int):
    n = len(first_segments)
    ids = np.full((n, max_length), pad_id, np.int32)
    mask = np.zeros((n, max_length), np.int32)
    types = np.zeros((n, max_length), np.int32)
    for i, a in enumerate(first_segments):
        row = [tokenizer.cls_id, *a, tokenizer.sep_id]
        b = second_segments[i] if second_segments is not None else None
        if b is not None:
            row += [*b, tokenizer.sep_id]
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
        if b is not None:
            types[i, len(a) + 2:len(row)] = 1
    return ids, mask, types


def pack_sequences(documents: list[list[str]], tokenizer, max_length: int) -> PackedExamples:
    """Consecutive sentences of each document packed into `[CLS] ... [SEP]` rows of up to
    `max_length` tokens; a sentence longer than a row is cut across rows."""
    budget = max_length - 2
    segments = []
    for doc in _tokenize(documents, tokenizer):
        current: list[int] = []
        for sentence in doc:
            if current and len(current) + len(sentence) > budget:
                segments.append(current)
                current = []
            current = current + sentence
            while len(current) > budget:
                segments.append(current[:budget])
                current = current[budget:]
        if current:
            segments.append(current)
    if not segments:
        raise PretrainingDataError("the text holds no tokens")
    ids, mask, types = _rows(segments, None, tokenizer, max_length, tokenizer.pad_id)
    return PackedExamples(ids, mask, types, np.zeros(len(segments), np.int32))


def _truncate_pair(a: list[int], b: list[int], budget: int, rng) -> None:
    # As BERT: drop from the longer segment, at its front or back at random.
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        del longer[0 if rng.random() < 0.5 else -1]


def pack_sentence_pairs(documents: list[list[str]], tokenizer, max_length: int,
                        seed: int = 0) -> PackedExamples:
    """Rows `[CLS] A [SEP] B [SEP]` for next-sentence prediction, as BERT builds them: A is
    a run of sentences, B the sentences after it (label 0) or, half the time, a span of
    another document (label 1). Needs at least one document of two or more sentences."""
    rng = np.random.default_rng(seed)
    docs = _tokenize(documents, tokenizer)
    if not any(len(d) >= 2 for d in docs):
        raise PretrainingDataError(
            "next-sentence prediction needs documents of at least two sentences, and every "
            "document here has one; turn NSP off or separate sentences")
    if len(docs) < 2:
        raise PretrainingDataError("next-sentence prediction needs at least two documents "
                                   "(random second segments come from another one)")
    budget = max_length - 3
    firsts, seconds, labels = [], [], []
    for d, doc in enumerate(docs):
        chunk, length, i = [], 0, 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            i += 1
            if i < len(doc) and length < budget:
                continue
            if len(chunk) >= 2 or (chunk and len(docs) > 1):
                a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
                a = [t for s in chunk[:a_end] for t in s]
                if len(chunk) == 1 or rng.random() < 0.5:
                    other = int(rng.integers(0, len(docs) - 1))
                    other += other >= d
                    start = int(rng.integers(0, len(docs[other])))
                    b = [t for s in docs[other][start:] for t in s][:budget]
                    # The sentences set aside go back to be used in the next chunk.
                    i -= len(chunk) - a_end
                    label = 1
                else:
                    b = [t for s in chunk[a_end:] for t in s]
                    label = 0
                if a and b:
                    _truncate_pair(a, b, budget, rng)
                    firsts.append(a)
                    seconds.append(b)
                    labels.append(label)
            chunk, length = [], 0
    ids, mask, types = _rows(firsts, seconds, tokenizer, max_length, tokenizer.pad_id)
    return PackedExamples(ids, mask, types, np.asarray(labels, np.int32))


def step_seed(seed, step):
    """The masking seed of batch `step` (a Python int or an int64 tensor)."""
    return seed * (1 << 32) + step


def masked_dataset(examples: PackedExamples, vocab: MaskingVocab, batch_size: int,
                   options: MaskingOptions | None = None, seed: int = 0,
                   shuffle: bool = True, repeat: bool = True):
    """A `tf.data.Dataset` of `(inputs, targets)` for `BertPretrainer.fit`.

    Batches are masked by the `KbfMaskTokens` op with the seed
    `step_seed(seed, step)`, `step` counting batches across epochs, so every epoch
    gets new masks and a rerun with the same seed gets the same ones.
    """
    import tensorflow as tf

    from keras_bert_ft.data.pipeline import MAP_PARALLELISM, PREFETCH_BATCHES, without_autotune

    options = options or MaskingOptions()
    ds = tf.data.Dataset.from_tensor_slices(examples.features())
    if shuffle:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=shuffle)
    if repeat:
        ds = ds.repeat()
    base = tf.constant(seed, tf.int64)

    def mask(step, batch):
        masked = mask_tokens_op(batch["input_word_ids"], batch["input_mask"], vocab,
                                step_seed(base, step), options)
        inputs = {"input_word_ids": masked["input_word_ids"], "input_mask": batch["input_mask"],
                  "input_type_ids": batch["input_type_ids"],
                  "masked_lm_positions": masked["masked_lm_positions"]}
        targets = {"masked_lm_ids": masked["masked_lm_ids"],
                   "masked_lm_weights": masked["masked_lm_weights"],
                   "next_sentence_labels": batch["next_sentence_labels"]}
        return inputs, targets

    ds = ds.enumerate().map(mask, num_parallel_calls=MAP_PARALLELISM)
    return without_autotune(ds.prefetch(PREFETCH_BATCHES))
