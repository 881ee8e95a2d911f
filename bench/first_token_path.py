"""The classifier reading the encoder's first-token outputs (the last block run for the
`[CLS]` query alone) against reading `pooled_output` (the whole last block), in the same
process: two copies of the MiniLM classifier, steps alternated between them.

    python bench/first_token_path.py [--batch 32] [--lengths 12 24 48]

Training (`train_on_batch`) and inference (`predict_on_batch`), float32, random token
ids with every position real (so neither side skips padding). Both give the same scores;
the copies' weights drift apart a little while training, which does not change the
time of a step. Writes bench/results/first_token_path.{json,md}.
"""

from __future__ import annotations

import argparse

from _common import write_result
from _train_steps import alternated_steps

NAMES = ("whole_last_block", "first_token")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lengths", type=int, nargs="+", default=[12, 24, 48])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()

    from keras_bert_ft import models

    rows = []
    for work in ("training", "inference"):
        for r in alternated_steps(models, "first_token_features", lambda *args: None, NAMES,
                                  a.lengths, a.batch, a.steps, a.warmup,
                                  predict=work == "inference"):
            ms = {name: 1000 * r[name] for name in NAMES}
            rows.append({"work": work, "batch": a.batch, "length": r["length"], "ms": ms,
                         "speedup": ms[NAMES[0]] / ms[NAMES[1]]})
    lines = ["| work | batch x length | whole last block (ms/step) | first token (ms/step) "
             "| speed-up |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['work']} | {r['batch']} x {r['length']} | {r['ms'][NAMES[0]]:.1f} | "
              f"{r['ms'][NAMES[1]]:.1f} | {r['speedup']:.3f}x |" for r in rows]
    md = ("all-MiniLM-L6-v2 + classification head (pooling=\"pooled\"), float32: the head "
          "reading `first_token_pooled_output` (the last block for the [CLS] query only) "
          "or `pooled_output` (the whole last block). Median of "
          f"{a.steps} alternated steps after {a.warmup} warm-up steps; random ids, no "
          "padding.\n\n" + "\n".join(lines))
    write_result("first_token_path", {"rows": rows, "steps": a.steps}, md)
    print(md)


if __name__ == "__main__":
    main()
