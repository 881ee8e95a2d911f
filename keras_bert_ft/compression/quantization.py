"""Post-training int8 quantization of a fine-tuned classifier, behind an accuracy gate.

Two routes:
- TFLite (`convert_to_tflite`): "float32" (no quantization, the baseline),
  "dynamic" (int8 weights, activations quantized on the fly) and "full_int8"
  (weights and activations int8, ranges calibrated on a representative data
  set drawn from the training data). The model is exported with a fixed input
  shape (batch 1, `seq_length` tokens), which is how an on-device model runs.
- Keras (`keras_int8`): `model.quantize("int8")` on a copy, for Keras/TF
  Serving deployments.

`export_quantized` measures the accuracy of the float model and of the
quantized one on held-out data and refuses (raises `AccuracyGateError`,
writes nothing) when the drop exceeds `max_accuracy_drop`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from keras_bert_ft.infra import atomic_write
from keras_bert_ft.layers.encoder import INPUT_NAMES
from keras_bert_ft.layers.padding import padded_layout_only

TFLITE_MODES = ("float32", "dynamic", "full_int8")


class AccuracyGateError(RuntimeError):
    """The quantized model lost more accuracy than allowed; nothing was written."""


def pad_features(features: dict, seq_length: int) -> dict:
    """Cut or right-pad each id array to `seq_length` columns."""
    out = {}
    for name in INPUT_NAMES:
        a = np.asarray(features[name], np.int32)[:, :seq_length]
        out[name] = np.pad(a, ((0, 0), (0, seq_length - a.shape[1])))
    return out


def convert_to_tflite(model: keras.Model, mode: str = "dynamic", *, seq_length: int = 64,
                      representative: Iterable[dict] | None = None) -> bytes:
    """A TFLite flatbuffer of `model` (inputs: the three id tensors, shape (1, seq_length)).

    `representative` (needed by "full_int8") yields feature dicts of shape
    (1, seq_length), e.g. from `representative_features`.
    """
    if mode not in TFLITE_MODES:
        raise ValueError(f"mode must be one of {TFLITE_MODES}, got {mode!r}")
    if mode == "full_int8" and representative is None:
        raise ValueError("full_int8 needs a representative data set")
    spec = {n: tf.TensorSpec((1, seq_length), tf.int32, name=n) for n in INPUT_NAMES}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        return {"scores": model(inputs, training=False)}

    # Fold the weights into constants first: left as resource variables they
    # stay READ_VARIABLE ops with no values in the flatbuffer.
    with padded_layout_only():
        frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full_int8":
        rows = list(representative)

        # Without a signature def, calibration feeds a list in the graph's input order.
        order = [t.name.split(":")[0] for t in frozen.inputs]

        def dataset():
            for row in rows:
                yield [np.asarray(row[n], np.int32) for n in order]

        converter.representative_dataset = dataset
        # Int8 kernels wherever TFLite has them; the few ops without one
        # (e.g. the int32 id lookups) stay as they are.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def representative_features(tokenizer, texts: list[str], *, seq_length: int = 64,
                            count: int = 200, seed: int = 0) -> list[dict]:
    """`count` random training texts as (1, seq_length) feature dicts for calibration."""
    rng = np.random.default_rng(seed)
    picked = [texts[i] for i in rng.choice(len(texts), min(count, len(texts)), replace=False)]
    enc = pad_features(tokenizer.encode_batch(picked, max_length=seq_length), seq_length)
    return [{n: enc[n][i:i + 1] for n in INPUT_NAMES} for i in range(len(picked))]


class TFLiteClassifier:
    """Runs a TFLite classifier one example at a time (its fixed batch of 1)."""

    def __init__(self, model_content: bytes, num_threads: int | None = None):
        self.model_content = model_content
        self.interpreter = tf.lite.Interpreter(model_content=model_content,
                                               num_threads=num_threads)  # fmt: skip
        self.interpreter.allocate_tensors()
        # The frozen graph keeps the input names (no signature def).
        self.inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.output = self.interpreter.get_output_details()[0]["index"]
        details = self.interpreter.get_input_details()[0]
        self.seq_length = int(details["shape"][1])

    def predict_one(self, features: dict) -> np.ndarray:
        """Probabilities for one example: id arrays of shape (1, seq_length)."""
        for name, index in self.inputs.items():
            self.interpreter.set_tensor(index, features[name])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)

    def predict(self, features: dict) -> np.ndarray:
        """Class probabilities for a dict of (n, seq) id arrays."""
        f = pad_features(features, self.seq_length)
        return np.concatenate([
            self.predict_one({k: v[i:i + 1] for k, v in f.items()})
            for i in range(len(f["input_word_ids"]))
        ])  # fmt: skip


def keras_int8(model: keras.Model) -> keras.Model:
    """A copy of `model` with its Dense/EinsumDense/Embedding weights quantized by Keras
    (`model.quantize("int8")`); the original is untouched."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    if hasattr(model, "tokenizer"):
        copy.tokenizer = model.tokenizer
    copy.quantize("int8")
    return copy


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == np.asarray(labels)))


@dataclass
class GateResult:
    float_accuracy: float
    quantized_accuracy: float
    max_accuracy_drop: float
    model_bytes: int

    @property
    def drop(self) -> float:
        return self.float_accuracy - self.quantized_accuracy


def check_accuracy(float_accuracy: float, quantized_accuracy: float, max_accuracy_drop: float,
                   what: str = "the quantized model") -> None:
    """Raise `AccuracyGateError` when accuracy fell by more than `max_accuracy_drop`."""
    drop = float_accuracy - quantized_accuracy
    if drop > max_accuracy_drop:
        raise AccuracyGateError(
            f"refusing to export {what}: accuracy {quantized_accuracy:.4f} vs "
            f"{float_accuracy:.4f} for the float model, a drop of {drop:.4f} > the allowed "
            f"{max_accuracy_drop:.4f}; nothing was written"
        )


def export_quantized(
    model: keras.Model,
    path: str | os.PathLike,
    features: dict,
    labels: np.ndarray,
    *,
    mode: str = "dynamic",
    max_accuracy_drop: float = 0.01,
    seq_length: int = 64,
    representative: Iterable[dict] | None = None,
    converter: Callable[..., bytes] = convert_to_tflite,
) -> GateResult:
    """Quantize `model` to TFLite and write it to `path` only if it passes the accuracy gate.

    `features`/`labels`: held-out data (dict of id arrays, class indices).
    Both models see the same `seq_length` columns. `converter` is
    `convert_to_tflite` or any function with its signature.
    """
    fixed = pad_features(features, seq_length)
    float_acc = accuracy(model.predict(fixed, batch_size=64, verbose=0), labels)
    content = converter(model, mode, seq_length=seq_length, representative=representative)
    quant_acc = accuracy(TFLiteClassifier(content).predict(fixed), labels)
    check_accuracy(float_acc, quant_acc, max_accuracy_drop, f"the {mode} TFLite model")
    atomic_write(path, content)
    return GateResult(float_acc, quant_acc, max_accuracy_drop, len(content))


def latency_ms(predict_one: Callable[[dict], object], features: dict, count: int = 200,
               warmup: int = 10) -> float:
    """Median milliseconds of `predict_one` on single examples (batch 1)."""
    n = len(features["input_word_ids"])
    rows = [{k: np.asarray(v)[i % n:i % n + 1] for k, v in features.items()}
            for i in range(count + warmup)]  # fmt: skip
    times = []
    for i, row in enumerate(rows):
        t = time.perf_counter()
        predict_one(row)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))
