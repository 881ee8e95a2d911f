"""A fused training op of the op library against TensorFlow's ops, in the same
process: two copies of the MiniLM classifier, one traced with the fused op and one
without, `train_on_batch` on the same batch alternated between them.

    python bench/fused_ops.py [--op layer_norm|gelu] [--batch 32] [--lengths 12 24 48]

`--op layer_norm`: dropout + residual + LayerNorm (`KbfDropoutAddLayerNorm`); `--op
gelu`: the feed-forward's exact GELU (`KbfGelu`). Writes bench/results/fused_<op>.{json,md}
(bench/results/fused_layer_norm.md came from this script's earlier name,
bench/fused_layer_norm.py). Both models train (their weights drift apart a little,
which does not change the time of a step); warm-up steps (tracing) are excluded.
Random token ids, all positions real.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import write_result
from compute_speed import LEARNING_RATE, ours_model

# The function of layers.transformer that decides, at tracing, whether each op is fused.
SWITCHES = {"layer_norm": "can_fuse", "gelu": "can_fuse_elementwise"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--op", choices=sorted(SWITCHES), default="layer_norm")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lengths", type=int, nargs="+", default=[12, 24, 48])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()

    from keras_bert_ft.layers import fused, transformer
    from keras_bert_ft.training import create_optimizer

    if fused.fused_library() is None:
        raise SystemExit("the op library is not built: nothing to compare")
    switch = SWITCHES[a.op]
    real = getattr(transformer, switch)
    rng = np.random.default_rng(0)
    rows = []
    for length in a.lengths:
        x = {"input_word_ids": rng.integers(1000, 20000, (a.batch, length)).astype(np.int32),
             "input_mask": np.ones((a.batch, length), np.int32),
             "input_type_ids": np.zeros((a.batch, length), np.int32)}  # fmt: skip
        y = rng.integers(0, 2, a.batch).astype(np.int32)
        models = {}
        for name in ("tensorflow_ops", "fused"):
            model = ours_model("float32")
            model.compile(optimizer=create_optimizer(LEARNING_RATE, 1000),
                          loss=model.default_loss())
            # The choice is made when the step is traced, during the warm-up.
            setattr(transformer, switch, real if name == "fused" else (lambda *args: False))
            for _ in range(a.warmup):
                model.train_on_batch(x, y)
            models[name] = model
        setattr(transformer, switch, real)
        times = {name: [] for name in models}
        for _ in range(a.steps):
            for name, model in models.items():
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
        ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
        rows.append({"batch": a.batch, "length": length, "ms": ms,
                     "speedup": ms["tensorflow_ops"] / ms["fused"]})  # fmt: skip
        print(rows[-1], flush=True)
    lines = ["| batch x length | TF ops (ms/step) | fused (ms/step) | speed-up |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['batch']} x {r['length']} | {r['ms']['tensorflow_ops']:.1f} | "
              f"{r['ms']['fused']:.1f} | {r['speedup']:.3f}x |" for r in rows]
    md = (f"The `{a.op}` op fused or not; `train_on_batch` of all-MiniLM-L6-v2 + "
          f"classification head, float32, median of {a.steps} alternated steps after "
          f"{a.warmup} warm-up steps.\n\n" + "\n".join(lines))
    write_result(f"fused_{a.op}", {"op": a.op, "rows": rows, "steps": a.steps}, md)
    print(md)


if __name__ == "__main__":
    main()
