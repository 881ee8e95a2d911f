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

from _common import write_result
from _train_steps import alternated_steps

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

    if fused.fused_library() is None:
        raise SystemExit("the op library is not built: nothing to compare")
    rows = []
    for r in alternated_steps(transformer, SWITCHES[a.op], lambda *args: False,
                                    ("tensorflow_ops", "fused"), a.lengths, a.batch, a.steps,
                                    a.warmup):
        ms = {name: 1000 * r[name] for name in ("tensorflow_ops", "fused")}
        rows.append({"batch": a.batch, "length": r["length"], "ms": ms,
                     "speedup": ms["tensorflow_ops"] / ms["fused"]})  # fmt: skip
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
