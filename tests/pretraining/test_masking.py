"""Masked-LM masking in the C++ core: rates, whole words, seeds, special tokens,
the Python and op paths, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import tiny_tokenizer

from keras_bert_ft.pretraining.masking import (
    CONTINUATION,
    SPECIAL,
    MaskingError,
    MaskingOptions,
    MaskingVocab,
    mask_tokens,
)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return MaskingVocab.from_tokenizer(tokenizer)


def random_batch(vocab, rows: int, seq: int, seed: int = 0, pad_from=None):
    """[CLS] ordinary tokens [SEP] [PAD]...; rows shortened at random when pad_from is set."""
    rng = np.random.default_rng(seed)
    ordinary = np.flatnonzero(vocab.kinds != SPECIAL)
    ids = rng.choice(ordinary, size=(rows, seq)).astype(np.int32)
    mask = np.ones((rows, seq), np.int32)
    lengths = np.full(rows, seq) if pad_from is None else rng.integers(pad_from, seq + 1, rows)
    for r, n in enumerate(lengths):
        ids[r, 0], ids[r, n - 1] = 101, 102
        ids[r, n:], mask[r, n:] = 0, 0
    return ids, mask


def test_rates_over_a_million_tokens(vocab):
    ids, mask = random_batch(vocab, rows=7900, seq=128)  # ~1.0M tokens
    out = mask_tokens(ids, mask, vocab, seed=3, options=MaskingOptions(max_predictions=32),
                      num_threads=2)
    chosen = out["masked_lm_weights"] > 0
    maskable = mask.sum() - 2 * len(ids)
    assert maskable > 990_000
    assert abs(chosen.sum() / maskable - 0.15) < 0.005
    rows, slots = np.nonzero(chosen)
    positions = out["masked_lm_positions"][rows, slots]
    original = ids[rows, positions]
    assert (out["masked_lm_ids"][rows, slots] == original).all()
    now = out["input_word_ids"][rows, positions]
    as_mask = (now == vocab.mask_id).mean()
    kept = (now == original).mean()
    replaced = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.005
    # A random draw equal to the original counts as kept: 1 in ~30,000.
    assert abs(kept - 0.1) < 0.005 and abs(replaced - 0.1) < 0.005
    # Nothing outside the chosen positions changed.
    changed = out["input_word_ids"] != ids
    changed[rows, positions] = False
    assert not changed.any()
    # Random replacements are never special tokens.
    assert (vocab.kinds[now[now != vocab.mask_id]] != SPECIAL).all()


def test_never_masks_specials_or_padding(vocab):
    ids, mask = random_batch(vocab, rows=500, seq=40, seed=1, pad_from=2)
    out = mask_tokens(ids, mask, vocab, seed=5)
    rows, slots = np.nonzero(out["masked_lm_weights"])
    positions = out["masked_lm_positions"][rows, slots]
    assert (mask[rows, positions] == 1).all()
    assert (vocab.kinds[ids[rows, positions]] != SPECIAL).all()
    untouched = (mask == 0) | (vocab.kinds[ids] == SPECIAL)
    assert (out["input_word_ids"][untouched] == ids[untouched]).all()
    # Rows with nothing maskable ([CLS] [SEP]) get no prediction at all.
    empty = (mask.sum(1) == 2)
    assert empty.any() and (out["masked_lm_weights"][empty] == 0).all()


def test_cap_and_filler(vocab):
    ids, mask = random_batch(vocab, rows=50, seq=128, seed=2)
    out = mask_tokens(ids, mask, vocab, seed=0, options=MaskingOptions(max_predictions=5))
    assert out["masked_lm_positions"].shape == (50, 5)
    assert (out["masked_lm_weights"].sum(1) == 5).all()
    short = mask_tokens(ids[:, :10], mask[:, :10], vocab, seed=0)
    w = short["masked_lm_weights"]
    assert (w.sum(1) == 1).all()  # round(8 * 0.15) = 1
    assert (short["masked_lm_positions"][w == 0] == 0).all()
    assert (short["masked_lm_ids"][w == 0] == 0).all()


def test_whole_word_masking_never_splits_a_word(tokenizer, vocab):
    text = ("the unaffable tokenization of antidisestablishmentarianism surprisingly "
            "overwhelmed everybody") * 3
    row = tokenizer.encode(text, max_length=64)
    ids = np.tile(row["input_word_ids"], (400, 1))
    mask = np.tile(row["input_mask"], (400, 1))
    assert (vocab.kinds[ids[0]] == CONTINUATION).sum() >= 6
    out = mask_tokens(ids, mask, vocab, seed=9,
                      options=MaskingOptions(whole_word=True, max_predictions=20))
    kinds = vocab.kinds[ids[0]]
    # Words as [start, end) spans of the row.
    starts = [i for i in range(len(kinds)) if kinds[i] == 0]
    word_of = np.full(len(kinds), -1)
    for w, s in enumerate(starts):
        e = s + 1
        while e < len(kinds) and kinds[e] == CONTINUATION:
            e += 1
        word_of[s:e] = w
    split_words = 0
    for r in range(len(ids)):
        chosen = set(out["masked_lm_positions"][r][out["masked_lm_weights"][r] > 0].tolist())
        for w in set(word_of[list(chosen)]):
            if not set(np.flatnonzero(word_of == w).tolist()) <= chosen:
                split_words += 1
    assert split_words == 0
    # And without whole words, pieces are chosen alone.
    plain = mask_tokens(ids, mask, vocab, seed=9, options=MaskingOptions(max_predictions=20))
    lone = 0
    for r in range(len(ids)):
        chosen = set(plain["masked_lm_positions"][r][plain["masked_lm_weights"][r] > 0].tolist())
        for w in set(word_of[list(chosen)]):
            lone += not set(np.flatnonzero(word_of == w).tolist()) <= chosen
    assert lone > 0


def test_same_seed_same_masks_new_seed_new_masks(vocab):
    ids, mask = random_batch(vocab, rows=64, seq=64, seed=4, pad_from=10)
    a = mask_tokens(ids, mask, vocab, seed=11, num_threads=1)
    b = mask_tokens(ids, mask, vocab, seed=11, num_threads=2)
    c = mask_tokens(ids, mask, vocab, seed=12)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["masked_lm_positions"], c["masked_lm_positions"])


def test_op_gives_the_python_masks(vocab):
    import tensorflow as tf

    from keras_bert_ft.pretraining.masking import mask_tokens_op

    ids, mask = random_batch(vocab, rows=32, seq=48, seed=6, pad_from=5)
    for options in (MaskingOptions(), MaskingOptions(whole_word=True, max_predictions=7)):
        for seed in (0, 2**40 + 3, -5):
            host = mask_tokens(ids, mask, vocab, seed=seed, options=options)
            graph = mask_tokens_op(tf.constant(ids), tf.constant(mask), vocab, seed, options)
            for name in host:
                np.testing.assert_array_equal(host[name], graph[name].numpy())
            # A seed tensor inside tf.data gives the same masks as well.
            ds = tf.data.Dataset.from_tensors((ids, mask)).map(
                lambda i, m, s=seed, o=options: mask_tokens_op(
                    i, m, vocab, tf.constant(s, tf.int64), o))
            in_pipeline = next(iter(ds))
            for name in host:
                np.testing.assert_array_equal(host[name], in_pipeline[name].numpy())


def test_bad_input(tokenizer, vocab):
    from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

    no_mask = WordPieceTokenizer(vocab=[t for t in tokenizer.get_vocab() if t != "[MASK]"])
    with pytest.raises(MaskingError, match=r"no \[MASK\] token"):
        MaskingVocab.from_tokenizer(no_mask)
    ids = np.array([[101, 2000, 40000, 102]], np.int32)
    with pytest.raises(MaskingError, match="token id 40000 at row 0, position 2 is outside"):
        mask_tokens(ids, None, vocab, seed=0)
    with pytest.raises(MaskingError, match="token id -1"):
        mask_tokens(np.array([[-1, 5]], np.int32), None, vocab, seed=0)
    with pytest.raises(MaskingError, match="mask_rate"):
        MaskingOptions(mask_rate=0.9, random_rate=0.2)
    with pytest.raises(MaskingError, match="shape"):
        mask_tokens(ids, np.ones((2, 4), np.int32), vocab, seed=0)


def test_op_bad_input(vocab):
    import tensorflow as tf

    from keras_bert_ft.pretraining.masking import mask_tokens_op

    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the vocabulary"):
        mask_tokens_op(tf.constant([[101, 99999, 102]]), tf.constant([[1, 1, 1]]), vocab, 0)
