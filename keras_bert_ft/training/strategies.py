"""Distribution strategies and mixed precision."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from keras_bert_ft.cpu_features import warn_if_bfloat16_is_slow

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _tf_config() -> dict:
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """A `tf.distribute` strategy by name.

    "auto": multi-worker when TF_CONFIG names more than one task, mirrored when
    there is more than one GPU (or logical device), else the default strategy.
    "mirrored" uses every local GPU, or every logical CPU device if there is no GPU.
    Asking again returns the same strategy object.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "auto":
        cluster = _tf_config().get("cluster", {})
        if sum(len(v) for v in cluster.values()) > 1:
            name = "multi_worker"
        elif len(_local_devices()) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    # One instance per process and devices: a second MirroredStrategy over the
    # same devices restarts collective instance keys, and its all-reduces then
    # meet the first one's ("Shape mismatch in the collective instance").
    # (Multi-worker must be built before anything initialises TF: no device listing.)
    key = (name, tuple(_local_devices()) if name == "mirrored" else ())
    if key not in _CREATED:
        _CREATED[key] = (tf.distribute.MirroredStrategy(list(key[1])) if name == "mirrored"
                         else tf.distribute.MultiWorkerMirroredStrategy())  # fmt: skip
    return _CREATED[key]


_CREATED: dict[tuple[str, tuple[str, ...]], tf.distribute.Strategy] = {}


def _local_devices() -> list[str]:
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def is_chief() -> bool:
    """True unless TF_CONFIG makes this process a non-chief worker.

    The chief is task "chief", or "worker" 0 when the cluster has no chief.
    Only the chief writes checkpoints, models and reports.
    """
    cfg = _tf_config()
    task = cfg.get("task") or {}
    if not task:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cfg.get("cluster", {})


def set_precision(policy: str = "float32") -> None:
    """Set the global Keras dtype policy; call it before building the model.

    On CPU use "mixed_bfloat16"; "mixed_float16" is for GPUs (Keras adds loss
    scaling to the optimizer at compile). The classifier's output layers stay float32.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {policy!r}")
    if policy == "mixed_bfloat16" and not tf.config.list_physical_devices("GPU"):
        warn_if_bfloat16_is_slow("mixed_bfloat16 training on this CPU")
    keras.mixed_precision.set_global_policy(policy)


def enable_determinism(seed: int) -> None:
    """Make training repeatable: seed Python, NumPy, TensorFlow and Keras, and turn
    on TensorFlow's op determinism (deterministic kernels; ops without one raise).

    The input pipelines already shuffle from the run's seed and map in order.
    Op determinism is process-wide and cannot be turned off again; it can slow
    some ops (on CPU mostly reductions over IndexedSlices, scatter and gather grads).
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
