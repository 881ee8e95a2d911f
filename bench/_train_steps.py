"""Training (or inference) steps of two variants of the MiniLM classifier, alternated
in one process: what bench/fused_ops.py, bench/optimizer_update.py,
bench/first_token_path.py and bench/export_ab.py share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
from _common import replaced
from compute_speed import LEARNING_RATE, ours_model


def random_ids(rng, batch: int, length: int) -> dict[str, np.ndarray]:
    """The three id inputs of `batch` rows of `length` random word ids, every position
    real, one segment."""
    return {"input_word_ids": rng.integers(1000, 20000, (batch, length)).astype(np.int32),
            "input_mask": np.ones((batch, length), np.int32),
            "input_type_ids": np.zeros((batch, length), np.int32)}


def alternated_medians(steps: dict, argument, count: int) -> dict:
    """The median seconds of each of `steps` (name -> callable) called on `argument`,
    `count` times each, the callables taking turns."""
    times = {name: [] for name in steps}
    for _ in range(count):
        for name, step in steps.items():
            start = time.perf_counter()
            step(argument)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def alternated_steps(module, attribute: str, off, names: tuple[str, str],
                           lengths: Sequence[int], batch: int, steps: int,
                           warmup: int, predict: bool = False) -> list[dict]:
    """Per length, the median `train_on_batch` seconds of two MiniLM classifiers (float32,
    `compile`'s AdamW): `names[0]` built and traced with `module.attribute` replaced by `off`,
    `names[1]` with it as it is; both train on the same random batch (all positions real),
    step by step in turn, after `warmup` untimed steps (the tracing). With `predict`,
    `predict_on_batch` steps instead (inference, nothing trains)."""
    from keras_bert_ft.training import create_optimizer

    real = getattr(module, attribute)
    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        x = random_ids(rng, batch, length)
        y = rng.integers(0, 2, batch).astype(np.int32)
        models = {}
        for name, value in zip(names, (off, real), strict=True):
            # The choice is made when the model is built or its step traced.
            with replaced(module, attribute, value):
                model = ours_model("float32")
                model.compile(optimizer=create_optimizer(LEARNING_RATE, 10_000),
                              loss=model.default_loss())
                step = (model.predict_on_batch if predict
                        else lambda x, model=model, y=y: model.train_on_batch(x, y))
                for _ in range(warmup):
                    step(x)
            models[name] = step
        rows.append({"batch": batch, "length": length,
                     **alternated_medians(models, x, steps)})
        print(rows[-1], flush=True)
    return rows
