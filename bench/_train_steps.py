"""Training steps of two variants of the MiniLM classifier, alternated in one process:
what bench/fused_ops.py and bench/optimizer_update.py share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
from compute_speed import LEARNING_RATE, ours_model


def alternated_train_steps(module, attribute: str, off, names: tuple[str, str],
                           lengths: Sequence[int], batch: int, steps: int,
                           warmup: int) -> list[dict]:
    """Per length, the median `train_on_batch` seconds of two MiniLM classifiers (float32,
    `compile`'s AdamW): `names[0]` traced with `module.attribute` replaced by `off`,
    `names[1]` with it as it is; both train on the same random batch (all positions real),
    step by step in turn, after `warmup` untimed steps (the tracing)."""
    from keras_bert_ft.training import create_optimizer

    real = getattr(module, attribute)
    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        x = {"input_word_ids": rng.integers(1000, 20000, (batch, length)).astype(np.int32),
             "input_mask": np.ones((batch, length), np.int32),
             "input_type_ids": np.zeros((batch, length), np.int32)}  # fmt: skip
        y = rng.integers(0, 2, batch).astype(np.int32)
        models = {}
        try:
            for name, value in zip(names, (off, real), strict=True):
                model = ours_model("float32")
                model.compile(optimizer=create_optimizer(LEARNING_RATE, 10_000),
                              loss=model.default_loss())
                # The choice is made when the step is traced, during the warm-up.
                setattr(module, attribute, value)
                for _ in range(warmup):
                    model.train_on_batch(x, y)
                models[name] = model
        finally:
            setattr(module, attribute, real)
        times = {name: [] for name in models}
        for _ in range(steps):
            for name, model in models.items():
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
        rows.append({"batch": batch, "length": length,
                     **{name: statistics.median(t) for name, t in times.items()}})
        print(rows[-1], flush=True)
    return rows
