"""Two exports of the same MiniLM classifier served side by side, one of them made with a
function of the package replaced: the speed of one change to the exported graph.

    python bench/export_ab.py CHANGE [--rows 100] [--batches 40] [--passes 3]

CHANGE is one of
  integer_transpose  attention's transposes on the bits as integers at inference
                     (`layers.attention.transpose`) against `tf.transpose`.
  parallel_groups    each block's heads and feed-forward units in two groups that run
                     side by side (the export's default, `parallel_groups=2`) against
                     whole projections (`parallel_groups=1`).
Both exports are made in this process, the "before" one with the function replaced;
each is loaded back with `tf.saved_model.load` and its `serve_ids` called in turns on
the same random ids (every position real): `--rows` single rows of 8-39 tokens and
`--batches` batches of 32 rows of 8-39 tokens, float32 and bfloat16 exports, `--passes`
times. Writes bench/results/CHANGE.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable

import numpy as np
from _common import interleaved_latency_ms, replaced, write_result
from _train_steps import random_ids
from compute_speed import ours_model


def exports(module, attribute: str, off: Callable, names: tuple[str, str],
            precision: str, folder: str) -> dict:
    """`serve_ids` of two exports, keyed by `names`: the first made with
    `module.attribute` replaced by `off`, the second with it as it is."""
    import tensorflow as tf

    from keras_bert_ft.serving import export_for_serving

    model = ours_model(precision)
    signatures = {}
    for name in names:
        variant = (replaced(module, attribute, off) if name == names[0]
                   else contextlib.nullcontext())
        with variant:
            path = export_for_serving(model, export_dir=f"{folder}/{precision}_{name}",
                                      version=1, pairs=False, serving_config=False,
                                      precision=precision)
        signatures[name] = tf.saved_model.load(str(path)).signatures["serve_ids"]
    return signatures


def id_batches(count: int, batch: int, rng) -> list[dict]:
    """`count` batches of `batch` random rows of 8-39 ids, every position real."""
    import tensorflow as tf

    out = []
    for _ in range(count):
        ids = random_ids(rng, batch, int(rng.integers(8, 40)))
        out.append({name: tf.constant(value) for name, value in ids.items()})
    return out


def changes() -> dict:
    """CHANGE -> (module, attribute, the "before" function, names, column labels)."""
    import tensorflow as tf

    from keras_bert_ft.layers import attention, precast
    from keras_bert_ft.serving import export

    def whole_projections(model, dtype, only_computing_in_dtype=False, groups=1):
        return precast.projection_copies(model, dtype, only_computing_in_dtype, groups=1)

    return {
        "parallel_groups": (
            export, "projection_copies", whole_projections,
            ("whole", "two_groups"), ("whole projections", "two groups")),
        "integer_transpose": (
            attention, "transpose", lambda x, perm, training=None: tf.transpose(x, perm),
            ("float_transpose", "integer_transpose"),
            ("float transposes", "integer transposes")),
    }


def run(benchmark: str, module, attribute: str, off: Callable, names: tuple[str, str],
        labels: tuple[str, str], rows: int, batches: int, passes: int) -> str:
    """Time both exports (float32 and bfloat16) at batch 1 and 32, in turns, `passes`
    times; write bench/results/`benchmark`.{json,md} and return the markdown."""
    rng = np.random.default_rng(0)
    work = {1: id_batches(rows, 1, rng), 32: id_batches(batches, 32, rng)}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("float32", "bfloat16"):
            signatures = exports(module, attribute, off, names, precision, folder)
            fns = {name: (lambda x, f=f: f(**x)) for name, f in signatures.items()}
            scores = [fn(work[32][0])["probabilities"].numpy() for fn in fns.values()]
            # The same model either way (bfloat16 rounds differently on each side).
            np.testing.assert_allclose(*scores, atol=1e-5 if precision == "float32" else 2e-2)
            for batch, inputs in work.items():
                for n in range(passes):
                    ms = interleaved_latency_ms(fns, inputs, warmup=3)
                    results.append({"precision": precision, "batch": batch, "pass": n,
                                    "ms": ms, "speedup": ms[names[0]] / ms[names[1]]})
    lines = [f"| export | batch | pass | {labels[0]} (ms) | {labels[1]} (ms) | speed-up |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['precision']} | {r['batch']} | {r['pass'] + 1} | "
              f"{r['ms'][names[0]]:.2f} | {r['ms'][names[1]]:.2f} | {r['speedup']:.3f}x |"
              for r in results]
    md = ("all-MiniLM-L6-v2 classifier (pooling=\"pooled\") exported twice, `serve_ids` "
          "called in turns: median ms per call over "
          f"{rows} single rows / {batches} batches of 32 rows of 8-39 random ids "
          f"(every position real), {passes} passes.\n\n" + "\n".join(lines))
    write_result(benchmark, {"rows": results}, md)
    return md


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("change", choices=sorted(changes()))
    p.add_argument("--rows", type=int, default=100, help="single rows timed")
    p.add_argument("--batches", type=int, default=40, help="batches of 32 timed")
    p.add_argument("--passes", type=int, default=3, help="times over the same inputs")
    a = p.parse_args()
    print(run(a.change, *changes()[a.change], a.rows, a.batches, a.passes))


if __name__ == "__main__":
    main()
