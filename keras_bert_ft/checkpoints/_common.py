"""Helpers shared by the checkpoint formats: weight assignment with clear errors,
vocabulary checks, the load options. (Atomic writes are `keras_bert_ft.infra`'s.)"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError

# fetch(canonical_name) -> (name in the source, array in canonical layout or None,
# whether the source stores it transposed).
Fetch = Callable[[str], tuple[str, "np.ndarray | None", bool]]


def assign_weights(encoder, fetch: Fetch, where: str) -> None:
    """Copy every weight of `encoder` from a source, checking names and shapes.

    Raises CheckpointFormatError (a ValueError) naming the source variable, the expected
    and the found shape (in the source's own layout) when one is missing or misshapen.
    """
    for name, var in encoder.weight_map().items():
        source_name, value, transposed = fetch(name)
        expected = tuple(var.shape)[::-1] if transposed else tuple(var.shape)
        if value is None:
            raise CheckpointFormatError(
                f"{where}: variable {source_name!r} is missing "
                f"(expected shape {expected}, found none)"
            )
        value = np.asarray(value)
        found = value.shape[::-1] if transposed else value.shape
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointFormatError(
                f"{where}: variable {source_name!r} has the wrong shape: "
                f"expected {expected}, found {tuple(found)}"
            )
        var.assign(value.astype("float32"))


@dataclass(frozen=True)
class Vocabulary:
    """A WordPiece vocabulary held in memory (read from a `tokenizer.json`), with the
    text normalisation that goes with it."""

    tokens: tuple[str, ...]
    source: str
    lowercase: bool = True
    strip_accents: bool | None = None  # None: follow `lowercase`
    unk_token: str = "[UNK]"
    continuation_prefix: str = "##"
    max_input_chars_per_word: int = 100

    def __len__(self) -> int:
        return len(self.tokens)


# A vocabulary: a `vocab.txt` path or an in-memory `Vocabulary`.
VocabSource = str | os.PathLike | Vocabulary


def count_vocab(vocab: VocabSource) -> int:
    """Number of entries of a vocabulary (lines of a `vocab.txt`)."""
    if isinstance(vocab, Vocabulary):
        return len(vocab)
    with open(vocab, encoding="utf-8") as f:
        return sum(1 for _ in f)


def check_vocab(vocab: VocabSource | None, vocab_size: int) -> None:
    """Fail when the vocabulary and the embedding matrix disagree in size.

    Ids beyond the vocab would index rows that have no token, and a larger vocab
    would index past the table; neither is silently fixable.
    """
    if vocab is None:
        return
    n = count_vocab(vocab)
    if n != vocab_size:
        where = vocab.source if isinstance(vocab, Vocabulary) else os.fspath(vocab)
        raise CheckpointFormatError(
            f"{where} has {n} tokens but the word embedding matrix has "
            f"{vocab_size} rows; the vocabulary does not belong to these weights"
        )


def apply_options(config: BertConfig, num_layers: int | None, overrides: dict) -> BertConfig:
    """`config` cut to its first `num_layers` layers and with the `overrides` fields set."""
    if num_layers is not None:
        if not 1 <= num_layers <= config.num_layers:
            raise CheckpointFormatError(
                f"num_layers={num_layers}, but the checkpoint has {config.num_layers} layers"
            )
        config = config.replace(num_layers=num_layers)
    return config.replace(**overrides) if overrides else config


def tokenizer_for(vocab: VocabSource | None, lowercase: bool):
    """The package's WordPiece tokenizer over `vocab`, or None without one.

    A `Vocabulary` brings its own normalisation; `lowercase` applies to a `vocab.txt`.
    """
    if vocab is None:
        return None
    from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

    if isinstance(vocab, Vocabulary):
        return WordPieceTokenizer(
            vocab=list(vocab.tokens), lowercase=vocab.lowercase,
            strip_accents=vocab.strip_accents, unk_token=vocab.unk_token,
            continuation_prefix=vocab.continuation_prefix,
            max_input_chars_per_word=vocab.max_input_chars_per_word,
        )  # fmt: skip
    return WordPieceTokenizer(os.fspath(vocab), lowercase=lowercase)
