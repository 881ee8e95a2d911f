"""int8: TFLite conversions, Keras int8, and the accuracy gate."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.compression.quantization import (
    AccuracyGateError,
    TFLiteClassifier,
    convert_to_tflite,
    export_quantized,
    keras_int8,
    pad_features,
    representative_features,
)
from keras_bert_ft.models import BertClassifier

SEQ = 16


@pytest.fixture(scope="module")
def trained():
    """A tiny classifier fitted on the toy sentiment texts (accuracy 1 on them)."""
    tok = tiny_tokenizer()
    keras.utils.set_random_seed(0)
    model = BertClassifier(tiny_encoder(seed=5), 2, pooling="mean", dropout=0.0, tokenizer=tok,
                           max_length=SEQ)  # fmt: skip
    texts, labels = texts_and_labels(8)
    x, y = model.encode(texts), np.asarray(labels)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=model.default_loss(),
                  metrics=model.default_metrics())  # fmt: skip
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] == 1.0
    return model, x, y, texts


def broken_converter(model, mode, **kwargs):
    """A deliberately broken quantizer: a scale 10x the largest weight rounds every
    kernel to zero."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    for w in copy.weights:
        if w.path.endswith("kernel"):
            v = w.numpy()
            scale = 10 * np.abs(v).max()
            w.assign(np.round(v / scale) * scale)
    return convert_to_tflite(copy, "float32", seq_length=kwargs["seq_length"])


def test_gate_refuses_a_broken_quantization_and_writes_nothing(trained, tmp_path):
    model, x, y, _ = trained
    target = tmp_path / "model.tflite"
    with pytest.raises(AccuracyGateError, match="refusing to export.*nothing was written"):
        export_quantized(model, target, x, y, max_accuracy_drop=0.05, seq_length=SEQ,
                         converter=broken_converter)  # fmt: skip
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_dynamic_range_passes_the_gate_and_is_smaller(trained, tmp_path):
    model, x, y, _ = trained
    target = tmp_path / "model.tflite"
    result = export_quantized(model, target, x, y, mode="dynamic", max_accuracy_drop=0.05,
                              seq_length=SEQ)  # fmt: skip
    assert target.read_bytes()[4:8] == b"TFL3"
    assert result.quantized_accuracy >= 0.95 and result.drop <= 0.05
    float_size = len(convert_to_tflite(model, "float32", seq_length=SEQ))
    assert result.model_bytes * 3 < float_size


def tflite_ops(content: bytes) -> tuple[list[str], list[str]]:
    """The main graph's op names, and the weights' dtype of each fully connected op."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=content)
    ops = interpreter._get_ops_details()
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    return ([op["op_name"] for op in ops],
            [dtypes[op["inputs"][1]] for op in ops if op["op_name"] == "FULLY_CONNECTED"])


def test_dynamic_range_quantizes_every_block_projection(trained):
    # The blocks' packed/padded `cond` must not reach TFLite: its quantizer leaves the
    # matmuls inside `If` branches in float32.
    model = trained[0]
    ops, weight_dtypes = tflite_ops(convert_to_tflite(model, "dynamic", seq_length=SEQ))
    assert "IF" not in ops
    # Per block: the fused q/k/v, the attention output, the intermediate and the output.
    assert weight_dtypes.count("int8") == 4 * len(model.encoder.blocks)


def test_float_and_full_int8_tflite_agree_with_keras(trained):
    model, x, _, texts = trained
    want = model.predict(pad_features(x, SEQ), verbose=0)
    got = TFLiteClassifier(convert_to_tflite(model, "float32", seq_length=SEQ)).predict(x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    rep = representative_features(model.tokenizer, texts, seq_length=SEQ, count=16)
    full = TFLiteClassifier(convert_to_tflite(model, "full_int8", seq_length=SEQ,
                                              representative=rep))  # fmt: skip
    assert (full.predict(x).argmax(-1) == want.argmax(-1)).mean() >= 0.9
    with pytest.raises(ValueError, match="representative"):
        convert_to_tflite(model, "full_int8", seq_length=SEQ)


def test_keras_int8_quantizes_a_copy(trained):
    model, x, _, _ = trained
    q = keras_int8(model)
    assert any("int8" in str(w.dtype) for w in q.weights)
    assert not any("int8" in str(w.dtype) for w in model.weights)
    np.testing.assert_allclose(q.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)
