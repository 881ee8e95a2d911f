"""Truncation, packing and padding, checked against a plain reference of the rules."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from corpora import mrpc_pairs, snli_pairs, sst2_sentences
from tokenizers import BertWordPieceTokenizer

from keras_bert_ft import WordPieceTokenizer

STRATEGIES = ["longest_first", "only_first", "only_second", "ratio"]


def reference_truncate(a: list, b: list, budget: int, strategy: str) -> tuple[list, list] | None:
    """The rules written out plainly; None when the strategy cannot fit the pair."""
    a, b = list(a), list(b)
    if strategy == "longest_first":
        while len(a) + len(b) > budget:  # original BERT's _truncate_seq_pair
            if len(a) > len(b):
                a.pop()
            else:
                b.pop()
    elif strategy == "only_first":
        if len(b) > budget:
            return None
        while len(a) + len(b) > budget:
            a.pop()
    elif strategy == "only_second":
        if len(a) > budget:
            return None
        while len(a) + len(b) > budget:
            b.pop()
    elif strategy == "ratio" and len(a) + len(b) > budget:
        total = len(a) + len(b)
        share = Fraction(budget * len(a), total)
        keep = int(share + Fraction(1, 2))  # nearest, halves up
        low = max(budget - len(b), 1 if a and budget >= 2 else 0)
        high = min(len(a), budget - 1 if b and budget >= 2 else budget)
        keep = min(max(keep, low), max(low, high))
        a, b = a[:keep], b[:budget - keep]
    return a, b


def reference_pack(a, b, max_length, strategy, cls, sep, pad, seq):
    """A packed row: [CLS] a [SEP] (b [SEP]) padded to `seq`."""
    if b is None:
        ids, types = [cls, *a[:max_length - 2], sep], None
        types = [0] * len(ids)
    else:
        kept = reference_truncate(a, b, max_length - 3, strategy)
        a2, b2 = kept
        ids = [cls, *a2, sep, *b2, sep]
        types = [0] * (len(a2) + 2) + [1] * (len(b2) + 1)
    mask = [1] * len(ids)
    padding = seq - len(ids)
    return ids + [pad] * padding, mask + [0] * padding, types + [0] * padding


@pytest.fixture(scope="module")
def tokenizer(vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file)


@pytest.fixture(scope="module")
def reference(vocab_file) -> BertWordPieceTokenizer:
    return BertWordPieceTokenizer(str(vocab_file), lowercase=True)


def test_truncation_rules_on_all_small_lengths(tokenizer):
    # Segments of made-up tokens: every length pair up to 12 against every budget.
    word = "the"
    for la, lb, max_length in itertools.product(range(13), range(13), range(3, 20)):
        a, b = " ".join([word] * la), " ".join([word] * lb)
        budget = max_length - 3
        want = reference_truncate(list(range(la)), list(range(lb)), budget, "ratio")
        for strategy in STRATEGIES:
            want = reference_truncate(list(range(la)), list(range(lb)), budget, strategy)
            if want is None:
                with pytest.raises(ValueError, match=r"texts\[0\]|pairs\[0\]"):
                    tokenizer.encode(a, b, max_length=max_length, truncation=strategy)
                continue
            row = tokenizer.encode(a, b, max_length=max_length, truncation=strategy)
            types = row["input_type_ids"]
            got = (int((types == 0).sum()) - 2, int((types == 1).sum()) - 1)
            assert got == (len(want[0]), len(want[1])), (la, lb, max_length, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("max_length", [16, 32, 64])
def test_pairs_equal_reference_packing(tokenizer, reference, data_dir, strategy, max_length):
    first, second = mrpc_pairs(data_dir, "dev")
    premises, hypotheses = snli_pairs(data_dir, "dev")
    first, second = first + premises[:2000], second + hypotheses[:2000]
    seg_a = [e.ids for e in reference.encode_batch(first, add_special_tokens=False)]
    seg_b = [e.ids for e in reference.encode_batch(second, add_special_tokens=False)]
    fits = [reference_truncate(a, b, max_length - 3, strategy) is not None
            for a, b in zip(seg_a, seg_b, strict=True)]
    keep = [i for i, ok in enumerate(fits) if ok]
    assert len(keep) >= 500  # enough rows that fit for the comparison to mean something
    batch = tokenizer.encode_batch([first[i] for i in keep], [second[i] for i in keep],
                                   max_length=max_length, truncation=strategy, num_threads=2)
    seq = batch["input_word_ids"].shape[1]
    truncated = 0
    for row, i in enumerate(keep):
        ids, mask, types = reference_pack(seg_a[i], seg_b[i], max_length, strategy,
                                          101, 102, 0, seq)
        truncated += len(seg_a[i]) + len(seg_b[i]) + 3 > max_length
        assert batch["input_word_ids"][row].tolist() == ids, (strategy, first[i], second[i])
        assert batch["input_mask"][row].tolist() == mask
        assert batch["input_type_ids"][row].tolist() == types
    assert truncated > 0


def test_single_texts_cut_at_the_end(tokenizer, reference, data_dir):
    texts = sst2_sentences(data_dir, "dev")
    full = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    batch = tokenizer.encode_batch(texts, max_length=20)
    assert batch["input_word_ids"].shape == (len(texts), 20)
    for row, ids in enumerate(full):
        want, _, _ = reference_pack(ids, None, 20, None, 101, 102, 0, 20)
        assert batch["input_word_ids"][row].tolist() == want


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_single_texts_ignore_the_pair_strategy(tokenizer, strategy):
    row = tokenizer.encode("a b c d e f", max_length=5, truncation=strategy)
    tokens = tokenizer.convert_ids_to_tokens(row["input_word_ids"])
    assert tokens == ["[CLS]", "a", "b", "c", "[SEP]"]


def test_padding_modes(tokenizer):
    texts = ["a", "a b c d e"]
    longest = tokenizer.encode_batch(texts, max_length=32)
    assert longest["input_word_ids"].shape == (2, 7)
    assert longest["input_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7]
    multiple = tokenizer.encode_batch(texts, max_length=32, pad_to_multiple_of=8)
    assert multiple["input_word_ids"].shape == (2, 8)
    fixed = tokenizer.encode_batch(texts, max_length=32, padding="max_length")
    assert fixed["input_word_ids"].shape == (2, 32)
    assert fixed["input_word_ids"].dtype == np.int32
    assert fixed["input_word_ids"][0, 3:].tolist() == [0] * 29


def test_empty_string_is_cls_sep(tokenizer):
    row = tokenizer.encode("")
    assert tokenizer.convert_ids_to_tokens(row["input_word_ids"]) == ["[CLS]", "[SEP]"]
    pair = tokenizer.encode("", "")
    assert tokenizer.convert_ids_to_tokens(pair["input_word_ids"]) == ["[CLS]", "[SEP]", "[SEP]"]
    assert pair["input_type_ids"].tolist() == [0, 0, 1]


def test_empty_batch(tokenizer):
    batch = tokenizer.encode_batch([], max_length=16)
    assert batch["input_word_ids"].shape == (0, 0)
    fixed = tokenizer.encode_batch([], max_length=16, padding="max_length")
    assert fixed["input_word_ids"].shape == (0, 16)


def test_special_tokens_are_never_split(tokenizer):
    tokens = tokenizer.tokenize("a[SEP]b [MASK] [sep]")
    assert tokens == ["a", "[SEP]", "b", "[MASK]", "[", "sep", "]"]


def test_decode_round_trip(tokenizer):
    ids = tokenizer.encode("The unaffable movie, isn't it?")["input_word_ids"]
    assert tokenizer.decode(ids) == "the unaffable movie, isn't it?"
    assert tokenizer.decode(ids, skip_special_tokens=False).startswith("[CLS] the")


def test_offsets_in_batches(tokenizer):
    text = "Héllo, wörld"
    batch = tokenizer.encode_batch([text], max_length=16, return_offsets=True)
    spans = [tuple(s) for s in batch["offsets"][0].tolist()]
    tokens = tokenizer.convert_ids_to_tokens(batch["input_word_ids"][0])
    assert tokens == ["[CLS]", "hello", ",", "world", "[SEP]"]
    assert [text[a:b] for a, b in spans[1:4]] == ["Héllo", ",", "wörld"]
    assert spans[0] == spans[4] == (0, 0)


def reference_head_tail(ids: list, budget: int, head: int) -> list:
    """head_tail written out: the first `head` and the last `budget - head`, or all that fit."""
    if len(ids) <= budget:
        return list(ids)
    head = min(head, budget)
    return list(ids[:head]) + list(ids[len(ids) - (budget - head):])


def test_head_tail_equals_reference_on_sst2(tokenizer, reference, data_dir):
    texts = sst2_sentences(data_dir, "dev")
    full = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    for max_length, head in ((12, 3), (20, 0), (20, 18), (16, None)):
        batch = tokenizer.encode_batch(texts, max_length=max_length, truncation="head_tail",
                                       head_tokens=head, padding="max_length")
        h = (max_length - 2) // 4 if head is None else head
        for row, ids in enumerate(full):
            want = [101, *reference_head_tail(ids, max_length - 2, h), 102]
            want += [0] * (max_length - len(want))
            assert batch["input_word_ids"][row].tolist() == want
