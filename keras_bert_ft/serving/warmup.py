"""Warm-up requests: the PredictionLog records TF Serving replays when it loads a model.

TF Serving reads `assets.extra/tf_serving_warmup_requests` (a TFRecord file) and
runs each request before the model takes traffic, so the first client call does
not pay for graph initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from keras_bert_ft.serving.signatures import PAIR_INPUT, TEXT_INPUT

WARMUP_FILE = "tf_serving_warmup_requests"
DEFAULT_WARMUP_TEXTS = ("a short example sentence.", "")


# tensorflow_serving.apis may not be installed, so the PredictionLog records are
# encoded by hand from the field numbers of tensorflow_serving/apis/
# prediction_log.proto (PredictionLog.predict_log = 6; PredictLog.request = 1),
# predict.proto (PredictRequest.model_spec = 1, inputs = 2) and model.proto
# (ModelSpec.name = 1, signature_name = 3). TensorProto comes from TensorFlow.

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log(model_name: str, signature: str, inputs: dict[str, Sequence[str]]) -> bytes:
    """A serialized `tensorflow.serving.PredictionLog` holding one PredictRequest."""
    spec = _field(1, model_name.encode()) + _field(3, signature.encode())
    request = _field(1, spec)
    for name, values in inputs.items():
        tensor = tf.make_tensor_proto([v.encode("utf-8") for v in values], dtype=tf.string)
        entry = _field(1, name.encode()) + _field(2, tensor.SerializeToString())
        request += _field(2, entry)
    return _field(6, _field(1, request))


def write_warmup_requests(path: str | os.PathLike, model_name: str, signature: str,
                          requests: Sequence[dict[str, Sequence[str]]]) -> Path:
    """Write `assets.extra/tf_serving_warmup_requests`: a TFRecord of PredictionLogs."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in requests:
            writer.write(prediction_log(model_name, signature, inputs))
    return Path(path)


def text_requests(texts: Sequence[str] | None, pairs: bool) -> list[dict[str, list[str]]]:
    """One request of the text signature: `texts` (default a short sentence and an empty
    text), and for a pair model the same texts reversed as the second texts."""
    texts = list(texts or DEFAULT_WARMUP_TEXTS)
    inputs = {TEXT_INPUT: texts}
    if pairs:
        inputs[PAIR_INPUT] = texts[::-1]
    return [inputs]
