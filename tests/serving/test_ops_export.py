"""`export_for_serving(..., tokenizer_ops="custom")`: the custom op in a serving export.

The export's graph tokenizes with `KbfWordPieceEncode`; a fresh process that
loads only TensorFlow and the op library serves the same probabilities as
the default tensorflow-text export.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_ft import WordPieceTokenizer
from keras_bert_ft.serving.export import export_for_serving
from keras_bert_ft.serving.op_check import saved_model_ops
from keras_bert_ft.tokenizers import op as ops

TEXTS = ["a great movie!", "Terrible, naïve plot 中文", "", "[SEP] odd [CLS] input"]


def tiny_classifier(vocab_size: int) -> keras.Model:
    """Mean of masked token embeddings, then softmax over 3 classes."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="input_word_ids")
    mask = keras.Input((None,), dtype="int32", name="input_mask")
    types = keras.Input((None,), dtype="int32", name="input_type_ids")
    x = keras.layers.Embedding(vocab_size, 8)(ids) + keras.layers.Embedding(2, 8)(types)
    weights = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(x * weights, axis=1) / (keras.ops.sum(weights, axis=1) + 1e-6)
    out = keras.layers.Dense(3, activation="softmax")(pooled)
    return keras.Model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}, out)


def serve_in_fresh_process(path: Path, texts, pairs=None) -> list:
    inputs = {"text": texts} if pairs is None else {"text": texts, "text_pair": pairs}
    code = f"""
import json, sys
import tensorflow as tf
tf.load_op_library({str(ops.OP_LIBRARY_PATH)!r})
serve = tf.saved_model.load({str(path)!r}).signatures["serving_default"]
out = serve(**{{k: tf.constant(v) for k, v in {inputs!r}.items()}})
assert not [m for m in sys.modules if m.startswith(("keras_bert_ft", "tensorflow_text"))]
print(json.dumps(out["probabilities"].numpy().tolist()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=path.parent, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pairs"])
def test_custom_op_export_serves_like_the_model(vocab_file, tmp_path, pairs):
    tokenizer = WordPieceTokenizer(vocab_file)
    model = tiny_classifier(tokenizer.vocab_size)
    path = export_for_serving(model, tokenizer, tmp_path / "custom", pairs=pairs,
                              label_names=["a", "b", "c"], max_length=16,
                              tokenizer_ops="custom")
    graph_ops = saved_model_ops(path)
    assert "KbfWordPieceEncode" in graph_ops
    assert not {op for op in graph_ops if "Wordpiece" in op}  # no tensorflow-text left
    assert sorted(p.name for p in (path / "assets").iterdir()) == ["labels.txt", "vocab.txt"]

    second = TEXTS[::-1] if pairs else None
    got = serve_in_fresh_process(path, TEXTS, second)
    features = tokenizer.encode_batch(TEXTS, second, max_length=16)
    want = model.predict(features, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predict_command_loads_custom_op_exports(vocab_file, tmp_path):
    """`ExportedClassifier` (behind `keras-bert-ft predict`) loads the op library itself."""
    tokenizer = WordPieceTokenizer(vocab_file)
    model = tiny_classifier(tokenizer.vocab_size)
    path = export_for_serving(model, tokenizer, tmp_path / "custom", label_names=["a", "b", "c"],
                              max_length=16, tokenizer_ops="custom")  # fmt: skip
    code = f"""
import json
from keras_bert_ft.serving.predict import ExportedClassifier
out = ExportedClassifier({str(path)!r}).predict({TEXTS!r})
print(json.dumps([out["probabilities"].tolist(), out["label"].tolist()]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities, labels = json.loads(result.stdout.strip().splitlines()[-1])
    want = model.predict(tokenizer.encode_batch(TEXTS, max_length=16), verbose=0)
    np.testing.assert_allclose(probabilities, want, rtol=1e-5, atol=1e-6)
    assert labels == [["a", "b", "c"][i] for i in want.argmax(-1)]


def test_unknown_tokenizer_ops(vocab_file, tmp_path):
    tokenizer = WordPieceTokenizer(vocab_file)
    with pytest.raises(ValueError, match="tokenizer_ops must be one of"):
        export_for_serving(tiny_classifier(tokenizer.vocab_size), tokenizer, tmp_path / "x",
                           tokenizer_ops="fast")
    assert not (tmp_path / "x" / "1").exists()


def test_default_export_stays_tensorflow_text(vocab_file, tmp_path):
    tokenizer = WordPieceTokenizer(vocab_file)
    path = export_for_serving(tiny_classifier(tokenizer.vocab_size), tokenizer, tmp_path / "m")
    assert "KbfWordPieceEncode" not in saved_model_ops(path)
    assert tf.saved_model.contains_saved_model(str(path))
