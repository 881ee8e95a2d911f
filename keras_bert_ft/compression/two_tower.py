"""A two-tower (bi-encoder) classifier for sentence pairs, and its vector cache.

Each text of a pair goes through the same encoder separately (mean pooled);
the two sentence vectors u, v are combined as `[u, v, |u - v|, u * v]` and an
MLP scores the pair. Unlike a cross-encoder (`BertClassifier` on packed
pairs), a text's vector does not depend on its partner, so vectors can be
computed once and cached: scoring a query against N cached candidates costs
one encoder pass plus N cheap MLP evaluations.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_bert_ft.data.pipeline import MAP_PARALLELISM, PREFETCH_BATCHES, without_autotune
from keras_bert_ft.infra import atomic_path
from keras_bert_ft.layers.encoder import INPUT_NAMES
from keras_bert_ft.models import MaskedMeanPooling, with_encoder_deserialized

SIDES = ("left", "right")


def side_inputs(side: str) -> dict:
    """The Keras inputs of one side of a pair: `left_input_word_ids`, ..."""
    return {f"{side}_{n}": keras.Input(shape=(None,), dtype="int32", name=f"{side}_{n}")
            for n in INPUT_NAMES}


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class PairFeatures(keras.layers.Layer):
    """`[u, v, |u - v|, u * v]` (Reimers & Gurevych, 2019)."""

    def call(self, u, v):
        return ops.concatenate([u, v, ops.abs(u - v), u * v], axis=-1)

    def compute_output_shape(self, u_shape, v_shape):
        return (u_shape[0], 4 * u_shape[-1])


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class TwoTowerClassifier(keras.Model):
    """Bi-encoder pair classifier over a shared encoder.

    Inputs: the three id tensors of each side, prefixed `left_` and `right_`.
    Output: class probabilities. `tower` maps one side's ids to its vector
    and `head` maps `(u, v)` vectors to probabilities; `score_vectors` uses the
    head alone, which is what makes cached vectors useful.
    """

    def __init__(self, encoder: keras.Model, num_classes: int, *,
                 hidden_units: Sequence[int] = (256,), dropout: float = 0.1,
                 label_names: Sequence[str] | None = None, max_length: int = 64,
                 name: str = "two_tower_classifier", **kwargs):
        single = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES}
        vector = MaskedMeanPooling(name="tower_pooling")(
            encoder(single)["sequence_output"], single["input_mask"]
        )
        tower = keras.Model(single, vector, name="tower")

        width = vector.shape[-1]
        u_in = keras.Input(shape=(width,), name="u")
        v_in = keras.Input(shape=(width,), name="v")
        x = PairFeatures(name="pair_features")(u_in, v_in)
        for i, units in enumerate(hidden_units):
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
            x = keras.layers.Dense(units, activation="relu", name=f"head_hidden_{i}")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                   name="scores")(x)  # fmt: skip
        head = keras.Model([u_in, v_in], probs, name="pair_head")

        left, right = side_inputs("left"), side_inputs("right")
        u = tower({n: left[f"left_{n}"] for n in INPUT_NAMES})
        v = tower({n: right[f"right_{n}"] for n in INPUT_NAMES})
        super().__init__(inputs={**left, **right}, outputs=head([u, v]), name=name, **kwargs)
        self.encoder = encoder
        if hasattr(encoder, "pooler"):
            encoder.pooler.trainable = False  # mean pooling: the pooler gets no gradient
        self.tower = tower
        self.head = head
        self.num_classes = int(num_classes)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.dropout = float(dropout)
        self.label_names = None if label_names is None else tuple(label_names)
        self.max_length = int(max_length)
        self._encode_fn = None
        self._score_fn = None

    def encode_features(self, features: dict, batch_size: int = 64) -> np.ndarray:
        """Sentence vectors for already tokenized texts (dict of id arrays)."""
        if self._encode_fn is None:
            self._encode_fn = tf.function(lambda f: self.tower(f, training=False),
                                          reduce_retracing=True)  # fmt: skip
        n = len(features["input_word_ids"])
        out = []
        for lo in range(0, n, batch_size):
            chunk = {k: np.asarray(v[lo:lo + batch_size]) for k, v in features.items()}
            width = max(int(chunk["input_mask"].sum(axis=1).max()), 1)
            out.append(self._encode_fn({k: v[:, :width] for k, v in chunk.items()}).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.tower.output.shape[-1]),
                                                        np.float32)  # fmt: skip

    def score_vectors(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Pair probabilities from sentence vectors; `u` broadcasts over the rows of `v`."""
        if self._score_fn is None:
            self._score_fn = tf.function(lambda a, b: self.head([a, b], training=False),
                                         reduce_retracing=True)  # fmt: skip
        u = np.broadcast_to(np.asarray(u, np.float32), np.shape(v))
        return self._score_fn(u, np.asarray(v, np.float32)).numpy()

    def fingerprint(self) -> str:
        """A hash of the tower's weights and input settings: the cache key of its vectors."""
        h = hashlib.sha256(f"max_length={self.max_length}".encode())
        for w in self.tower.weights:
            h.update(w.path.encode())
            h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
        return h.hexdigest()[:32]

    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "hidden_units": list(self.hidden_units),
            "dropout": self.dropout,
            "label_names": None if self.label_names is None else list(self.label_names),
            "max_length": self.max_length,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**with_encoder_deserialized(config, custom_objects))


def pair_features(tokenizer, texts: Sequence[str], pairs: Sequence[str],
                  max_length: int = 64) -> dict:
    """The two-tower inputs for pairs: each side tokenized on its own."""
    out = {}
    for side, side_texts in zip(SIDES, (texts, pairs), strict=True):
        enc = tokenizer.encode_batch(list(side_texts), max_length=max_length, padding="longest")
        out.update({f"{side}_{k}": np.asarray(v, np.int32) for k, v in enc.items()})
    return out


def pair_dataset(features: dict, labels: np.ndarray | None = None, *, batch_size: int = 32,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches of two-tower features (each side trimmed to its longest row in the batch)."""
    tensors = {k: tf.constant(v) for k, v in features.items()}
    n = len(next(iter(features.values())))
    y = None if labels is None else tf.constant(np.asarray(labels))

    def make_batch(rows):
        batch = {k: tf.gather(t, rows) for k, t in tensors.items()}
        for side in SIDES:
            width = tf.maximum(tf.reduce_max(tf.reduce_sum(batch[f"{side}_input_mask"], 1)), 1)
            for n_ in INPUT_NAMES:
                batch[f"{side}_{n_}"] = batch[f"{side}_{n_}"][:, :width]
        return batch if y is None else (batch, tf.gather(y, rows))

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(make_batch, num_parallel_calls=MAP_PARALLELISM)
    return without_autotune(ds.prefetch(PREFETCH_BATCHES))


class VectorCache:
    """Sentence vectors on disk, keyed by sha256(text) under a model fingerprint.

    Layout: `<root>/<fingerprint>/<shard>.npz`, each shard holding `keys` and
    `vectors` and written atomically (temporary file + rename), so readers
    never see a partial shard and concurrent writers never clash. A different
    model (fingerprint) never sees another model's vectors.
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str):
        self.dir = Path(root) / fingerprint
        self.fingerprint = fingerprint
        self._vectors: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        self.reload()

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def reload(self) -> None:
        """Read every shard on disk (written by this or another process)."""
        if not self.dir.is_dir():
            return
        for shard in sorted(self.dir.glob("*.npz")):
            with np.load(shard) as data:
                for k, v in zip(data["keys"], data["vectors"], strict=True):
                    self._vectors[str(k)] = v

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: str) -> bool:
        return self.key(text) in self._vectors

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store the vectors of `texts` as one new shard."""
        keys = [self.key(t) for t in texts]
        vectors = np.asarray(vectors, np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors for {len(keys)} texts")
        if not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.dir / f"{uuid.uuid4().hex}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.array(keys), vectors=vectors)
        self._vectors.update(zip(keys, vectors, strict=True))

    def get(self, texts: Sequence[str],
            compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors for `texts`: cached ones from memory, the rest by one `compute` call
        (whose results are then cached)."""
        keys = [self.key(t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True)
                                     if k not in self._vectors))  # fmt: skip
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if missing:
            self.put(missing, compute(missing))
        return np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0))


def text_encoder(model: TwoTowerClassifier, tokenizer) -> Callable[[list[str]], np.ndarray]:
    """A `compute` function for `VectorCache.get`: texts -> the model's sentence vectors."""

    def compute(texts: list[str]) -> np.ndarray:
        enc = tokenizer.encode_batch(texts, max_length=model.max_length, padding="longest")
        return model.encode_features(enc)

    return compute
