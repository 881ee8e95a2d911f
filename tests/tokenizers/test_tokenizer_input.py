"""Bad input, huge input, and concurrent use of the tokenizer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from corpora import sst2_sentences
from tokenizers import BertWordPieceTokenizer

from keras_bert_ft import WordPieceTokenizer
from keras_bert_ft.tokenizers.wordpiece import read_vocab


@pytest.fixture(scope="module")
def tokenizer(vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (None, TypeError, r"texts\[1\] is None"),
        (42, TypeError, r"texts\[1\] has type int"),
        (b"ok \xff\xfe", ValueError, r"texts\[1\] is not valid UTF-8 \(byte 3\)"),
        (b"\xe2\x82", ValueError, r"texts\[1\] is not valid UTF-8 \(byte 0\)"),
        (b"\xed\xa0\x80", ValueError, r"texts\[1\] is not valid UTF-8"),  # encoded surrogate
        (b"\xc0\xaf", ValueError, r"texts\[1\] is not valid UTF-8"),  # overlong
        ("lone \ud800", ValueError, r"texts\[1\] .*lone surrogate"),
    ],
)
def test_bad_items_name_their_index(tokenizer, bad, error, message):
    with pytest.raises(error, match=message):
        tokenizer.encode_batch(["fine", bad, "fine"])


def test_bad_pair_names_pairs(tokenizer):
    with pytest.raises(TypeError, match=r"pairs\[2\] is None"):
        tokenizer.encode_batch(["a", "b", "c"], ["a", "b", None])
    with pytest.raises(ValueError, match="differ in length"):
        tokenizer.encode_batch(["a", "b"], ["a"])


def test_bad_arguments(tokenizer):
    with pytest.raises(TypeError, match="not a single string"):
        tokenizer.encode_batch("just one string")
    with pytest.raises(ValueError, match="truncation must be one of"):
        tokenizer.encode_batch(["a"], truncation="middle")
    with pytest.raises(ValueError, match="padding must be one of"):
        tokenizer.encode_batch(["a"], padding="none")
    with pytest.raises(ValueError, match="max_length must be at least 3"):
        tokenizer.encode_batch(["a"], ["b"], max_length=2)
    with pytest.raises(TypeError, match="text is None"):
        tokenizer.tokenize(None)


def test_bad_vocab_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        WordPieceTokenizer(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[PAD]\n[UNK]\n\xff\n")
    with pytest.raises(ValueError, match=r"bad.txt: line 3: not valid UTF-8"):
        read_vocab(bad)
    no_unk = tmp_path / "no_unk.txt"
    no_unk.write_text("[CLS]\n[SEP]\nhello\n")
    with pytest.raises(ValueError, match="unk_token '\\[UNK\\]' is not in the vocabulary"):
        WordPieceTokenizer(no_unk)


def test_ten_megabyte_string(tokenizer, vocab_file, data_dir):
    sentences = sst2_sentences(data_dir, "dev")
    unit = " naïve 中文 ".join(sentences)
    text = (unit * (10_000_000 // len(unit) + 1))[:10_000_000]
    reference = BertWordPieceTokenizer(str(vocab_file), lowercase=True)
    want = reference.encode(text, add_special_tokens=False).ids
    assert tokenizer.token_ids(text) == want
    row = tokenizer.encode(text, max_length=512)
    assert row["input_word_ids"].tolist() == [101, *want[:510], 102]


def test_concurrent_calls_from_python_threads(tokenizer, data_dir):
    texts = sst2_sentences(data_dir, "train")[:20000]
    expected = tokenizer.encode_batch(texts, max_length=64, num_threads=1)
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = tokenizer.encode_batch(texts, max_length=64, num_threads=2)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 6
    for got in results.values():
        for name, array in expected.items():
            np.testing.assert_array_equal(got[name], array)


def test_thread_counts_agree(tokenizer, data_dir):
    texts = sst2_sentences(data_dir, "train")[:5000]
    one = tokenizer.encode_batch(texts, texts[::-1], max_length=48, num_threads=1,
                                 return_offsets=True)
    for threads in (2, 3, 7):
        many = tokenizer.encode_batch(texts, texts[::-1], max_length=48, num_threads=threads,
                                      return_offsets=True)
        for name, array in one.items():
            np.testing.assert_array_equal(many[name], array)


def test_accepts_numpy_and_tuples(tokenizer):
    texts = np.array(["hello world", "naïve café"], dtype=object)
    a = tokenizer.encode_batch(texts)
    b = tokenizer.encode_batch(("hello world", "naïve café"))
    np.testing.assert_array_equal(a["input_word_ids"], b["input_word_ids"])
    c = tokenizer.encode_batch(np.array(["hello world", "naïve café"]))
    np.testing.assert_array_equal(a["input_word_ids"], c["input_word_ids"])


def test_cased_vocabulary(tmp_path, vocab_file, data_dir):
    # A cased vocabulary: the uncased one plus capitalised forms of its words.
    tokens = read_vocab(vocab_file)
    extra = sorted({t.capitalize() for t in tokens if t.isalpha() and t.islower()} - set(tokens))
    cased = tmp_path / "vocab-cased.txt"
    cased.write_text("\n".join(tokens + extra) + "\n", encoding="utf-8")
    ours = WordPieceTokenizer(cased, lowercase=False)
    reference = BertWordPieceTokenizer(str(cased), lowercase=False)
    texts = sst2_sentences(data_dir, "dev") + ["Café Naïve İstanbul ÉCOLE The Movie"]
    texts = [t[:1].upper() + t[1:] for t in texts]
    got = [ours.token_ids(t) for t in texts]
    want = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    assert got == want
    assert ours.tokenize("The Movie") == ["The", "Movie"]
    assert ours.tokenize("Café") == reference.encode("Café", add_special_tokens=False).tokens


def test_outputs_survive_later_calls(tokenizer, data_dir):
    # Output memory is recycled between calls: arrays still alive must keep theirs.
    texts = sst2_sentences(data_dir, "dev")
    first = tokenizer.encode_batch(texts, max_length=64, num_threads=2)
    saved = {name: array.copy() for name, array in first.items()}
    row = first["input_word_ids"][3]  # a view keeps the block alive too
    row_saved = row.copy()
    del first
    for _ in range(6):
        tokenizer.encode_batch(texts[::-1], max_length=64, num_threads=2)
        tokenizer.encode_batch(["x y z"] * 500, ["q"] * 500, max_length=8, return_offsets=True)
    np.testing.assert_array_equal(row, row_saved)
    again = tokenizer.encode_batch(texts, max_length=64, num_threads=1)
    for name, array in saved.items():
        np.testing.assert_array_equal(again[name], array)
