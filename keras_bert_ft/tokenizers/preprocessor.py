"""`TextPreprocessor`: a classifier's tokenizer together with how its rows are packed.

As a keras-hub task holds its preprocessor, `BertClassifier` holds one of these:
`predict_texts`, `encode` and the serving export all read the tokenizer and the
`PackingOptions` from it, so a model's text handling lives in one object that
its config saves. The vocabulary travels separately (as the model's asset
file); the config keeps the tokenizer's options, and `load_vocabulary` joins
the two again when a saved model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_bert_ft.tokenizers.options import PackingOptions, TokenizerOptions
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer, text_batch


class TextPreprocessor:
    """Raw texts to a classifier's id tensors: a `WordPieceTokenizer` plus `PackingOptions`.

    Args:
        tokenizer: the tokenizer, or None until a vocabulary is loaded.
        packing: how rows are packed (default `PackingOptions()`); with a
            `stride`, long single texts become windows.
        tokenizer_options: the options to build the tokenizer with when its
            vocabulary arrives (`load_vocabulary`); ignored when `tokenizer` is given.
    """

    def __init__(
        self,
        tokenizer: WordPieceTokenizer | None = None,
        packing: PackingOptions | None = None,
        tokenizer_options: TokenizerOptions | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.packing = PackingOptions() if packing is None else packing
        self._tokenizer_options = tokenizer_options

    @property
    def tokenizer_options(self) -> TokenizerOptions | None:
        """The tokenizer's options (those waiting for a vocabulary when it has none yet)."""
        return self.tokenizer.options if self.tokenizer is not None else self._tokenizer_options

    def require_tokenizer(self) -> WordPieceTokenizer:
        """The tokenizer; ValueError when there is none."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; pass tokenizer= when building it")
        return self.tokenizer

    def encode(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None
    ) -> dict[str, np.ndarray]:
        """Truncated and packed rows (never windows); a bare string is one text."""
        packing = self.packing.replace(stride=None) if self.packing.windows else self.packing
        return self.require_tokenizer().encode_packed(
            text_batch(texts), None if pairs is None else text_batch(pairs), packing)

    def load_vocabulary(self, vocab_file: str | os.PathLike) -> None:
        """Build the tokenizer over `vocab_file` with the saved options."""
        options = self.tokenizer_options or TokenizerOptions()
        self.tokenizer = WordPieceTokenizer.from_options(options, vocab_file)

    def get_config(self) -> dict:
        """JSON-able: the tokenizer's options (None if it has none) and the packing."""
        options = self.tokenizer_options
        return {"tokenizer": None if options is None else options.get_config(),
                "packing": self.packing.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> TextPreprocessor:
        """A preprocessor without its vocabulary yet (see `load_vocabulary`)."""
        options = config.get("tokenizer")
        return cls(None, PackingOptions.from_config(config["packing"]),
                   None if options is None else TokenizerOptions.from_config(options))

    def __repr__(self) -> str:
        return f"TextPreprocessor(tokenizer={self.tokenizer!r}, packing={self.packing!r})"
