"""Masked-LM masking of packed batches, in the C++ core (csrc/core/masking.cc).

Two paths, one function underneath: `mask_tokens` on numpy arrays (the GIL is
released while C++ works) and `mask_tokens_op`, the `KbfMaskTokens` op, for
`tf.data`. For the same seed both give the same masks: each row's masks depend
only on (seed, row index, its tokens).

BERT's scheme: 15% of the maskable tokens (not special, not padding) are chosen
(rounded, at least one, at most `max_predictions`); of those, 80% become
`[MASK]`, 10% a random non-special token, 10% stay. With `whole_word`, a word's
`##` pieces are chosen together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_bert_ft import _wordpiece
from keras_bert_ft.errors import KerasBertFtError

WORD_START, CONTINUATION, SPECIAL = 0, 1, 2
_SEED_MASK = (1 << 64) - 1


class MaskingError(KerasBertFtError, ValueError):
    """The vocabulary or the options cannot be used for masking."""


@dataclass(frozen=True)
class MaskingOptions:
    """How to mask: rates, the cap on predictions per row, whole words or not."""

    select_rate: float = 0.15
    mask_rate: float = 0.8
    random_rate: float = 0.1
    max_predictions: int = 20
    whole_word: bool = False

    def __post_init__(self):
        for name in ("select_rate", "mask_rate", "random_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MaskingError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_rate + self.random_rate > 1.0 + 1e-9:
            raise MaskingError("mask_rate + random_rate must be at most 1")
        if self.max_predictions < 1:
            raise MaskingError(f"max_predictions must be at least 1, got {self.max_predictions}")


@dataclass(frozen=True)
class MaskingVocab:
    """What masking needs to know of a vocabulary: each id's kind and the [MASK] id."""

    kinds: np.ndarray  # int32 [vocab]: WORD_START, CONTINUATION or SPECIAL
    mask_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> MaskingVocab:
        """Kinds from a `WordPieceTokenizer`: its special tokens (and `[unusedN]`) are
        SPECIAL, `##` pieces CONTINUATION. Raises MaskingError without `[MASK]`."""
        tokens = tokenizer.get_vocab()
        mask_id = tokenizer.token_to_id(tokenizer.mask_token)
        if mask_id is None:
            where = tokenizer.vocab_file or "the vocabulary"
            raise MaskingError(f"{where} has no {tokenizer.mask_token} token; masked-LM "
                               "pretraining needs one")
        specials = set(tokenizer.special_tokens)
        prefix = tokenizer.continuation_prefix
        kinds = np.zeros(len(tokens), np.int32)
        for i, token in enumerate(tokens):
            if token in specials or (len(token) > 2 and token[0] == "[" and token[-1] == "]"):
                kinds[i] = SPECIAL
            elif token.startswith(prefix) and len(token) > len(prefix):
                kinds[i] = CONTINUATION
        return cls(kinds, int(mask_id))


def mask_tokens(input_word_ids, input_mask, vocab: MaskingVocab, seed: int,
                options: MaskingOptions = MaskingOptions(), num_threads: int = 1) -> dict:
    """Mask a batch of packed ids (numpy, [batch, seq]).

    Returns numpy arrays: `input_word_ids` (masked), `masked_lm_positions`,
    `masked_lm_ids` (the original ids there) and `masked_lm_weights` (1 for a
    prediction, 0 for filler), the last three [batch, max_predictions].
    """
    ids = np.asarray(input_word_ids, np.int32)
    mask = None if input_mask is None else np.asarray(input_mask, np.int32)
    try:
        return _wordpiece.mask_tokens(
            ids, mask, vocab.kinds, int(seed) & _SEED_MASK, options.select_rate,
            options.mask_rate, options.random_rate, options.max_predictions,
            options.whole_word, vocab.mask_id, num_threads)
    except ValueError as e:
        raise MaskingError(str(e)) from None


def mask_tokens_op(input_word_ids, input_mask, vocab: MaskingVocab, seed,
                   options: MaskingOptions = MaskingOptions()) -> dict:
    """`mask_tokens` as a TensorFlow op (for `tf.data`); `seed` may be a tensor."""
    import tensorflow as tf

    from keras_bert_ft.tokenizers.op import _library

    seed = tf.cast(seed, tf.int64) if isinstance(seed, tf.Tensor) else tf.constant(
        _as_int64(seed), tf.int64)
    outputs = _library.kbf_mask_tokens(
        tf.cast(input_word_ids, tf.int32), tf.cast(input_mask, tf.int32),
        tf.constant(vocab.kinds), seed,
        select_rate=options.select_rate, mask_rate=options.mask_rate,
        random_rate=options.random_rate, max_predictions=options.max_predictions,
        whole_word=options.whole_word, mask_id=vocab.mask_id)
    names = ("input_word_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
    return dict(zip(names, outputs, strict=True))


def _as_int64(seed: int) -> int:
    """A Python seed as the int64 the op takes (the same 64 bits)."""
    seed = int(seed) & _SEED_MASK
    return seed - (1 << 64) if seed >= 1 << 63 else seed
