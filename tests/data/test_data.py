"""Tests of keras_bert_ft.data: readers and their errors, splits, length
statistics, the dataset registry (real files, local downloads) and the
tf.data pipeline."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib
import io
import json
import math
import socket
import tarfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_bert_ft.data import (
    DataError,
    DatasetUnavailableError,
    LabelVocabulary,
    TextDataset,
    length_statistics,
    load_dataset,
    read_csv,
    read_dataframe,
    read_file,
    read_jsonl,
    read_tsv,
    registry,
    stratified_split,
    suggest_max_length,
)
from keras_bert_ft.data.datasets import imdb, sms_spam
from keras_bert_ft.data.download import DownloadError, download, extract
from keras_bert_ft.data.splits import split_indices
from keras_bert_ft.data.stats import token_lengths
from keras_bert_ft.errors import KerasBertFtError


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# --------------------------------------------------------------------------- a fake tokenizer


class FakeTokenizer:
    """Whitespace tokenizer with the WordPieceTokenizer.encode_batch interface.

    Token ids: [PAD]=0, [CLS]=1, [SEP]=2, words get ids from 3 in order of first sight.
    """

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def _ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(w, len(self.vocab) + 3) for w in text.split()]

    def encode_batch(
        self,
        texts,
        pairs=None,
        max_length=128,
        truncation="longest_first",
        padding="longest",
        pad_to_multiple_of=None,
        num_threads=None,
    ):
        rows, types = [], []
        for i, text in enumerate(texts):
            a = self._ids(text)
            b = None if pairs is None else self._ids(pairs[i])
            if b is None:
                a = a[: max_length - 2]
                ids, tt = [1, *a, 2], [0] * (len(a) + 2)
            else:
                while len(a) + len(b) > max_length - 3:
                    (a if len(a) > len(b) else b).pop()
                ids = [1, *a, 2, *b, 2]
                tt = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            rows.append(ids)
            types.append(tt)
        width = max(map(len, rows)) if padding == "longest" else max_length
        out = {k: np.zeros((len(rows), width), np.int32) for k in ("w", "m", "t")}
        for i, (ids, tt) in enumerate(zip(rows, types, strict=True)):
            out["w"][i, : len(ids)] = ids
            out["m"][i, : len(ids)] = 1
            out["t"][i, : len(ids)] = tt
        return {"input_word_ids": out["w"], "input_mask": out["m"], "input_type_ids": out["t"]}


@functools.cache
def real_tokenizer(vocab_file: str):
    tokenization = pytest.importorskip("keras_bert_ft.tokenizers.wordpiece")
    try:
        return tokenization.WordPieceTokenizer(vocab_file, lowercase=True)
    except ImportError as e:  # the C++ extension is not built
        pytest.skip(f"C++ tokenizer unavailable: {e}")


# --------------------------------------------------------------------------- readers


def test_read_csv_with_quotes_pairs_and_string_labels(tmp_path):
    path = write(
        tmp_path / "d.csv",
        'premise,hypothesis,label\n"a, b",c,pos\nd,"say ""hi""",neg\n\ne,f,pos\n',
    )
    ds = read_csv(path, "premise", "hypothesis", "label")
    assert ds.texts == ["a, b", "d", "e"]
    assert ds.pairs == ["c", 'say "hi"', "f"]
    assert ds.label_vocab.names == ("neg", "pos")  # sorted, not file order
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.labels.dtype == np.int32
    assert ds.class_counts() == {"neg": 1, "pos": 2}
    assert ds.source == str(path)


def test_integer_labels_sort_numerically(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,10\nb,2\nc,1\nd,2\n")
    ds = read_csv(path)
    assert ds.label_vocab.names == ("1", "2", "10")
    assert ds.labels.tolist() == [2, 1, 0, 1]


def test_read_tsv_keeps_quotes_literally(tmp_path):
    path = write(tmp_path / "d.tsv", 'sentence\tlabel\nhe said " hi \t1\n"quoted" text\t0\n')
    ds = read_tsv(path, "sentence")
    assert ds.texts == ['he said " hi', '"quoted" text']
    assert ds.labels.tolist() == [1, 0]


def test_read_tsv_without_header_uses_indices(tmp_path):
    path = write(tmp_path / "d.tsv", "spam\tWIN now\nham\thi mum\n")
    ds = read_tsv(path, 1, label_column=0, header=False)
    assert ds.texts == ["WIN now", "hi mum"]
    assert ds.label_vocab.names == ("ham", "spam")
    with pytest.raises(DataError, match="without a header row"):
        read_tsv(path, "text", label_column=0, header=False)


def test_read_jsonl_and_dataframe_agree(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = [{"t": "good film", "y": 1}, {"t": "bad film", "y": 0}, {"t": "fine", "y": 1}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    a = read_jsonl(path, "t", label_column="y")
    b = read_dataframe(pd.DataFrame(rows), "t", label_column="y")
    assert a.texts == b.texts == ["good film", "bad film", "fine"]
    assert a.labels.tolist() == b.labels.tolist() == [1, 0, 1]
    assert a.label_vocab == b.label_vocab == LabelVocabulary(("0", "1"))
    assert read_file(path, "t", label_column="y").texts == a.texts


def test_jsonl_lines_end_at_newline_only(tmp_path):
    """U+2028, U+0085 and \\x1c may stand raw inside a JSON string (IMDB has them)."""
    texts = ["one\u2028review", "next\x85line", "file\x1csep", "plain"]
    body = "\r\n".join(json.dumps({"t": t, "y": i % 2}, ensure_ascii=False)
                       for i, t in enumerate(texts))  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_bytes(body.encode("utf-8"))
    ds = read_jsonl(path, "t", label_column="y")
    assert ds.texts == texts
    assert ds.labels.tolist() == [0, 1, 0, 1]


def test_unlabelled_data(tmp_path):
    path = write(tmp_path / "d.csv", "text\nhello\nworld\n")
    ds = read_csv(path, label_column=None)
    assert ds.labels is None and ds.label_vocab is None and len(ds) == 2


def test_label_vocabulary_round_trip(tmp_path):
    vocab = LabelVocabulary(("neg", "neutral", "pos"))
    path = vocab.save(tmp_path / "sub" / "labels.json")
    assert LabelVocabulary.load(path) == vocab
    assert [p.name for p in path.parent.iterdir()] == ["labels.json"]  # no temp file left
    assert vocab.encode(["pos", "neg"]).tolist() == [2, 0]
    assert vocab.decode([1, 2]) == ["neutral", "pos"]
    assert "neutral" in vocab and "other" not in vocab
    with pytest.raises(ValueError, match="duplicate"):
        LabelVocabulary(("a", "a"))


# --------------------------------------------------------------------------- bad input


def test_missing_column_lists_the_columns_found(tmp_path):
    path = write(tmp_path / "d.csv", "sentence,label\nhello,1\n")
    with pytest.raises(DataError) as e:
        read_csv(path, "text", label_column="label")
    msg = str(e.value)
    assert str(path) in msg and "line 1" in msg
    assert "'text'" in msg and "'sentence', 'label'" in msg and "Fix:" in msg
    assert isinstance(e.value, ValueError)
    assert (e.value.path, e.value.line) == (str(path), 1)


def test_missing_field_in_jsonl_and_dataframe(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    with pytest.raises(DataError, match=r"line 2: no text field 'text'; fields found: 'txt'"):
        read_jsonl(path)
    pd = pytest.importorskip("pandas")
    with pytest.raises(DataError, match=r"no label column 'label'; columns found: 'text', 'y'"):
        read_dataframe(pd.DataFrame({"text": ["a"], "y": [1]}))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"text,label\n", "header but no data rows"),
    ],
)
def test_empty_files(tmp_path, content, expected):
    path = write(tmp_path / "d.csv", content)
    with pytest.raises(DataError, match=expected) as e:
        read_csv(path)
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match="the file is empty"):
        read_jsonl(write(tmp_path / "e.jsonl", b""))


def test_unknown_label_at_evaluation_names_the_line(tmp_path):
    vocab = LabelVocabulary(("neg", "pos"))
    path = write(tmp_path / "eval.csv", "text,label\na,pos\nb,neg\nc,neutral\n")
    with pytest.raises(DataError) as e:
        read_csv(path, label_vocab=vocab)
    msg = str(e.value)
    assert f"{path}, line 4" in msg and "'neutral'" in msg and "neg, pos" in msg
    # With the vocabulary, one class in the evaluation file is fine.
    ok = read_csv(write(tmp_path / "one.csv", "text,label\na,pos\nb,pos\n"), label_vocab=vocab)
    assert ok.labels.tolist() == [1, 1] and ok.label_vocab is vocab


def test_empty_and_null_texts(tmp_path):
    path = write(tmp_path / "d.csv", "id,text,label\n1,fine,a\n2,   ,b\n")
    with pytest.raises(DataError, match=r"line 3, column 2: the text \(column 'text'\) is empty"):
        read_csv(path)
    path = write(tmp_path / "d.jsonl", '{"text": "x", "label": 1}\n\n{"text": null, "label": 0}\n')
    with pytest.raises(DataError, match=r"line 3: the text \(column 'text'\) is null"):
        read_jsonl(path)
    path = write(tmp_path / "p.tsv", "a\tb\tlabel\nx\ty\t0\nx\t\t1\n")
    with pytest.raises(DataError, match=r"line 3, column 2: the text pair"):
        read_tsv(path, "a", "b")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"text": ["a", None, "c"], "label": [0, 1, 0]}, index=[10, 11, 12])
    with pytest.raises(DataError, match=r"DataFrame, index 11: the text .* is null"):
        read_dataframe(df)
    df = pd.DataFrame({"text": ["a", "b"], "label": [0.0, float("nan")]})
    with pytest.raises(DataError, match=r"index 1: the label .* is missing"):
        read_dataframe(df)


def test_not_utf8_gives_line_and_byte_column(tmp_path):
    path = write(tmp_path / "latin1.csv", "text,label\nok,a\ncaf\xe9 noir,b\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert (e.value.line, e.value.column) == (3, 4)
    assert "not valid UTF-8" in str(e.value) and "0xe9" in str(e.value)
    assert "line 3" in str(e.value) and "iconv" in str(e.value)
    # A UTF-8 byte-order mark is not an error, and does not end up in the column name.
    bom = write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,label\nx,a\ny,b\n")
    assert read_csv(bom).texts == ["x", "y"]


def test_single_class_label_column(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,spam\nb,spam\nc,spam\n")
    with pytest.raises(DataError, match=r"only one class \('spam'\) in all 3 rows") as e:
        read_csv(path)
    assert "at least two classes" in str(e.value) and str(path) in str(e.value)


def test_ragged_rows_and_bad_json(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,1\nb,2,extra\n")
    with pytest.raises(DataError, match=r"line 3: expected 2 fields .* found 3"):
        read_csv(path)
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    with pytest.raises(DataError, match=r"line 2, column 15: not valid JSON") as e:
        read_jsonl(path)
    assert e.value.column == 15
    with pytest.raises(DataError, match="file not found"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="unknown file type"):
        read_file(write(tmp_path / "d.xlsx", "x"))


def test_mixed_integer_and_text_labels_are_an_error(tmp_path):
    # 0/1 from one file and neg/pos from another would silently make four classes.
    path = write(tmp_path / "d.csv", "text,label\na,0\nb,1\nc,neg\nd,1\ne,pos\nf,spam\ng,x\n")
    with pytest.raises(DataError) as e:
        read_csv(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: the label column 'label' mixes integer labels")
    assert "('0', '1'; first '0' at line 2)" in msg
    assert "('neg', 'pos', 'spam', ...; first 'neg' at line 4)" in msg and "Fix:" in msg
    assert isinstance(e.value, KerasBertFtError)
    # pandas: integers and strings in one object column; errors name the index label.
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": [1, "pos", 0]}, index=[10, 11, 12])
    with pytest.raises(DataError, match=r"first '1' at index 10.*first 'pos' at index 11"):
        read_dataframe(df)


def test_labels_of_one_kind_are_fine(tmp_path):
    ints = write(tmp_path / "i.csv", "text,label\na,-1\nb,1\nc,0\nd,10\n")
    assert read_csv(ints).label_vocab.names == ("-1", "0", "1", "10")
    texts = write(tmp_path / "t.csv", "text,label\na,neg\nb,pos\nc,1.5\n")
    assert read_csv(texts).label_vocab.names == ("1.5", "neg", "pos")
    # With the model's vocabulary (evaluation), labels are only checked against it.
    vocab = LabelVocabulary(("0", "neg"))
    assert read_csv(write(tmp_path / "e.csv", "text,label\na,0\nb,neg\n"),
                    label_vocab=vocab).labels.tolist() == [0, 1]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_fields_over_128_kib_are_read(tmp_path, suffix):
    # Python's csv module refuses fields over 131072 characters unless told otherwise.
    long_text = "word " * 60_000  # 300,000 characters
    sep = "," if suffix == ".csv" else "\t"
    path = write(tmp_path / f"d{suffix}", f"text{sep}label\n{long_text}{sep}a\nshort{sep}b\n")
    ds = read_file(path)
    assert ds.texts == [long_text.strip(), "short"] and ds.labels.tolist() == [0, 1]


# --------------------------------------------------------------------------- splits


def _toy_dataset(counts: dict[str, int]) -> TextDataset:
    labels = [name for name, c in counts.items() for _ in range(c)]
    vocab = LabelVocabulary.from_values(labels)
    return TextDataset(
        texts=[f"row {i}" for i in range(len(labels))],
        pairs=None,
        labels=vocab.encode(labels),
        label_vocab=vocab,
        source="toy",
    )


def test_stratified_split_keeps_class_shares_and_is_seeded():
    ds = _toy_dataset({"ham": 4827, "spam": 747})
    parts = stratified_split(ds, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=7)
    assert sum(len(p) for p in parts.values()) == len(ds)
    all_texts = [t for p in parts.values() for t in p.texts]
    assert sorted(all_texts) == sorted(ds.texts)  # a partition: nothing lost or repeated
    for name, frac in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        counts = parts[name].class_counts()
        assert abs(counts["ham"] - 4827 * frac) <= 1
        assert abs(counts["spam"] - 747 * frac) <= 1
    again = stratified_split(ds, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=7)
    other = stratified_split(ds, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=8)
    assert again["test"].texts == parts["test"].texts
    assert other["test"].texts != parts["test"].texts
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(ds, {"train": 0.8, "test": 0.1})


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=300),
    cut=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_indices_is_a_stratified_partition(labels, cut, seed):
    y = np.array(labels)
    parts = split_indices(y, len(y), {"a": cut, "b": 1 - cut}, seed)
    both = np.concatenate([parts["a"], parts["b"]])
    assert sorted(both.tolist()) == list(range(len(y)))
    for c in np.unique(y):
        n_c = int((y == c).sum())
        assert abs(int((y[parts["a"]] == c).sum()) - cut * n_c) <= 0.5 + 1e-9


# --------------------------------------------------------------------------- length statistics


def test_suggest_max_length_by_hand():
    lengths = np.arange(1, 101)
    assert suggest_max_length(lengths, 95, multiple_of=8) == 96
    assert suggest_max_length(lengths, 50, multiple_of=8) == 56  # 50 -> 56
    assert suggest_max_length(lengths, 100, multiple_of=8, cap=64) == 64
    assert suggest_max_length(np.array([3, 3, 3]), 95, multiple_of=8) == 8


def test_length_statistics_accepts_three_tokenizer_kinds():
    texts = ["a b c", "a", "a b c d e f g h i j", "x y"]
    by_callable = token_lengths(texts, str.split)
    by_tokenize = token_lengths(texts, FakeTokenizer())

    class EncodeOnly:
        encode_batch = FakeTokenizer().encode_batch

    by_encode = token_lengths(texts, EncodeOnly())
    assert by_callable.tolist() == by_tokenize.tolist() == by_encode.tolist() == [5, 3, 12, 4]
    pairs = token_lengths(texts, str.split, pairs=["p q"] * 4)
    assert pairs.tolist() == [8, 6, 15, 7]
    stats = length_statistics(texts, str.split, percentile=50, bins=4)
    assert stats.counts.sum() == 4 and len(stats.bin_edges) == 5
    assert stats.suggested_max_length == 8
    assert stats.truncated_fraction == 0.25
    assert "max_length 8" in stats.histogram_text()
    assert stats.summary()["max"] == 12


def test_length_histogram_png(tmp_path):
    stats = length_statistics(["a b", "a b c d", "a"] * 10, str.split, percentile=90)
    png = stats.save_png(tmp_path / "lengths.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lengths.png"]


def test_length_statistics_with_the_real_tokenizer(data_dir, vocab_file):
    tok = real_tokenizer(str(vocab_file))
    dev = load_dataset("sst2", "validation", data_dir=data_dir, download=False)
    via_tokenize = token_lengths(dev.texts, tok)
    via_encode = token_lengths(dev.texts, type("E", (), {"encode_batch": tok.encode_batch})())
    # The C++ batch packer and tokenize() + [CLS]/[SEP] agree on every row.
    np.testing.assert_array_equal(via_tokenize, via_encode)
    stats = length_statistics(dev.texts, tok, percentile=95)
    assert stats.suggested_max_length % 8 == 0
    assert np.mean(stats.lengths <= stats.suggested_max_length) >= 0.95
    assert 16 <= stats.suggested_max_length <= 128


# --------------------------------------------------------------------------- registry: real files


def test_registry_reads_the_real_files(data_dir):
    sst2 = load_dataset("sst2", data_dir=data_dir, download=False)
    assert (len(sst2["train"]), len(sst2["validation"])) == (67349, 872)
    assert sst2["train"].class_counts() == {"negative": 29780, "positive": 37569}
    assert sst2["train"].texts[0] == "hide new secretions from the parental units"

    sms = load_dataset("sms_spam", data_dir=data_dir, download=False)
    assert sum(len(s) for s in sms.values()) == 5574
    total = {k: sum(s.class_counts()[k] for s in sms.values()) for k in ("ham", "spam")}
    assert total == {"ham": 4827, "spam": 747}
    for name, frac in sms_spam.SMS_SPLIT.items():
        assert abs(sms[name].class_counts()["spam"] - 747 * frac) <= 1
    again = load_dataset("sms_spam", "test", data_dir=data_dir, download=False)
    assert again.texts == sms["test"].texts  # the fixed split is reproducible

    snli = load_dataset("snli", data_dir=data_dir, download=False)
    assert (len(snli["validation"]), len(snli["test"])) == (9842, 9824)
    assert snli["test"].class_counts() == {
        "entailment": 3368,
        "neutral": 3219,
        "contradiction": 3237,
    }
    assert snli["validation"].is_pair
    assert snli["validation"].pairs[0].startswith("The sisters are hugging goodbye")

    mrpc = load_dataset("mrpc", data_dir=data_dir, download=False)
    assert (len(mrpc["train"]), len(mrpc["validation"]), len(mrpc["test"])) == (3667, 408, 1725)
    assert mrpc["validation"].class_counts() == {"not_equivalent": 129, "equivalent": 279}
    assert '" the witness "' in mrpc["train"].texts[0]  # quotes kept literally


def test_imdb_reads_the_json_lines_layout(data_dir):
    # The shared copy is the JSON Lines conversion (reviews with ids >= 1000, see SOURCE.txt).
    splits = load_dataset("imdb", data_dir=data_dir, download=False)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 20700,
        "validation": 2300,
        "test": 23000,
    }
    assert splits["validation"].class_counts() == {"neg": 1150, "pos": 1150}
    assert "<br" not in " ".join(splits["test"].texts[:200])  # HTML breaks read as spaces
    assert splits["test"].texts[0].startswith("First of all, I would like to say")


def test_imdb_json_lines_bad_record_names_file_and_line(tmp_path):
    root = tmp_path / "imdb"
    root.mkdir()
    write(root / "test.jsonl", '{"text": "fine", "label": 1}\n')
    write(root / "train.jsonl", '{"text": "good", "label": 1}\n{"text": "bad", "label": 7}\n')
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: not an IMDB review record"):
        load_dataset("imdb", data_dir=tmp_path, download=False)


def test_every_builtin_data_set_has_its_own_module():
    from keras_bert_ft.data import datasets

    assert sorted(s.name for s in datasets.BUILTIN) == registry.list_datasets()
    for spec in datasets.BUILTIN:
        module = importlib.import_module(f"keras_bert_ft.data.datasets.{spec.name}")
        assert registry.DATASETS[spec.name] is module.SPEC


def test_moved_split_constants_still_read_from_the_registry_with_a_warning():
    with pytest.warns(DeprecationWarning, match="moved to keras_bert_ft.data.datasets.sms_spam"):
        assert registry.SMS_SPLIT is sms_spam.SMS_SPLIT
    with pytest.warns(DeprecationWarning, match="datasets.imdb.IMDB_SPLIT_SEED"):
        assert registry.IMDB_SPLIT_SEED == imdb.IMDB_SPLIT_SEED
    with pytest.raises(AttributeError, match="no attribute 'SST2_SPLIT'"):
        registry.SST2_SPLIT  # noqa: B018


def test_mrpc_canonical_split_from_the_msr_files(data_dir, tmp_path):
    # Only the upstream files: the registry derives GLUE's split itself.
    local = tmp_path / "data" / "mrpc"
    local.mkdir(parents=True)
    for name in ("msr_paraphrase_train.txt", "dev_ids.tsv"):
        (local / name).symlink_to(data_dir / "mrpc" / name)
    mrpc = load_dataset("mrpc", data_dir=tmp_path / "data", download=False)
    assert (len(mrpc["train"]), len(mrpc["validation"])) == (3668, 408)
    glue_dev = load_dataset("mrpc", "validation", data_dir=data_dir, download=False)
    assert sorted(mrpc["validation"].texts) == sorted(glue_dev.texts)
    assert mrpc["validation"].class_counts() == glue_dev.class_counts()


def test_lookup_order_local_then_cache(tmp_path, monkeypatch):
    def sst2_dir(root: Path, sentence: str) -> None:
        d = root / "sst2"
        d.mkdir(parents=True)
        for f in ("train.tsv", "dev.tsv"):
            write(d / f, f"sentence\tlabel\n{sentence} \t1\nother \t0\n")

    local, cache = tmp_path / "local", tmp_path / "cache"
    sst2_dir(cache / "datasets", "from cache")  # $KBF_CACHE_DIR/datasets/<name>
    monkeypatch.setenv("KBF_DATA_DIR", str(local))
    monkeypatch.setenv("KBF_CACHE_DIR", str(cache))
    assert load_dataset("sst2", "train", download=False).texts[0] == "from cache"
    sst2_dir(local, "from local")
    assert load_dataset("sst2", "train", download=False).texts[0] == "from local"
    with pytest.raises(KeyError, match="known: goemotions, imdb, mrpc, sms_spam, snli, sst2"):
        load_dataset("glue")
    with pytest.raises(KeyError, match="has no split 'test'"):
        load_dataset("sst2", "test", download=False)


def test_a_copy_cached_by_an_earlier_release_is_still_found(tmp_path, monkeypatch):
    old = tmp_path / "cache" / "sst2"  # the layout before $KBF_CACHE_DIR/datasets/<name>
    old.mkdir(parents=True)
    for f in ("train.tsv", "dev.tsv"):
        write(old / f, "sentence\tlabel\nfrom the old cache \t1\nother \t0\n")
    monkeypatch.setenv("KBF_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "cache"))
    assert load_dataset("sst2", "train", download=False).texts[0] == "from the old cache"


def test_missing_data_set_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KBF_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DatasetUnavailableError) as e:
        load_dataset("imdb", download=False)
    msg = str(e.value)
    assert "KBF_DATA_DIR" in msg and "aclImdb_v1.tar.gz" in msg and str(tmp_path) in msg


# --------------------------------------------------------------------------- registry: downloads


def _imdb_archive(path: Path) -> Path:
    """A tiny aclImdb_v1.tar.gz with the real layout: 20 train and 4 test reviews."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", 10), ("test", 2)):
            for label in ("pos", "neg"):
                for i in range(n):
                    data = f"{label} review {i} of {split}.<br /><br />Second line.".encode()
                    info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_7.txt")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        data = b"readme"
        info = tarfile.TarInfo("aclImdb/README")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def http_server(tmp_path):
    """A file server on 127.0.0.1 for tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        if self.path == "/truncated":
            # Promise 1000 bytes, send 10, hang up: an interrupted download.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


def test_imdb_download_from_a_local_server(tmp_path, http_server, monkeypatch):
    base_url, www = http_server
    archive = _imdb_archive(www / "aclImdb_v1.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    spec = dataclasses.replace(
        registry.DATASETS["imdb"],
        files=(
            registry.RemoteFile(f"{base_url}/aclImdb_v1.tar.gz", "aclImdb_v1.tar.gz", True, digest),
        ),
    )
    monkeypatch.delenv("KBF_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    splits = load_dataset(spec, data_dir=tmp_path / "empty", cache_dir=cache)
    assert {k: len(v) for k, v in splits.items()} == {"train": 18, "validation": 2, "test": 4}
    assert splits["validation"].class_counts() == {"neg": 1, "pos": 1}
    assert splits["test"].texts[0] == "neg review 0 of test. Second line."
    # The archive was unpacked into the cache and removed; no partial folders remain.
    assert sorted(p.name for p in cache.iterdir()) == ["imdb"]
    assert not (cache / "imdb" / "aclImdb_v1.tar.gz").exists()
    # Served from the cache from now on, with the server gone.
    archive.unlink()
    assert len(load_dataset(spec, "test", data_dir=tmp_path / "empty", cache_dir=cache)) == 4


def test_download_is_atomic_and_verified(tmp_path, http_server):
    base_url, www = http_server
    write(www / "f.txt", "hello")
    dest = tmp_path / "out" / "f.txt"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{base_url}/f.txt", dest, sha256="0" * 64)
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    with pytest.raises(DownloadError, match="could not download"):
        download(f"{base_url}/truncated", dest)
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    good = hashlib.sha256(b"hello").hexdigest()
    assert download(f"{base_url}/f.txt", dest, sha256=good).read_text() == "hello"
    # file:// URLs work too, for mirrors on a shared disk.
    assert download((www / "f.txt").as_uri(), tmp_path / "g.txt").read_text() == "hello"


def test_offline_download_fails_fast_with_advice(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = dataclasses.replace(
        registry.DATASETS["imdb"],
        files=(registry.RemoteFile(f"http://127.0.0.1:{port}/a.tar.gz", "a.tar.gz", True),),
    )
    monkeypatch.delenv("KBF_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as e:
        load_dataset(spec, data_dir=tmp_path / "none", cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < 5
    assert "download failed" in str(e.value) and "set KBF_DATA_DIR" in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no partial folder left behind
    monkeypatch.setenv("KBF_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="KBF_OFFLINE is set"):
        load_dataset("imdb", data_dir=tmp_path / "none", cache_dir=tmp_path / "cache")


def test_extract_refuses_paths_outside_the_target(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DownloadError, match="unsafe path"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- tf.data pipeline


def _rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    # Row i starts with the word "r{i}", so its first token id identifies it.
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, size=n)
    texts = [" ".join([f"r{i}"] + ["w"] * (int(k) - 1)) for i, k in enumerate(lengths)]
    return texts, (np.arange(n) % 3 == 0).astype(np.int32)


def _collect(ds):
    return [
        tuple(x.numpy() if not isinstance(x, dict) else {k: v.numpy() for k, v in x.items()}
              for x in batch)
        for batch in ds
    ]  # fmt: skip


def test_encode_texts_keeps_rows_ragged_and_exact():
    from keras_bert_ft.data import encode_texts

    tok = FakeTokenizer()
    texts = ["a b c", "d", "e f g h i j k l m n o"]
    enc = encode_texts(tok, texts, ["x", "y z", "q"], max_length=8, chunk_size=2)
    assert enc.lengths.tolist() == [7, 6, 8]  # the last one truncated to max_length
    ids, types = enc.row(1)
    v = tok.vocab
    assert ids.tolist() == [1, v["d"], 2, v["y"], v["z"], 2]
    assert types.tolist() == [0, 0, 0, 1, 1, 1]


def test_pipeline_in_order_pads_each_batch_to_a_multiple_of_8():
    from keras_bert_ft.data import make_dataset

    tok = FakeTokenizer()
    texts, labels = _rows(50)
    ds = make_dataset(texts, labels, tok, batch_size=16, max_length=44, pad_to_multiple_of=8)
    batches = _collect(ds)
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    first_ids = np.concatenate([b[0]["input_word_ids"][:, 1] for b in batches])
    assert first_ids.tolist() == [tok.vocab[f"r{i}"] for i in range(50)]  # order kept
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    true_len = [min(len(t.split()) + 2, 44) for t in texts]
    for b, start in zip(batches, range(0, 50, 16), strict=True):
        f = b[0]
        width = f["input_word_ids"].shape[1]
        longest = max(true_len[start : start + 16])
        assert width == min(math.ceil(longest / 8) * 8, 44)
        assert f["input_mask"].sum(axis=1).tolist() == true_len[start : start + 16]
        assert all(f[k].dtype == np.int32 for k in f)
        assert set(f) == {"input_word_ids", "input_mask", "input_type_ids"}


def test_pipelines_run_without_tf_data_autotuning():
    # An autotuned iterator takes seconds to delete (its tuning thread), which
    # `fit` would pay after every epoch and evaluation: the pipelines fix their own.
    from keras_bert_ft.data import make_dataset

    ds = make_dataset(*_rows(20), FakeTokenizer(), batch_size=8, shuffle=True, seed=0)
    assert ds.options().autotune.enabled is False
    assert len(_collect(ds)) == 3


def test_pipeline_bucketing_shuffles_and_saves_padding():
    from keras_bert_ft.data import encode_texts, make_tf_dataset

    tok = FakeTokenizer()
    texts, labels = _rows(400, seed=1)
    enc = encode_texts(tok, texts, max_length=64)

    def epoch_rows_and_padding(ds):
        order, padded, sizes = [], 0, []
        for features, _ in ds:
            ids = features["input_word_ids"].numpy()
            assert ids.shape[1] % 8 == 0 or ids.shape[1] == 64
            order += ids[:, 1].tolist()
            padded += ids.size
            sizes.append(len(ids))
        # Full batches but one, and exactly the number Keras is told.
        assert sorted(sizes) == [16] + [32] * 12 and int(ds.cardinality()) == 13
        return order, padded

    plain = make_tf_dataset(enc, labels, batch_size=32, shuffle=True, seed=3, bucket=False)
    bucketed = make_tf_dataset(enc, labels, batch_size=32, shuffle=True, seed=3)
    plain_order, plain_tokens = epoch_rows_and_padding(plain)
    order1, tokens1 = epoch_rows_and_padding(bucketed)
    order2, _ = epoch_rows_and_padding(bucketed)
    all_rows = sorted(tok.vocab[f"r{i}"] for i in range(400))
    assert sorted(order1) == sorted(order2) == sorted(plain_order) == all_rows
    assert order1 != order2  # reshuffled every epoch
    assert tokens1 < 0.8 * plain_tokens  # bucketing pads far less
    again, _ = epoch_rows_and_padding(
        make_tf_dataset(enc, labels, batch_size=32, shuffle=True, seed=3)
    )
    assert again == order1  # same seed, same first epoch


def test_pipeline_class_weights_and_fixed_length():
    from keras_bert_ft.data import compute_class_weight, make_tf_dataset
    from keras_bert_ft.data.pipeline import encode_texts

    labels = np.array([0] * 30 + [1] * 10, dtype=np.int32)
    weights = compute_class_weight(labels)
    assert weights == pytest.approx({0: 40 / 60, 1: 40 / 20})
    enc = encode_texts(FakeTokenizer(), [f"t{i} x" for i in range(40)], max_length=16)
    ds = make_tf_dataset(enc, labels, batch_size=8, class_weight="balanced", fixed_length=True)
    seen = []
    for features, y, w in ds:
        assert features["input_word_ids"].shape[1] == 16
        seen += list(zip(y.numpy().tolist(), w.numpy().tolist(), strict=True))
    assert sum(w for _, w in seen) == pytest.approx(40.0)  # balanced weights sum to n
    assert {y: w for y, w in seen} == pytest.approx({0: 2 / 3, 1: 2.0})
    custom = make_tf_dataset(enc, labels, batch_size=40, class_weight={0: 1.0, 1: 5.0})
    ((_, _, w),) = list(custom)
    assert sorted(set(w.numpy().tolist())) == [1.0, 5.0]
    unlabelled = next(iter(make_tf_dataset(enc, None, batch_size=4)))
    assert isinstance(unlabelled, dict)


def test_pipeline_with_the_real_tokenizer_feeds_model_fit(data_dir, vocab_file):
    import keras

    from keras_bert_ft.data import dataset_from

    tok = real_tokenizer(str(vocab_file))
    snli = load_dataset("snli", "validation", data_dir=data_dir, download=False)
    part = snli.subset(np.arange(256))
    ds = dataset_from(part, tok, batch_size=32, max_length=64, shuffle=True, seed=0)
    features, y = next(iter(ds))
    assert features["input_word_ids"].shape[1] % 8 == 0
    # In order (no shuffle), the batches hold exactly the tokenizer's own encoding.
    in_order = dataset_from(part, tok, batch_size=16, max_length=64, pad_to_multiple_of=None)
    first, _ = next(iter(in_order))
    direct = tok.encode_batch(part.texts[:16], pairs=part.pairs[:16], max_length=64)
    for key, value in direct.items():
        np.testing.assert_array_equal(first[key].numpy(), value)
    assert features["input_type_ids"].numpy().max() == 1  # second segment present
    assert features["input_word_ids"].numpy()[:, 0].tolist() == [101] * len(y)  # [CLS]
    # The batches are exactly what model.fit expects.
    ids = keras.Input(shape=(None,), dtype="int32", name="input_word_ids")
    mask = keras.Input(shape=(None,), dtype="int32", name="input_mask")
    types = keras.Input(shape=(None,), dtype="int32", name="input_type_ids")
    h = keras.layers.Embedding(tok.vocab_size, 8)(ids) + keras.layers.Embedding(2, 8)(types)
    m = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(h * m, axis=1) / keras.ops.sum(m, axis=1)
    out = keras.layers.Dense(3, activation="softmax")(pooled)
    model = keras.Model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}, out)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=2, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
