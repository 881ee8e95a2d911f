"""Attention's transposes on the bits as integers (inference) against TensorFlow's float
transposes, in two exports of the same MiniLM classifier served side by side.

    python bench/integer_transpose.py [--rows 100] [--batches 40]

Both exports are made in this process, one with `layers.attention.transpose` replaced by
`tf.transpose`; each is loaded back with `tf.saved_model.load` and its `serve_ids` called
in turns on the same random ids (every position real): `--rows` single rows of 8-39
tokens, and `--batches` batches of 32 rows of 8-39 tokens; float32 and bfloat16 exports.
Writes bench/results/integer_transpose.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from _common import interleaved_latency_ms, write_result
from compute_speed import ours_model

NAMES = ("float_transpose", "integer_transpose")


def exports(precision: str, folder: str) -> dict:
    """`serve_ids` of the two exports, keyed by NAMES."""
    import tensorflow as tf

    from keras_bert_ft.layers import attention
    from keras_bert_ft.serving import export_for_serving

    model = ours_model(precision)
    ours = attention.transpose
    signatures = {}
    for name in NAMES:
        if name == "float_transpose":
            attention.transpose = lambda x, perm, training=None: tf.transpose(x, perm)
        try:
            path = export_for_serving(model, export_dir=f"{folder}/{precision}_{name}",
                                      version=1, pairs=False, serving_config=False,
                                      precision=precision)
        finally:
            attention.transpose = ours
        signatures[name] = tf.saved_model.load(str(path)).signatures["serve_ids"]
    return signatures


def id_batches(count: int, batch: int, rng) -> list[dict]:
    import tensorflow as tf

    out = []
    for _ in range(count):
        ids = rng.integers(1000, 20000, (batch, int(rng.integers(8, 40)))).astype(np.int32)
        out.append({"input_word_ids": tf.constant(ids),
                    "input_mask": tf.constant(np.ones_like(ids)),
                    "input_type_ids": tf.constant(np.zeros_like(ids))})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100, help="single rows timed")
    p.add_argument("--batches", type=int, default=40, help="batches of 32 timed")
    p.add_argument("--passes", type=int, default=3, help="times over the same inputs")
    a = p.parse_args()

    rng = np.random.default_rng(0)
    work = {1: id_batches(a.rows, 1, rng), 32: id_batches(a.batches, 32, rng)}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("float32", "bfloat16"):
            signatures = exports(precision, folder)
            fns = {name: (lambda x, f=f: f(**x)) for name, f in signatures.items()}
            scores = [fn(work[32][0])["probabilities"].numpy() for fn in fns.values()]
            np.testing.assert_allclose(*scores, atol=1e-5)  # the same model either way
            for batch, inputs in work.items():
                for n in range(a.passes):
                    ms = interleaved_latency_ms(fns, inputs, warmup=3)
                    results.append({"precision": precision, "batch": batch, "pass": n,
                                    "ms": ms, "speedup": ms[NAMES[0]] / ms[NAMES[1]]})
    lines = ["| export | batch | pass | float transposes (ms) | integer transposes (ms) "
             "| speed-up |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['precision']} | {r['batch']} | {r['pass'] + 1} | "
              f"{r['ms'][NAMES[0]]:.2f} | {r['ms'][NAMES[1]]:.2f} | {r['speedup']:.3f}x |"
              for r in results]
    md = ("all-MiniLM-L6-v2 classifier (pooling=\"pooled\") exported twice, `serve_ids` "
          "called in turns: median ms per call over "
          f"{a.rows} single rows / {a.batches} batches of 32 rows of 8-39 random ids "
          f"(every position real), {a.passes} passes.\n\n" + "\n".join(lines))
    write_result("integer_transpose", {"rows": results}, md)
    print(md)


if __name__ == "__main__":
    main()
