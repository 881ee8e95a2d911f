"""Shared by the compression benchmarks: batch-1 examples, traced models, accuracy.

The teacher they compress is in `_sst2_teacher.py`; latency is timed with
`_common.interleaved_latency_ms`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rows(features: dict, i: int) -> dict:
    """Example i alone, cut to its real length (batch 1, no padding)."""
    n = int(np.asarray(features["input_mask"][i]).sum())
    return {k: np.asarray(v)[i:i + 1, :n] for k, v in features.items()}


def compiled(model) -> Callable[[dict], object]:
    """`model` as a traced function (no `predict` overhead), for latency."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(x).numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows whose most probable class is the label."""
    return float(np.mean(np.argmax(probs, -1) == np.asarray(labels)))
