"""`WordPieceEncode`: a Keras layer that turns raw strings into BERT inputs with the custom op."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from keras_bert_ft.tokenizers import op
from keras_bert_ft.tokenizers.options import (
    DEFAULT_SPECIAL_TOKENS,
    PackingOptions,
    TokenizerOptions,
)

_ASSET_NAME = "vocab.txt"


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class WordPieceEncode(keras.layers.Layer):
    """Raw strings in, `input_word_ids` / `input_mask` / `input_type_ids` (int32) out.

    Calls the `KbfWordPieceEncode` op, so its ids equal
    `WordPieceTokenizer.encode_batch`'s. Inputs are a string tensor `[batch]`
    (or `[batch, 1]`), or a pair `(texts, pairs)` of them. A `.keras` archive
    carries the vocabulary as an asset; a SavedModel export carries it as a
    `tf.saved_model.Asset`.

    The settings are checked by, and kept as, `TokenizerOptions` (`self.options`)
    and `PackingOptions` (`self.packing`), as for every tokenizer.

    Args:
        vocab_file: path of vocab.txt.
        lowercase, strip_accents, max_input_chars_per_word, unk_token,
        continuation_prefix, special_tokens: as `WordPieceTokenizer`.
        max_length, truncation, padding, pad_to_multiple_of, head_tokens: as
            `encode_batch`.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        max_length: int = 128,
        truncation: str = "longest_first",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        max_input_chars_per_word: int = 100,
        unk_token: str = "[UNK]",
        continuation_prefix: str = "##",
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        head_tokens: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.options = TokenizerOptions(
            lowercase=lowercase, strip_accents=strip_accents,
            max_input_chars_per_word=max_input_chars_per_word, unk_token=unk_token,
            continuation_prefix=continuation_prefix, special_tokens=special_tokens)
        self.packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of,
                                      head_tokens)
        self._set_vocab_file(str(vocab_file))

    # The settings, read from `options` and `packing` (where they are checked).
    lowercase = property(lambda self: self.options.lowercase)
    strip_accents = property(lambda self: self.options.strip_accents)
    max_input_chars_per_word = property(lambda self: self.options.max_input_chars_per_word)
    unk_token = property(lambda self: self.options.unk_token)
    continuation_prefix = property(lambda self: self.options.continuation_prefix)
    special_tokens = property(lambda self: list(self.options.special_tokens))
    max_length = property(lambda self: self.packing.max_length)
    truncation = property(lambda self: self.packing.truncation)
    padding = property(lambda self: self.packing.padding)
    pad_to_multiple_of = property(lambda self: self.packing.pad_to_multiple_of)
    head_tokens = property(lambda self: self.packing.head)

    def _set_vocab_file(self, path: str) -> None:
        self.vocab_file = path
        # Tracked by tf.saved_model, so an exported SavedModel copies the file.
        self._vocab_asset = tf.saved_model.Asset(path)

    def call(self, inputs):
        texts, pairs = (inputs if isinstance(inputs, list | tuple) else (inputs, None))
        texts = _as_vector(texts)
        pairs = None if pairs is None else _as_vector(pairs)
        return op.encode_with_op(texts, pairs, vocab_file=self._vocab_asset.asset_path,
                                 options=self.options, packing=self.packing)

    def compute_output_spec(self, inputs):
        texts = inputs[0] if isinstance(inputs, list | tuple) else inputs
        seq = None
        if self.packing.pad_to_max_length:
            multiple = self.packing.multiple
            seq = -(-self.max_length // multiple) * multiple
        # One tensor per output: a shared one would make a functional model alias them.
        return {name: keras.KerasTensor((texts.shape[0], seq), dtype="int32")
                for name in op.FEATURES}

    # -- saving ----------------------------------------------------------
    def save_assets(self, dir_path: str) -> None:
        shutil.copyfile(self.vocab_file, Path(dir_path) / _ASSET_NAME)

    def load_assets(self, dir_path: str) -> None:
        # The archive's assets live in a directory that is removed after
        # loading, and the op reads a file: keep a content-addressed copy.
        data = (Path(dir_path) / _ASSET_NAME).read_bytes()
        self._set_vocab_file(op.materialize_vocab(data))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "vocab_file": self.vocab_file,
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "max_length": self.max_length,
            "truncation": self.truncation,
            "padding": self.padding,
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "unk_token": self.unk_token,
            "continuation_prefix": self.continuation_prefix,
            "special_tokens": list(self.special_tokens),
            "head_tokens": self.head_tokens,
        })
        return config


def _as_vector(strings) -> tf.Tensor:
    """`[batch]` from `[batch]` or `[batch, 1]` string input."""
    strings = tf.convert_to_tensor(strings, tf.string)
    if strings.shape.rank == 2:
        strings = tf.squeeze(strings, axis=1)
    return strings
