"""Two copies of the MiniLM classifier trained side by side, one of them built with a
function of the package replaced: the speed of one change to the training step.

    python bench/train_ab.py CHANGE [--batch 32] [--lengths 12 24 48] [--steps 15]

CHANGE is one of
  first_token_kernels  the last block's [CLS] query and keys/values from their own
                       kernels while training (`MultiHeadSelfAttention.
                       first_token_projections`) against slices of the fused q/k/v one.
Float32, `train_on_batch` with `compile`'s AdamW, random ids with every position real;
the copies' steps alternate (`_train_steps.alternated_steps`). Writes
bench/results/CHANGE.{json,md}.
"""

from __future__ import annotations

import argparse

from _common import write_result
from _train_steps import alternated_steps


def sliced_first_token_projections(self, x, first, dtype):
    """The earlier training path: q and k/v from slices of the fused q/k/v kernel."""
    import tensorflow as tf

    h = self.hidden_size
    kernel, bias = self.qkv_weights(dtype)
    q = tf.nn.bias_add(tf.matmul(first, kernel[:, :h]), bias[:h])
    kv = tf.nn.bias_add(tf.matmul(x, kernel[:, h:]), bias[h:])
    return q, kv


def changes() -> dict:
    """CHANGE -> (owner, attribute, the "before" function, names, column labels)."""
    from keras_bert_ft.layers.attention import MultiHeadSelfAttention

    return {
        "first_token_kernels": (
            MultiHeadSelfAttention, "first_token_projections", sliced_first_token_projections,
            ("sliced_kernel", "own_kernels"), ("sliced q/k/v kernel", "own kernels")),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("change", choices=sorted(changes()))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lengths", type=int, nargs="+", default=[12, 24, 48])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    owner, attribute, off, names, labels = changes()[a.change]
    rows = []
    for r in alternated_steps(owner, attribute, off, names, a.lengths, a.batch, a.steps,
                              a.warmup):
        ms = {name: 1000 * r[name] for name in names}
        rows.append({"batch": a.batch, "length": r["length"], "ms": ms,
                     "speedup": ms[names[0]] / ms[names[1]]})
    lines = [f"| batch x length | {labels[0]} (ms/step) | {labels[1]} (ms/step) | speed-up |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['batch']} x {r['length']} | {r['ms'][names[0]]:.1f} | "
              f"{r['ms'][names[1]]:.1f} | {r['speedup']:.3f}x |" for r in rows]
    md = ("all-MiniLM-L6-v2 classifier (pooling=\"pooled\"), float32 `train_on_batch`, two "
          f"copies alternated: median of {a.steps} steps after {a.warmup} warm-up steps; "
          "random ids, no padding.\n\n" + "\n".join(lines))
    write_result(a.change, {"rows": rows, "steps": a.steps}, md)
    print(md)


if __name__ == "__main__":
    main()
