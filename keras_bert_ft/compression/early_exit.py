"""Early exit: a classifier after every transformer layer, trained jointly.

At inference an example stops at the first layer whose exit is confident
enough (max class probability >= threshold); only the examples still running
go through the next layer. A batch therefore shrinks as it climbs, and each
example's answer is exactly what its exit layer says (attention is masked
per example, so removing rows from a batch does not change the others).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_bert_ft.layers.encoder import INPUT_NAMES
from keras_bert_ft.models import MaskedMeanPooling, with_encoder_deserialized


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class StackExits(keras.layers.Layer):
    """Stacks the per-layer class probabilities into (batch, layers, classes)."""

    def call(self, exits):
        return ops.stack(exits, axis=1)

    def compute_output_shape(self, shapes):
        return (shapes[0][0], len(shapes), shapes[0][-1])


@keras.saving.register_keras_serializable(package="keras_bert_ft")
def multi_exit_loss(y_true, y_pred):
    """Mean over exits of the sparse cross-entropy; `y_pred` is (batch, layers, classes)."""
    labels = ops.cast(ops.reshape(y_true, (-1, 1)), "int32")
    labels = ops.broadcast_to(labels, ops.shape(y_pred)[:2])
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, y_pred), axis=-1)


@keras.saving.register_keras_serializable(package="keras_bert_ft")
def last_exit_accuracy(y_true, y_pred):
    """Accuracy of the top (full-depth) exit."""
    predicted = ops.argmax(y_pred[:, -1, :], axis=-1)
    return ops.cast(ops.equal(ops.cast(ops.reshape(y_true, (-1,)), "int64"),
                              ops.cast(predicted, "int64")), "float32")  # fmt: skip


@dataclass
class EarlyExitResult:
    probs: np.ndarray  # (n, classes): the answer of each example's exit
    exit_layer: np.ndarray  # (n,): 1-based layer each example stopped at
    seconds: float

    @property
    def mean_layers(self) -> float:
        return float(self.exit_layer.mean())


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class EarlyExitClassifier(keras.Model):
    """A `BertEncoder` with a softmax exit (masked mean pooling + dense) after every layer.

    `model(features)` returns all exits, (batch, layers, classes): train it
    with `compile(loss=multi_exit_loss)` (the default via `default_loss`).
    `predict_early_exit(features, threshold)` runs the adaptive inference.
    """

    def __init__(self, encoder: keras.Model, num_classes: int, *, dropout: float = 0.1,
                 label_names: Sequence[str] | None = None, tokenizer_config: dict | None = None,
                 max_length: int = 128, truncation: str = "longest_first",
                 name: str = "early_exit_classifier", **kwargs):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        inputs = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES}
        outputs = encoder(inputs)
        pool = MaskedMeanPooling(name="exit_pooling")
        drop = keras.layers.Dropout(dropout, name="exit_dropout")
        heads = [keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                    name=f"exit_{i}")
                 for i in range(len(outputs["encoder_outputs"]))]  # fmt: skip
        exits = [head(drop(pool(h, inputs["input_mask"])))
                 for head, h in zip(heads, outputs["encoder_outputs"], strict=True)]  # fmt: skip
        super().__init__(inputs=inputs, outputs=StackExits(name="exits")(exits), name=name,
                         **kwargs)  # fmt: skip
        self.encoder = encoder
        if hasattr(encoder, "pooler"):
            encoder.pooler.trainable = False  # mean pooling: the pooler gets no gradient
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        self.label_names = None if label_names is None else tuple(label_names)
        self.tokenizer_config = dict(tokenizer_config or {})
        self.max_length = int(max_length)
        self.truncation = truncation
        self.pool = pool
        self.heads = heads
        self._steps = None

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    def default_loss(self):
        return multi_exit_loss

    def default_metrics(self) -> list:
        return [keras.metrics.MeanMetricWrapper(last_exit_accuracy, name="accuracy")]

    # ------------------------------------------------------------------ inference
    def _compiled_steps(self):
        # One traced function for the embeddings and one per layer (block + its exit).
        if self._steps is None:
            enc = self.encoder

            def embed(word_ids, type_ids):
                return enc.embeddings(word_ids, type_ids, training=False)

            def layer(i):
                def step(x, mask):
                    x = enc.blocks[i](x, mask, training=False)
                    return x, self.heads[i](self.pool(x, mask))
                return tf.function(step, reduce_retracing=True)

            self._steps = (tf.function(embed, reduce_retracing=True),
                           [layer(i) for i in range(self.num_exits)])  # fmt: skip
        return self._steps

    def predict_early_exit(self, features: dict, threshold: float,
                           batch_size: int = 32) -> EarlyExitResult:
        """Class probabilities with early exit at `threshold` (max probability).

        A threshold above 1 never exits early: the result is the top exit's.
        """
        embed, layers = self._compiled_steps()
        ids = np.asarray(features["input_word_ids"], np.int32)
        mask_all = np.asarray(features["input_mask"], np.int32)
        types = np.asarray(features["input_type_ids"], np.int32)
        n = len(ids)
        probs = np.zeros((n, self.num_classes), np.float32)
        exit_layer = np.zeros(n, np.int32)
        start = time.perf_counter()
        for lo in range(0, n, batch_size):
            rows = np.arange(lo, min(lo + batch_size, n))
            width = max(int(mask_all[rows].sum(axis=1).max()), 1)
            x = embed(ids[rows, :width], types[rows, :width])
            mask = tf.constant(mask_all[rows, :width])
            for i, step in enumerate(layers):
                x, p = step(x, mask)
                p = p.numpy()
                done = (p.max(axis=-1) >= threshold) | (i == len(layers) - 1)
                probs[rows[done]] = p[done]
                exit_layer[rows[done]] = i + 1
                if done.all():
                    break
                if done.any():
                    # Carry on with the unfinished rows only, trimmed to their own width.
                    keep = np.flatnonzero(~done)
                    rows = rows[keep]
                    width = max(int(mask_all[rows].sum(axis=1).max()), 1)
                    x = tf.gather(x, keep)[:, :width]
                    mask = tf.constant(mask_all[rows, :width])
        return EarlyExitResult(probs, exit_layer, time.perf_counter() - start)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "label_names": None if self.label_names is None else list(self.label_names),
            "tokenizer_config": self.tokenizer_config,
            "max_length": self.max_length,
            "truncation": self.truncation,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**with_encoder_deserialized(config, custom_objects))
