"""Skipping padding in the transformer blocks (layers/padding.py) against the padded path,
in the same process: two copies of the MiniLM classifier, one traced with packing forced
on and one with it off, alternated batch by batch, at several amounts of padding.

    KBF_DATA_DIR=../shared/data python bench/skip_padding.py [--batches 40]

The batches are compute_speed's SST-2 batches of 32, grouped by length (little padding);
padding is then raised by extra padded columns (13 % .. 32 %), and the last set is
random batches (consecutive rows of the shuffle, two thirds padding). Each set is timed
as a `tf.function` forward pass and as `train_on_batch`; the first 8 batches of each
pass are warm-up (tracing). Writes bench/results/skip_padding.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_result
from compute_speed import LEARNING_RATE, id_inputs, load_batches, ours_model, prepare_batches

WARMUP = 8


def with_padding(batches: list[dict], fraction: float) -> list[dict]:
    """The batches with padded columns appended until `fraction` of each is padding."""
    out = []
    for b in batches:
        rows, length = b["input_mask"].shape
        target = int(np.ceil(b["input_mask"].sum() / (1 - fraction) / rows))
        extra = max(target - length, 0)
        out.append({k: v if v.ndim == 1 else np.pad(v, [(0, 0), (0, extra)])
                    for k, v in b.items()})  # fmt: skip
    return out


def padding_of(batches: list[dict]) -> float:
    return 1 - sum(int(b["input_mask"].sum()) for b in batches) / sum(
        b["input_mask"].size for b in batches)


def time_pair(batches: list[dict], train: bool) -> dict:
    """Seconds over the timed batches for packing forced on and forced off."""
    import tensorflow as tf

    from keras_bert_ft.layers import padding
    from keras_bert_ft.training import create_optimizer

    forced = {"packed": 0.0, "padded": 1.01}  # MIN_PADDING_FRACTION: always / never
    models, forward = {}, {}
    for name in forced:
        model = ours_model("float32")
        if train:
            model.compile(optimizer=create_optimizer(LEARNING_RATE, 1000),
                          loss=model.default_loss())
        models[name] = model
        forward[name] = tf.function(lambda x, m=model: m(x, training=False),
                                    reduce_retracing=True)
    seconds = dict.fromkeys(forced, 0.0)
    default = padding.MIN_PADDING_FRACTION
    try:
        for i, b in enumerate(batches):
            for name, model in models.items():
                # The choice is read when a step is traced (again for a new shape).
                padding.MIN_PADDING_FRACTION = forced[name]
                start = time.perf_counter()
                if train:
                    model.train_on_batch(id_inputs(b), b["labels"])
                else:
                    forward[name](id_inputs(b))
                if i >= WARMUP:
                    seconds[name] += time.perf_counter() - start
    finally:
        padding.MIN_PADDING_FRACTION = default
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=40, help="timed batches per set")
    a = p.parse_args()
    count = WARMUP + a.batches
    with tempfile.TemporaryDirectory() as work:
        grouped_npz, random_npz = Path(work, "grouped.npz"), Path(work, "random.npz")
        prepare_batches(grouped_npz, (32,), count, 0, "length")
        prepare_batches(random_npz, (32,), count, 0, "none")
        grouped = load_batches(str(grouped_npz), 32, count)
        sets = {"grouped": grouped,
                **{f"grouped + {int(f * 100)} % columns": with_padding(grouped, f)
                   for f in (0.13, 0.22, 0.32)},
                "random": load_batches(str(random_npz), 32, count)}
        rows = []
        for label, batches in sets.items():
            row = {"set": label, "padding": round(padding_of(batches[WARMUP:]), 3)}
            for kind, train in (("forward", False), ("training", True)):
                s = time_pair(batches, train)
                row[kind] = {"packed_s": round(s["packed"], 3), "padded_s": round(s["padded"], 3),
                             "speedup": round(s["padded"] / s["packed"], 3)}
            rows.append(row)
            print(row, flush=True)
    lines = ["| batches | padding | forward: packed / padded | training step: packed / padded |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['set']} | {100 * r['padding']:.1f} % | {r['forward']['speedup']:.2f}x | "
              f"{r['training']['speedup']:.2f}x |" for r in rows]
    md = ("all-MiniLM-L6-v2 classifier, float32, batches of 32: time with the padded path / time "
          f"with packing forced on, {a.batches} timed batches per set after {WARMUP} warm-up "
          "batches, the two models alternated batch by batch in one process. The package "
          "packs only from 15 % of padding (`layers/padding.py`).\n\n" + "\n".join(lines))
    write_result("skip_padding", {"rows": rows, "batches": a.batches}, md)
    print(md)


if __name__ == "__main__":
    main()
