"""SST-2 dev accuracy of a fine-tuned classifier through its float32 and bfloat16 exports.

    KBF_DATA_DIR=../shared/data python bench/bf16_accuracy.py [--model DIR ...]

Each DIR is a fine-tuned SST-2 model's folder (`model.keras`, as written by
`bench/finetune_accuracy.py sst2 --save-dir DIR`). The model is exported twice with
`export_for_serving`, once with `precision="float32"` and once with `"bfloat16"`; both
SavedModels are loaded with `tf.saved_model.load` and called through `serving_default`
on the raw dev sentences, as TF Serving calls them. Reports each export's accuracy, the
difference in points (issue #13 asks for at most 0.2), how many predictions differ and
the largest probability difference. Writes bench/results/bf16_accuracy.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _compress as compress
import numpy as np
from _common import RESULTS_DIR, mean_spread, seed_summary, write_result
from _sst2_teacher import load_teacher

PRECISIONS = ("float32", "bfloat16")


def export_probabilities(export_path: Path, texts: list[str], batch_size: int) -> np.ndarray:
    """`serving_default`'s probabilities for `texts`, in order."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    parts = [serve(text=tf.constant(texts[i:i + batch_size]))["probabilities"].numpy()
             for i in range(0, len(texts), batch_size)]  # fmt: skip
    return np.concatenate(parts).astype(np.float64)


def compare(model_dir: str, texts: list[str], labels: np.ndarray, batch_size: int) -> dict:
    """The model in `model_dir` exported in float32 and bfloat16 (and bfloat16 with whole
    projections, `parallel_groups=1`), each scored on `texts`."""
    from keras_bert_ft.serving.export import export_for_serving

    model = load_teacher(model_dir)
    variants = {"float32": ("float32", {}), "bfloat16": ("bfloat16", {}),
                "bfloat16_whole": ("bfloat16", {"parallel_groups": 1})}
    probs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (precision, options) in variants.items():
            path = export_for_serving(model, export_dir=Path(tmp) / name,
                                      precision=precision, **options)
            probs[name] = export_probabilities(path, texts, batch_size)
    predicted = {p: probs[p].argmax(-1) for p in variants}
    accuracy = {p: compress.accuracy(probs[p], labels) for p in variants}
    return {
        "model": model_dir,
        "accuracy": accuracy,
        "difference_points": 100 * (accuracy["bfloat16"] - accuracy["float32"]),
        "whole_difference_points": 100 * (accuracy["bfloat16_whole"] - accuracy["float32"]),
        "predictions_differing": int((predicted["bfloat16"] != predicted["float32"]).sum()),
        "max_probability_difference": float(np.abs(probs["bfloat16"] - probs["float32"]).max()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=["/tmp/kbf_bench/sst2_full"],
                   help="fine-tuned SST-2 model folders (each holding model.keras)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-difference", type=float, default=0.2,
                   help="the allowed accuracy change in points (issue #13)")
    p.add_argument("--out", default=str(RESULTS_DIR))
    p.add_argument("--name", default="bf16_accuracy", help="the result files' name")
    args = p.parse_args()

    from keras_bert_ft.data import load_dataset

    dev = load_dataset("sst2")["validation"]
    runs = [compare(d, dev.texts, dev.labels, args.batch_size) for d in args.model]
    change = seed_summary([r["difference_points"] for r in runs])
    met = all(abs(r["difference_points"]) <= args.max_difference for r in runs)
    rows = [f"| {r['model']} | {r['accuracy']['float32']:.4f} | {r['accuracy']['bfloat16']:.4f} "
            f"| {r['difference_points']:+.2f} | {r['predictions_differing']} "
            f"| {r['max_probability_difference']:.4f} | {r['accuracy']['bfloat16_whole']:.4f} "
            f"({r['whole_difference_points']:+.2f}) |" for r in runs]  # fmt: skip
    lines = [
        f"SST-2 dev ({len(dev):,} sentences), raw text through each export's "
        f"`serving_default`, batches of {args.batch_size}. The bfloat16 export stores the "
        "projection weights in bfloat16 and computes the encoder in bfloat16 (the "
        "`precision=\"bfloat16\"` option); the float32 export is the default. Both have "
        "the default `parallel_groups` (two groups of heads and units per block); the last "
        "column is a bfloat16 export with whole projections (`parallel_groups=1`).", "",
        "| fine-tuned model | float32 export | bfloat16 export | change (points) "
        "| predictions that differ | largest probability difference "
        "| bfloat16, whole projections (change) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, "",
        f"- change over the models: {mean_spread(change, 2)} points"
        + (" (one model)" if len(runs) == 1 else ""),
        f"- largest drop: {max(0.0, -change['min']):.2f} points",
        f"- every model within {args.max_difference} points: {'yes' if met else 'NO'}",
    ]
    write_result(args.name, {"runs": runs, "change_points": change,
                                   "max_difference": args.max_difference, "met": met},
                 "\n".join(lines), title="bfloat16 export accuracy (SST-2 dev)",
                 out_dir=args.out)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
