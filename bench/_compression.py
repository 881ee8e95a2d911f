"""Helpers shared by the compression benchmarks: data, the teacher, batch-1 latency."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KBF_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared/data"))

TEACHER_DIR = Path("/tmp/kbf_bench/sst2_teacher")


def load_teacher(directory: str | os.PathLike = TEACHER_DIR):
    """An SST-2 teacher: the output folder of bench/_sst2_teacher.py, or of
    `bench/finetune_accuracy.py sst2 --save-dir DIR` (trained on all of SST-2 train)."""
    import keras

    import keras_bert_ft.models  # noqa: F401  (registers the model classes)
    import keras_bert_ft.training  # noqa: F401  (and the optimizer the file holds)

    path = Path(directory) / "model.keras"
    if not path.exists():
        raise SystemExit(f"{path} missing: run bench/_sst2_teacher.py first")
    return keras.models.load_model(path)


def rows(features: dict, i: int) -> dict:
    """Example i alone, cut to its real length (batch 1, no padding)."""
    n = int(np.asarray(features["input_mask"][i]).sum())
    return {k: np.asarray(v)[i:i + 1, :n] for k, v in features.items()}


def compiled(model) -> Callable[[dict], object]:
    """`model` as a traced function (no `predict` overhead), for latency."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(x).numpy()


def interleaved_latency_ms(fns: dict[str, Callable[[dict], object]], examples: Sequence[dict],
                           warmup: int = 10) -> dict[str, float]:
    """Median ms per call of each function on the same examples, taken in turns so that
    load from other processes on this shared CPU hits all of them alike."""
    for ex in examples[:warmup]:
        for fn in fns.values():
            fn(ex)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for ex in examples:
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(ex)
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, -1) == np.asarray(labels)))
