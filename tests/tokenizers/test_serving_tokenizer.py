"""The in-graph serving tokenizer gives exactly the C++ tokenizer's ids.

Every line of the real corpora, the Unicode stress set and every code point,
both casings and both tensorflow-text WordPiece kernels; then truncation and
padding of pairs with every strategy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import corpora  # noqa: E402
import numpy as np
import pytest
import tensorflow as tf
from unicode_stress import stress_lines  # noqa: E402

from keras_bert_ft.tokenizers.graph import ServingTokenizer
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

REPO = Path(__file__).resolve().parents[2]
CHUNK = 8192


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tokenizer(request, vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file, lowercase=request.param)


def graph_tokenize(serving: ServingTokenizer):
    return tf.function(serving.tokenize, input_signature=[tf.TensorSpec([None], tf.string)],
                       autograph=False)


def mismatches(tokenizer: WordPieceTokenizer, serving: ServingTokenizer, texts: list[str]) -> list:
    fn = graph_tokenize(serving)
    bad = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        for text, ids in zip(chunk, fn(tf.constant(chunk)).to_list(), strict=True):
            if ids != tokenizer.token_ids(text):
                bad.append(text)
    return bad


def tsv_column(path: Path, column: int) -> list[str]:
    """One column of a TSV file with a header row (SST-2 test, the raw MRPC files)."""
    lines = path.read_text("utf-8-sig").split("\n")[1:]
    return [line.split("\t")[column] for line in lines if line.strip()]


def every_line(data_dir: Path) -> list[str]:
    texts = corpora.sst2_sentences(data_dir, "train") + corpora.sst2_sentences(data_dir, "dev")
    texts += tsv_column(data_dir / "sst2" / "test.tsv", 1) + corpora.sms_messages(data_dir)
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        texts += tsv_column(data_dir / "mrpc" / name, 3) + tsv_column(data_dir / "mrpc" / name, 4)
    for split in ("dev", "test"):
        texts += sum(corpora.snli_pairs(data_dir, split), [])
    for split in ("train", "dev", "test"):
        texts += sum(corpora.mrpc_pairs(data_dir, split), [])
    return texts


def test_generated_tables_are_up_to_date():
    """csrc/unicode_tables.cc and _unicode_data.py are what the one generator writes now."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_unicode_tables.py"), "--check"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("wordpiece", ["fast", "classic"])
def test_every_corpus_line(tokenizer, wordpiece, data_dir):
    texts = every_line(data_dir)
    assert len(texts) > 100_000
    bad = mismatches(tokenizer, ServingTokenizer(tokenizer, wordpiece=wordpiece), texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, e.g. {bad[:3]}"


@pytest.mark.parametrize("wordpiece", ["fast", "classic"])
def test_unicode_stress_set(tokenizer, wordpiece):
    texts = stress_lines()
    bad = mismatches(tokenizer, ServingTokenizer(tokenizer, wordpiece=wordpiece), texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, e.g. {bad[:3]}"


def test_every_code_point(tokenizer):
    """Each scalar value between two letters, 256 to a line."""
    texts = []
    for block in range(0, 0x110000, 256):
        chars = [chr(c) for c in range(block, block + 256) if not 0xD800 <= c <= 0xDFFF]
        texts.append(" ".join(f"a{c}b" for c in chars))
    bad = mismatches(tokenizer, ServingTokenizer(tokenizer), texts)
    assert not bad, f"{len(bad)} blocks differ, first at U+{ord(bad[0][1]):04X}" if bad else ""


def test_special_tokens_and_edge_cases(tokenizer):
    texts = ["[CLS]x[SEP]y[MASK][PAD][UNK]", "[SEP", "[[SEP]]", "[sep] [ SEP]", "a[SEP]\u0301b",
             "", " ", "\x00", "x" * 101, "x" * 100, "é" * 101, "中" * 300, "a\u0301\u0327\u0308"]
    assert not mismatches(tokenizer, ServingTokenizer(tokenizer), texts)


def pair_corpus(data_dir: Path) -> tuple[list[str], list[str]]:
    firsts, seconds = corpora.mrpc_pairs(data_dir, "dev")
    premises, hypotheses = corpora.snli_pairs(data_dir, "dev")
    stress = stress_lines(600)
    return firsts + premises[:2000] + stress, seconds + hypotheses[:2000] + stress[::-1]


def assert_same_batch(serving: ServingTokenizer, tokenizer: WordPieceTokenizer, texts, pairs,
                      **options) -> None:
    signature = [tf.TensorSpec([None], tf.string)] * (1 if pairs is None else 2)
    fn = tf.function(serving.__call__, input_signature=signature, autograph=False)
    args = (texts,) if pairs is None else (texts, pairs)
    got = fn(*[tf.constant(a, tf.string) for a in args])
    want = tokenizer.encode_batch(texts, pairs, **options)
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        np.testing.assert_array_equal(got[name].numpy(), want[name], err_msg=name)


@pytest.mark.parametrize("truncation", ["longest_first", "ratio"])
def test_pair_truncation_and_padding(vocab_file, data_dir, truncation):
    tokenizer = WordPieceTokenizer(vocab_file)
    texts, pairs = pair_corpus(data_dir)
    for max_length, padding, multiple in ((3, "longest", None), (5, "max_length", None),
                                          (16, "longest", 8), (64, "longest", None)):
        options = dict(max_length=max_length, truncation=truncation, padding=padding,
                       pad_to_multiple_of=multiple)
        serving = ServingTokenizer(tokenizer, wordpiece="classic", **options)
        assert_same_batch(serving, tokenizer, texts, pairs, **options)


@pytest.mark.parametrize("truncation", ["only_first", "only_second"])
def test_one_sided_truncation(vocab_file, data_dir, truncation):
    tokenizer = WordPieceTokenizer(vocab_file)
    texts, pairs = pair_corpus(data_dir)
    max_length = 40
    other = pairs if truncation == "only_first" else texts
    fits = [i for i, t in enumerate(other) if len(tokenizer.token_ids(t)) <= max_length - 3]
    texts, pairs = [texts[i] for i in fits], [pairs[i] for i in fits]
    serving = ServingTokenizer(tokenizer, max_length=max_length, truncation=truncation,
                               wordpiece="classic")
    assert_same_batch(serving, tokenizer, texts, pairs, max_length=max_length,
                      truncation=truncation)
    # When the other segment alone is too long, both refuse.
    too_long = ["word " * 50]
    args = (["short"], too_long) if truncation == "only_first" else (too_long, ["short"])
    with pytest.raises(ValueError):
        tokenizer.encode_batch(*args, max_length=max_length, truncation=truncation)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot truncate"):
        serving(tf.constant(args[0]), tf.constant(args[1]))


@pytest.mark.parametrize("truncation", ["longest_first", "only_first", "only_second", "ratio"])
def test_single_texts(vocab_file, data_dir, truncation):
    tokenizer = WordPieceTokenizer(vocab_file)
    texts = corpora.sms_messages(data_dir)[:3000] + stress_lines(500)
    for options in (dict(max_length=24), dict(max_length=128, padding="max_length")):
        serving = ServingTokenizer(tokenizer, truncation=truncation, wordpiece="classic",
                                   **options)
        assert_same_batch(serving, tokenizer, texts, None, truncation=truncation, **options)


def test_empty_batch_and_bad_input(vocab_file):
    tokenizer = WordPieceTokenizer(vocab_file)
    serving = ServingTokenizer(tokenizer)
    assert_same_batch(serving, tokenizer, [], None)
    assert_same_batch(serving, tokenizer, [], [])
    with pytest.raises(tf.errors.InvalidArgumentError):
        serving(tf.constant([b"\xff\xfe"]))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        serving(tf.constant(["a", "b"]), tf.constant(["c"]))


def test_duplicate_vocabulary_tokens_take_the_last_id(vocab_file):
    vocab = WordPieceTokenizer(vocab_file).get_vocab() + ["the", "##s"]
    tokenizer = WordPieceTokenizer(vocab=vocab)
    texts = ["the cats sat on the mats", "The [SEP] thes"]
    assert tokenizer.token_ids("the")[0] == len(vocab) - 2
    assert not mismatches(tokenizer, ServingTokenizer(tokenizer), texts)
