"""Exact agreement of the C++ tokenizer with Hugging Face `tokenizers`.

Every line of the real corpora, every code point, and a generated Unicode
stress set: the wordpiece ids of each segment must equal those of
`BertWordPieceTokenizer` with the same vocabulary and casing.
"""

from __future__ import annotations

import numpy as np
import pytest
from corpora import mrpc_pairs, sms_messages, snli_pairs, sst2_sentences
from tokenizers import BertWordPieceTokenizer
from unicode_stress import stress_lines

from keras_bert_ft import WordPieceTokenizer

UNBOUNDED = 1 << 30


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def casing(request) -> bool:
    return request.param


@pytest.fixture(scope="module")
def ours(vocab_file, casing) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file, lowercase=casing)


@pytest.fixture(scope="module")
def reference(vocab_file, casing) -> BertWordPieceTokenizer:
    return BertWordPieceTokenizer(str(vocab_file), lowercase=casing)


def segment_ids(tokenizer: WordPieceTokenizer, texts: list[str]) -> list[list[int]]:
    """Wordpiece ids of each text, through the batch path with no truncation."""
    batch = tokenizer.encode_batch(texts, max_length=UNBOUNDED, num_threads=2)
    lengths = batch["input_mask"].sum(axis=1)
    ids = batch["input_word_ids"]
    return [ids[i, 1:lengths[i] - 1].tolist() for i in range(len(texts))]


def reference_ids(reference: BertWordPieceTokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]


def assert_same_ids(ours, reference, texts: list[str], corpus: str) -> None:
    got, want = segment_ids(ours, texts), reference_ids(reference, texts)
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    detail = "; ".join(f"line {i}: {texts[i]!r}: {got[i]} != {want[i]}" for i in bad[:3])
    assert not bad, f"{corpus}: {len(bad)} of {len(texts)} lines differ: {detail}"


def test_sst2_train_every_line(ours, reference, data_dir):
    texts = sst2_sentences(data_dir, "train")
    assert len(texts) == 67349
    assert_same_ids(ours, reference, texts, "SST-2 train")


def test_sms_spam_every_line(ours, reference, data_dir):
    texts = sms_messages(data_dir)
    assert len(texts) == 5574
    assert_same_ids(ours, reference, texts, "SMS Spam")


@pytest.mark.parametrize("split", ["dev", "test"])
def test_snli_every_segment(ours, reference, data_dir, split):
    premises, hypotheses = snli_pairs(data_dir, split)
    assert len(premises) > 9800
    assert_same_ids(ours, reference, premises + hypotheses, f"SNLI {split}")


@pytest.mark.parametrize("split", ["train", "dev"])
def test_mrpc_every_segment(ours, reference, data_dir, split):
    first, second = mrpc_pairs(data_dir, split)
    assert len(first) in (3667, 408)
    assert_same_ids(ours, reference, first + second, f"MRPC {split}")


def test_unicode_stress_set(ours, reference):
    assert_same_ids(ours, reference, stress_lines(), "Unicode stress set")


def test_every_code_point(ours, reference):
    # Each scalar value alone and between letters exercises every table entry.
    texts = []
    for cp in range(0x110000):
        if not 0xD800 <= cp <= 0xDFFF:
            texts.append(f"a{chr(cp)}b {chr(cp)}")
    assert_same_ids(ours, reference, texts, "every code point")


def test_bytes_input_matches_str(ours):
    texts = stress_lines(500, seed=7)
    as_bytes = [t.encode("utf-8") for t in texts]
    a = ours.encode_batch(texts, max_length=64)
    b = ours.encode_batch(as_bytes, max_length=64)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_offsets_match_reference(ours, reference, data_dir):
    texts = sms_messages(data_dir)[:2000] + stress_lines(2000, seed=3)
    want = reference.encode_batch(texts, add_special_tokens=False)
    bad = []
    for i, text in enumerate(texts):
        ids, offsets = ours.token_ids_and_offsets(text)
        if ids == want[i].ids and [tuple(o) for o in offsets] != list(want[i].offsets):
            bad.append(i)
    assert not bad, f"{len(bad)} lines with different offsets, e.g. {texts[bad[0]]!r}"


def test_tokenize_returns_reference_tokens(ours, reference, data_dir):
    texts = sst2_sentences(data_dir, "dev")
    for text, encoding in zip(texts, reference.encode_batch(texts, add_special_tokens=False),
                              strict=True):
        assert ours.tokenize(text) == encoding.tokens
