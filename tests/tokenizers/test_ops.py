"""The TensorFlow op `KbfWordPieceEncode` equals `encode_batch` element for element.

Every line of the real corpora and of the Unicode stress set, single texts and
pairs, every truncation strategy, both padding modes; then bad input, empty
input and concurrent use under tf.data.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from corpora import mrpc_pairs, sms_messages, snli_pairs, sst2_sentences
from unicode_stress import stress_lines

from keras_bert_ft import WordPieceTokenizer
from keras_bert_ft.tokenizers.op import FEATURES, _library, op_options, wordpiece_encode

BATCH = 1024
STRATEGIES = ("longest_first", "only_first", "only_second", "ratio")


@pytest.fixture(scope="module")
def uncased(vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file)


@pytest.fixture(scope="module")
def cased(vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file, lowercase=False)


def op_encode(tokenizer: WordPieceTokenizer, texts, pairs=None, **kwargs) -> dict[str, np.ndarray]:
    out = wordpiece_encode(texts, pairs, vocab_file=tokenizer.vocab_file,
                           **op_options(tokenizer), **kwargs)
    return {name: tensor.numpy() for name, tensor in out.items()}


def outcome(fn):
    """The arrays, or the error message, of one encoding."""
    try:
        return fn()
    except ValueError as err:
        return str(err)
    except tf.errors.InvalidArgumentError as err:
        return err.message


def assert_identical(tokenizer, texts, pairs=None, corpus="", **kwargs) -> int:
    """Compare op and encode_batch batch by batch; returns the number of rows compared.

    A batch that fails (only_first / only_second cannot fit a row) must fail
    alike on both sides, naming the same row; that row is then left out and
    the rest of the batch compared.
    """
    rows = 0
    truncation = kwargs.get("truncation")
    if pairs is not None and truncation in ("only_first", "only_second"):
        texts, pairs = rows_that_fit(tokenizer, texts, pairs, truncation,
                                     kwargs.get("max_length", 128))
    for start in range(0, len(texts), BATCH):
        a = list(texts[start:start + BATCH])
        b = None if pairs is None else list(pairs[start:start + BATCH])
        while True:
            want = outcome(lambda a=a, b=b: tokenizer.encode_batch(a, b, num_threads=2, **kwargs))
            got = outcome(lambda a=a, b=b: op_encode(tokenizer, a, b, **kwargs))
            where = f"{corpus} rows from {start} {kwargs}"
            if not isinstance(want, str):
                break
            assert isinstance(got, str) and want in got, f"{where}: {got!r} != {want!r}"
            bad = int(re.match(r"(?:texts|pairs)\[(\d+)\]", want).group(1))
            del a[bad]
            if b is not None:
                del b[bad]
        assert not isinstance(got, str), f"{where}: op failed: {got}"
        for name in FEATURES:
            assert got[name].dtype == np.int32
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{where}: {name}")
        rows += len(a)
    return rows


def rows_that_fit(tokenizer, texts, pairs, truncation, max_length):
    """The rows that only_first / only_second can fit, and the first 3 that it cannot.

    Failing rows make the whole batch fail; the few kept still check that
    both sides fail alike and name the same row.
    """
    budget = max_length - (2 if pairs is None else 3)
    other = pairs if truncation == "only_first" else texts
    fits = [len(tokenizer.token_ids(text)) <= budget for text in other]
    failing = [i for i, ok in enumerate(fits) if not ok][:3]
    keep = [i for i, ok in enumerate(fits) if ok or i in failing]
    return [texts[i] for i in keep], None if pairs is None else [pairs[i] for i in keep]


def sst2_test_sentences(data_dir: Path) -> list[str]:
    """SST-2 test sentences: its TSV is `index<TAB>sentence`, unlike train and dev."""
    lines = (data_dir / "sst2" / "test.tsv").read_text("utf-8-sig").split("\n")[1:]
    return [line.split("\t")[1] for line in lines if line.strip()]


# -- identity on the real corpora ----------------------------------------------
@pytest.mark.parametrize("max_length,padding", [(128, "longest"), (16, "max_length")])
def test_single_texts_every_corpus_line(uncased, data_dir: Path, max_length, padding):
    for name, texts in (("SST-2 train", sst2_sentences(data_dir, "train")),
                        ("SST-2 dev", sst2_sentences(data_dir, "dev")),
                        ("SST-2 test", sst2_test_sentences(data_dir)),
                        ("SMS", sms_messages(data_dir))):
        assert assert_identical(uncased, texts, None, name, max_length=max_length,
                                padding=padding) == len(texts)


@pytest.mark.parametrize("truncation", STRATEGIES)
def test_pairs_every_corpus_line(uncased, data_dir: Path, truncation):
    # max_length 40 truncates many SNLI and most MRPC pairs; 512 none.
    corpora = [("SNLI dev", *snli_pairs(data_dir, "dev")),
               ("SNLI test", *snli_pairs(data_dir, "test")),
               ("MRPC train", *mrpc_pairs(data_dir, "train")),
               ("MRPC dev", *mrpc_pairs(data_dir, "dev")),
               ("MRPC test", *mrpc_pairs(data_dir, "test"))]
    for name, premises, hypotheses in corpora:
        for max_length in (40, 512):
            rows = assert_identical(uncased, premises, hypotheses, name, max_length=max_length,
                                    truncation=truncation, pad_to_multiple_of=8)
            assert rows > 0.95 * len(premises), (name, max_length, rows)


@pytest.mark.parametrize("casing", ["uncased", "cased"])
@pytest.mark.parametrize("truncation", STRATEGIES)
def test_unicode_stress_singles_and_pairs(request, casing, truncation):
    tokenizer = request.getfixturevalue(casing)
    lines = stress_lines()
    shifted = lines[7:] + lines[:7]
    assert_identical(tokenizer, lines, None, "stress", max_length=512)
    assert_identical(tokenizer, lines, None, "stress", max_length=24, truncation=truncation)
    for max_length in (24, 96, 4096):
        assert_identical(tokenizer, lines, shifted, "stress pairs", max_length=max_length,
                         truncation=truncation)


def test_options_are_honoured(vocab_file):
    tokenizer = WordPieceTokenizer(vocab_file, lowercase=True, strip_accents=False,
                                   max_input_chars_per_word=5)
    texts = ["Café RÉSUMÉ naïve", "extraordinarily long words", "[MASK] [CLS]x"]
    assert_identical(tokenizer, texts, None, "options", max_length=32, padding="max_length",
                     pad_to_multiple_of=5)


def test_scalar_text_gives_one_row(uncased):
    one = op_encode(uncased, "Hello world!", None, max_length=8)
    want = uncased.encode("Hello world!", max_length=8)
    for name in FEATURES:
        np.testing.assert_array_equal(one[name], want[name])


def test_static_shape_with_max_length_padding(uncased):
    fn = tf.function(lambda t: wordpiece_encode(t, vocab_file=uncased.vocab_file, max_length=30,
                                                padding="max_length", pad_to_multiple_of=8))
    spec = fn.get_concrete_function(tf.TensorSpec([None], tf.string)).structured_outputs
    assert spec["input_word_ids"].shape.as_list() == [None, 32]


# -- bad and empty input -------------------------------------------------------
def test_malformed_utf8_names_the_index(uncased):
    texts = [b"fine", b"also fine", b"bad \xc3\x28 byte", b"ok"]
    message = r"texts\[2\] is not valid UTF-8 \(byte 4\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        op_encode(uncased, texts)
    with pytest.raises(ValueError, match=message):
        uncased.encode_batch(texts)
    pairs = [b"a", b"b", b"c", b"\xff"]
    message = r"pairs\[3\] is not valid UTF-8 \(byte 0\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        op_encode(uncased, [b"a"] * 4, pairs)


@pytest.mark.parametrize("bad", [b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_surrogates_overlongs_and_truncated_sequences(uncased, bad):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"texts\[1\] is not valid UTF-8"):
        op_encode(uncased, [b"x", b"ab" + bad])


def test_empty_batch_and_empty_strings(uncased):
    for pairs in (None, []):
        got = op_encode(uncased, tf.constant([], tf.string), pairs)
        want = uncased.encode_batch([], pairs)
        for name in FEATURES:
            assert got[name].shape == want[name].shape
    assert_identical(uncased, ["", "", " \t\n"], None, "empty")
    assert_identical(uncased, ["", "a", ""], ["", "", "b"], "empty pairs")
    got = op_encode(uncased, tf.constant([], tf.string), max_length=8, padding="max_length")
    assert got["input_word_ids"].shape == (0, 8)


def test_impossible_truncation_names_the_index(uncased):
    long = "word " * 50
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"pairs\[1\]: cannot truncate"):
        op_encode(uncased, ["a", "b"], ["c", long], max_length=16, truncation="only_first")


def test_bad_arguments(uncased, tmp_path):
    # The wrapper refuses it through PackingOptions; the kernel keeps its own check.
    with pytest.raises(ValueError, match="max_length must be at least 3"):
        op_encode(uncased, ["a"], ["b"], max_length=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_length must be at least 3"):
        _library.kbf_word_piece_encode(["a"], ["b"], uncased.vocab_file, has_pairs=True,
                                       max_length=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="as long as texts"):
        op_encode(uncased, ["a", "b"], ["c"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="texts must be a vector"):
        op_encode(uncased, [["a"]])
    with pytest.raises(ValueError, match="truncation must be one of"):
        op_encode(uncased, ["a"], truncation="middle")
    # Outputs too large to have: an error, not a crash. (A shape that fits in
    # int64 but not in memory gives ResourceExhaustedError after TF's 10 s retry.)
    with pytest.raises(tf.errors.InvalidArgumentError, match="overflow"):
        op_encode(uncased, ["a"] * 8, max_length=(1 << 62), padding="max_length",
                  pad_to_multiple_of=1 << 61)
    with pytest.raises(tf.errors.NotFoundError):
        wordpiece_encode(["a"], vocab_file=str(tmp_path / "missing.txt"))
    no_cls = tmp_path / "no_cls.txt"
    no_cls.write_text("[PAD]\n[UNK]\n[SEP]\nhello\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'\[CLS\]' is not in the vocabulary"):
        wordpiece_encode(["a"], vocab_file=str(no_cls))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[CLS]\n[SEP]\n[UNK]\n\xff\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="line 4: not valid UTF-8"):
        wordpiece_encode(["a"], vocab_file=str(bad))


def test_vocab_read_like_read_vocab(tmp_path):
    # Trailing whitespace of every kind stripped, CRLF files, no final newline.
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##s", "wor", "##ld"]
    path = tmp_path / "vocab.txt"
    path.write_bytes("\r\n".join(t + ("\u3000 \t" if i % 2 else "") for i, t in enumerate(tokens))
                     .encode())
    tokenizer = WordPieceTokenizer(path)
    assert tokenizer.get_vocab() == tokens
    assert_identical(tokenizer, ["hellos world", "Hello", "xyz"], None, "crlf vocab")


# -- concurrency ---------------------------------------------------------------
def test_parallel_map_in_tf_data(uncased, cased, data_dir):
    texts = sst2_sentences(data_dir, "dev") * 4
    batches = [texts[i:i + 64] for i in range(0, len(texts), 64)]
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(64)

    def both(batch):  # two tokenizers (two cache entries) in the same map
        a = wordpiece_encode(batch, vocab_file=uncased.vocab_file, **op_options(uncased))
        b = wordpiece_encode(batch, vocab_file=cased.vocab_file, **op_options(cased))
        return a["input_word_ids"], b["input_word_ids"]

    ds = ds.map(both, num_parallel_calls=8, deterministic=True)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 8
    for (a, b), batch in zip(ds.with_options(options), batches, strict=True):
        np.testing.assert_array_equal(a.numpy(), uncased.encode_batch(batch)["input_word_ids"])
        np.testing.assert_array_equal(b.numpy(), cased.encode_batch(batch)["input_word_ids"])


def test_python_threads_and_intra_op_threads(uncased, data_dir):
    texts = sst2_sentences(data_dir, "dev")
    want = uncased.encode_batch(texts, max_length=64)
    failures = []

    def run(threads):
        got = op_encode(uncased, texts, max_length=64, num_threads=threads)
        if not all(np.array_equal(got[n], want[n]) for n in FEATURES):
            failures.append(threads)

    workers = [threading.Thread(target=run, args=(1 + i % 4,)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures
