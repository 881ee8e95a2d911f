"""The op in use: SavedModels reloaded elsewhere, the Keras layer, tf.data pipelines, loading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from corpora import mrpc_pairs, sst2_sentences

from keras_bert_ft import WordPieceTokenizer
from keras_bert_ft.data import graph_pipeline
from keras_bert_ft.layers.wordpiece_encode import WordPieceEncode
from keras_bert_ft.tokenizers import op as ops

TEXTS = ["Hello world!", "Héllo, naïve café 中文 👍🏽", "", "[CLS] special [SEP] tokens",
         "a much longer sentence that certainly needs truncation at sixteen tokens, yes"]


@pytest.fixture()
def private_vocab(vocab_file, tmp_path) -> Path:
    """A copy of vocab.txt that a test may delete to prove a saved model carries its own."""
    path = tmp_path / "private" / "vocab.txt"
    path.parent.mkdir()
    shutil.copyfile(vocab_file, path)
    return path


def run_fresh(code: str, cwd: Path) -> dict:
    """Run `code` in a fresh interpreter (outside the repo) and parse its last line as JSON."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def as_lists(outputs) -> dict:
    return {name: np.asarray(outputs[name]).tolist() for name in ops.FEATURES}


# -- SavedModel ------------------------------------------------------------------
def test_saved_model_reloads_with_only_the_op_library(private_vocab, tmp_path, data_dir):
    tokenizer = WordPieceTokenizer(private_vocab)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.single = ops.CustomOpTokenizer(tokenizer, max_length=16)
            self.pair = ops.CustomOpTokenizer(tokenizer, max_length=24, truncation="ratio",
                                              padding="max_length")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def encode(self, texts):
            return self.single(texts)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
        def encode_pairs(self, texts, pairs):
            return self.pair(texts, pairs)

    export_dir = tmp_path / "saved"
    serving = Serving()
    tf.saved_model.save(serving, str(export_dir), signatures={"serving_default": serving.encode})
    assert (export_dir / "assets" / "vocab.txt").exists()
    private_vocab.unlink()  # the SavedModel must use its own copy

    premises, hypotheses = mrpc_pairs(data_dir, "test")
    premises, hypotheses = premises[:200], hypotheses[:200]
    code = f"""
import json, sys
import tensorflow as tf
tf.load_op_library({str(ops.OP_LIBRARY_PATH)!r})
model = tf.saved_model.load({str(export_dir)!r})
single = model.encode(tf.constant({TEXTS!r}))
pair = model.encode_pairs(tf.constant({premises!r}), tf.constant({hypotheses!r}))
assert not [m for m in sys.modules if m.startswith("keras_bert_ft")]
print(json.dumps({{"single": {{k: v.numpy().tolist() for k, v in single.items()}},
                  "pair": {{k: v.numpy().tolist() for k, v in pair.items()}}}}))
"""
    got = run_fresh(code, tmp_path)
    reference = WordPieceTokenizer(export_dir / "assets" / "vocab.txt")
    assert got["single"] == as_lists(reference.encode_batch(TEXTS, max_length=16))
    assert got["pair"] == as_lists(reference.encode_batch(
        premises, hypotheses, max_length=24, truncation="ratio", padding="max_length"))


def test_saved_model_without_the_op_library_fails_clearly(vocab_file, tmp_path):
    copy = tmp_path / "words.txt"
    shutil.copyfile(vocab_file, copy)
    module = ops.CustomOpTokenizer(WordPieceTokenizer(vocab_file), vocab_file=copy)
    module.encode = tf.function(module.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    assert [p.name for p in (tmp_path / "saved" / "assets").iterdir()] == ["words.txt"]
    code = f"""
import tensorflow as tf
try:
    tf.saved_model.load({str(tmp_path / "saved")!r})
except Exception as err:
    print('{{"error": ' + __import__("json").dumps(str(err)[:2000]) + '}}')
"""
    assert "KbfWordPieceEncode" in run_fresh(code, tmp_path)["error"]


# -- Keras layer -----------------------------------------------------------------
def test_keras_layer_saves_and_reloads_with_its_vocab(private_vocab, tmp_path):
    layer = WordPieceEncode(private_vocab, max_length=16, padding="max_length")
    texts_in = keras.Input(shape=(), dtype="string", name="text")
    pairs_in = keras.Input(shape=(), dtype="string", name="pair")
    model = keras.Model([texts_in, pairs_in], layer([texts_in, pairs_in]))
    assert model.output["input_word_ids"].shape == (None, 16)
    pairs = TEXTS[::-1]
    before = model([tf.constant(TEXTS), tf.constant(pairs)])
    want = WordPieceTokenizer(private_vocab).encode_batch(
        TEXTS, pairs, max_length=16, padding="max_length")
    assert as_lists(before) == as_lists(want)

    path = tmp_path / "model.keras"
    model.save(path)
    private_vocab.unlink()
    restored = keras.models.load_model(path)
    assert as_lists(restored([tf.constant(TEXTS), tf.constant(pairs)])) == as_lists(want)
    predicted = restored.predict([np.array(TEXTS, dtype=object), np.array(pairs, dtype=object)],
                                 verbose=0)
    assert as_lists(predicted) == as_lists(want)


def test_keras_layer_config_round_trip(vocab_file):
    layer = WordPieceEncode(vocab_file, lowercase=False, max_length=32, truncation="only_second",
                            pad_to_multiple_of=8, name="encode")
    config = layer.get_config()
    clone = WordPieceEncode.from_config(config)
    assert clone.get_config() == config
    assert config["strip_accents"] is False and config["truncation"] == "only_second"
    got = clone(tf.constant([["Hello World"], ["x"]]))  # [batch, 1] input
    want = WordPieceTokenizer(vocab_file, lowercase=False).encode_batch(
        ["Hello World", "x"], max_length=32, pad_to_multiple_of=8)
    assert as_lists(got) == as_lists(want)


def test_keras_layer_in_a_tf_saved_model(private_vocab, tmp_path):
    texts_in = keras.Input(shape=(), dtype="string")
    model = keras.Model(texts_in, WordPieceEncode(private_vocab, max_length=16)(texts_in))

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, texts):
            return self.model(texts)

    tf.saved_model.save(Serving(), str(tmp_path / "saved"))
    private_vocab.unlink()
    code = f"""
import json, tensorflow as tf
tf.load_op_library({str(ops.OP_LIBRARY_PATH)!r})
out = tf.saved_model.load({str(tmp_path / "saved")!r}).serve(tf.constant({TEXTS!r}))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
"""
    want = WordPieceTokenizer(tmp_path / "saved" / "assets" / "vocab.txt").encode_batch(
        TEXTS, max_length=16)
    assert run_fresh(code, tmp_path) == as_lists(want)


# -- tf.data ---------------------------------------------------------------------
def test_text_file_pipeline_equals_encode_batch(vocab_file, data_dir):
    tokenizer = WordPieceTokenizer(vocab_file)
    path = data_dir / "sst2" / "dev.tsv"
    ds = graph_pipeline.from_text_files(
        path, tokenizer, delimiter="\t", text_column=0, label_column=1, skip_header_lines=1,
        batch_size=100, max_length=64, deterministic=True)
    sentences = sst2_sentences(data_dir, "dev")
    labels = [int(line.split("\t")[1]) for line in path.read_text().splitlines()[1:] if line]
    rows = 0
    for features, label in ds:
        want = tokenizer.encode_batch(sentences[rows:rows + 100], max_length=64)
        assert as_lists(features) == as_lists(want)
        assert label.numpy().tolist() == labels[rows:rows + 100]
        rows += len(label)
    assert rows == len(sentences)
    assert ds.options().autotune.enabled is False  # fixed parallelism (see graph_pipeline)


def test_plain_lines_pipeline(vocab_file, tmp_path):
    tokenizer = WordPieceTokenizer(vocab_file)
    lines = [t for t in TEXTS if t]
    (tmp_path / "a.txt").write_text("\n".join(lines) + "\n")
    features = next(iter(graph_pipeline.from_text_files(tmp_path / "a.txt", tokenizer,
                                                        batch_size=10)))
    assert as_lists(features) == as_lists(tokenizer.encode_batch(lines))


def test_tfrecord_pipeline_with_pairs(vocab_file, data_dir, tmp_path):
    tokenizer = WordPieceTokenizer(vocab_file)
    premises, hypotheses = mrpc_pairs(data_dir, "test")
    path = tmp_path / "mrpc.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, (a, b) in enumerate(zip(premises, hypotheses, strict=True)):
            feature = {"a": tf.train.Feature(bytes_list=tf.train.BytesList(value=[a.encode()])),
                       "b": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b.encode()])),
                       "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    ds = graph_pipeline.from_tfrecords(
        path, tokenizer, text_feature="a", pair_feature="b", label_feature="y", batch_size=64,
        max_length=48, truncation="longest_first", deterministic=True)
    rows = 0
    for features, label in ds:
        want = tokenizer.encode_batch(premises[rows:rows + 64], hypotheses[rows:rows + 64],
                                      max_length=48)
        assert as_lists(features) == as_lists(want)
        assert label.numpy().tolist() == [i % 2 for i in range(rows, rows + len(label))]
        rows += len(label)
    assert rows == len(premises)
    assert ds.options().autotune.enabled is False


def test_autotune_stays_on_when_asked_for(vocab_file):
    tokenizer = WordPieceTokenizer(vocab_file)
    texts = tf.data.Dataset.from_tensor_slices(["a b", "c"])
    tuned = graph_pipeline.tokenize_dataset(texts, tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    assert tuned.options().autotune.enabled is not False
    assert graph_pipeline.tokenize_dataset(texts, tokenizer).options().autotune.enabled is False


def test_tokenize_dataset_of_dicts_and_list_vocab(tmp_path, monkeypatch):
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "cache"))
    tokenizer = WordPieceTokenizer(vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"])
    ds = tf.data.Dataset.from_tensor_slices({"text": ["hello world", "world"],
                                             "pair": ["hello", "x"], "label": [1, 0]})
    features, label = next(iter(graph_pipeline.tokenize_dataset(ds, tokenizer, batch_size=2)))
    assert as_lists(features) == as_lists(tokenizer.encode_batch(["hello world", "world"],
                                                                 ["hello", "x"]))
    assert label.numpy().tolist() == [1, 0]
    assert len(list((tmp_path / "cache" / "vocab").glob("*.txt"))) == 1


# -- loading ---------------------------------------------------------------------
def test_version_mismatch_names_both_versions(monkeypatch, tmp_path):
    info = tmp_path / "build.json"
    info.write_text(json.dumps({"tensorflow": "2.99.0"}))
    monkeypatch.setattr(ops, "BUILD_INFO_PATH", info)
    message = rf"built for TensorFlow 2\.99\.0.*{tf.__version__}"
    with pytest.raises(ops.OpLibraryError, match=message):
        ops.load_op_library()


def test_missing_library_says_how_to_build(tmp_path):
    with pytest.raises(ops.OpLibraryError, match="was not built"):
        ops.load_op_library(tmp_path / "_wordpiece_op.so")


def test_build_records_the_running_tensorflow():
    assert ops.built_with_tensorflow() == tf.__version__
