"""LoRA against full fine-tuning of all-MiniLM-L6-v2 on SST-2 (CPU), the same budget.

    KBF_DATA_DIR=../shared/data python bench/lora_sst2.py [--train-rows 8000] [--epochs 2]
                                                          [--seed 0] [--seeds 3]

Each side runs in its own process (so peak RSS is its own): the same stratified
subset of SST-2 train, max_length 64, batch 32, the same epochs, seed and
schedule; both sides train once per seed (--seed, --seed + 1, ...; the training
rows are the same for every seed, drawn with --seed); full fine-tuning at lr
5e-5 (the project default), LoRA at 1e-3 (the CLI's default with --lora-rank).
The learning rates are fixed in advance, not chosen on dev. Dev (872 sentences,
the GLUE validation split) is evaluated once at the end of each run. Dev
accuracy is reported as the mean ± sample standard deviation over the seeds; the
other measurements below are the first seed's.

Reported per side: dev accuracy, trainable parameters, median train step time
(steps after the first 10 of each epoch, so graph tracing is left out), peak
RSS of the process after training and the dev evaluation (before the checks
below, which export the model). For LoRA also: the adapter file size; the largest
difference between the unmerged and the merged model's dev probabilities; and
the export of the LoRA model: its ops against the TF Serving allow-list and
against an export of the merged plain model, its stored values against the
plain model's, and its served probabilities against
`model.predict` on the dev sentences.

Writes bench/results/lora_sst2.json and .md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS_DIR, mean_spread, seed_summary, write_result

BATCH = 32
MAX_LENGTH = 64
LEARNING_RATES = {"full": 5e-5, "lora": 1e-3}


def step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Wall time of each training step (batch begin to batch end)."""

        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch >= 10:  # the first steps trace the graph
                self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def run_side(side: str, args) -> dict:
    """Train one side in this process and return its measurements."""
    import numpy as np

    from keras_bert_ft import lora
    from keras_bert_ft.data import load_dataset
    from keras_bert_ft.data.splits import split_indices
    from keras_bert_ft.training import finetune as finetune_module
    from keras_bert_ft.training.finetune import FinetuneSettings, finetune

    splits = load_dataset("sst2")
    train, dev = splits["train"], splits["validation"]
    frac = args.train_rows / len(train)
    keep = split_indices(train.labels, len(train), {"k": frac, "r": 1 - frac}, args.seed)["k"]
    train = train.subset(keep)
    settings = FinetuneSettings(
        epochs=args.epochs, batch_size=BATCH, max_length=MAX_LENGTH, seed=args.run_seed,
        learning_rate=LEARNING_RATES[side], verbose=2)
    if side == "lora":
        settings.lora_rank = args.rank
        settings.lora_alpha = args.alpha
        settings.lora_targets = lora.check_targets(args.targets.split(","))

    timer = step_timer()
    make_callbacks = finetune_module.make_callbacks
    # The timer rides along with finetune's own callbacks.
    finetune_module.make_callbacks = lambda **kw: [*make_callbacks(**kw), timer]
    result = finetune(train, None, dev, settings)
    # Before the LoRA side's checks (exports): the peak of training and evaluation.
    peak_training = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = result.model
    trainable, total = lora.trainable_fraction(model)
    out = {
        "side": side,
        "learning_rate": settings.learning_rate,
        "dev_accuracy": result.report.to_dict()["accuracy"],
        "trainable_parameters": trainable,
        "all_parameters": total,
        "trainable_percent": round(100 * trainable / total, 3),
        "train_seconds": round(result.train_seconds, 1),
        "median_step_seconds": round(float(np.median(timer.times)), 4),
        "mean_step_seconds": round(float(np.mean(timer.times)), 4),
        "train_rows": len(train),
        "peak_rss_training_mib": round(peak_training, 1),
        "settings": settings.to_dict(),
    }
    if side == "lora" and args.run_seed == args.seed:
        out.update(lora_checks(model, dev, args))
    out["peak_rss_end_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def lora_checks(model, dev, args) -> dict:
    """Adapter size, merged vs unmerged outputs, and the export of the LoRA model."""
    import numpy as np
    import tensorflow as tf

    from keras_bert_ft import lora
    from keras_bert_ft.serving.export import TEXT_SIGNATURE, export_for_serving
    from keras_bert_ft.serving.op_check import unsupported_ops

    tmp = Path(tempfile.mkdtemp(prefix="kbf_lora_bench_"))
    adapter = lora.save_adapter(model, tmp / "adapter.npz")
    full_model = tmp / "model.keras"
    from keras_bert_ft.training.finetune import save_model

    save_model(model, full_model)
    texts = list(dev.texts)
    encoded = model.encode(texts)
    unmerged = model.predict(encoded, batch_size=64, verbose=0)
    path = export_for_serving(model, None, tmp / "export")
    served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE]
    got = np.concatenate([served(text=tf.constant(texts[i:i + 128]))["probabilities"].numpy()
                          for i in range(0, len(texts), 128)])
    ops = op_counts(path)
    stored = stored_values(path)
    lora.merge_lora(model)
    merged = model.predict(encoded, batch_size=64, verbose=0)
    plain_ops = op_counts(export_for_serving(model, None, tmp / "plain_export"))
    return {
        "adapter_bytes": adapter.stat().st_size,
        "full_model_keras_bytes": full_model.stat().st_size,
        "merged_vs_unmerged_max_abs_diff": float(np.abs(merged - unmerged).max()),
        "export_vs_predict_max_abs_diff": float(np.abs(got - unmerged).max()),
        "export_unsupported_ops": unsupported_ops(path),
        "export_ops_equal_merged_plain_export": ops == plain_ops,
        "export_matmul_count": ops.get("MatMul", 0),
        "export_stored_values": stored,
        "plain_model_parameters": model.count_params(),
    }


def op_counts(export_dir: Path) -> dict[str, int]:
    """How many nodes of each op type a SavedModel's graphs and functions hold."""
    from collections import Counter

    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    counts = Counter()
    for meta in proto.meta_graphs:
        counts.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            counts.update(node.op for node in function.node_def)
    return dict(counts)


def stored_values(version_dir: Path) -> int:
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    return sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
               if name != "_CHECKPOINTABLE_OBJECT_GRAPH")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-rows", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--targets", default="query,key,value,attention_output")
    p.add_argument("--seed", type=int, default=0,
                   help="the first seed; it also draws the training rows")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    p.add_argument("--run-seed", type=int, help="(internal) the seed --side trains with")
    p.add_argument("--side", choices=sorted(LEARNING_RATES), help="(internal) run one side")
    p.add_argument("--result-file", help="(internal) where --side writes its JSON")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args()

    if args.side:
        Path(args.result_file).write_text(json.dumps(run_side(args.side, args), indent=2))
        return 0

    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")
    seeds = list(range(args.seed, args.seed + args.seeds))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            sides = {}
            for side in ("full", "lora"):
                result_file = Path(tmp) / f"{side}-{seed}.json"
                subprocess.run([sys.executable, __file__, *sys.argv[1:], "--side", side,
                                "--run-seed", str(seed), "--result-file", str(result_file)],
                               check=True)  # fmt: skip
                sides[side] = json.loads(result_file.read_text())
            runs.append(sides)
    record = {
        **runs[0],  # the first seed's measurements, as before
        "seeds": seeds,
        "runs": runs,
        "over_seeds": {
            "full_dev_accuracy": seed_summary([r["full"]["dev_accuracy"] for r in runs]),
            "lora_dev_accuracy": seed_summary([r["lora"]["dev_accuracy"] for r in runs]),
            "gap_points": seed_summary(
                [100 * (r["lora"]["dev_accuracy"] - r["full"]["dev_accuracy"]) for r in runs]),
        },
    }
    md = markdown(record, args)
    write_result("lora_sst2", record, md, out_dir=args.out,
                 title="LoRA vs full fine-tuning: all-MiniLM-L6-v2 on SST-2")
    print(md)
    return 0


def markdown(r: dict, args) -> str:
    full, lo, over = r["full"], r["lora"], r["over_seeds"]
    gap = over["gap_points"]["mean"]
    rows = [
        ("dev accuracy (872 sentences), mean ± std over seeds",
         mean_spread(over["full_dev_accuracy"]), mean_spread(over["lora_dev_accuracy"])),
        ("learning rate", f"{full['learning_rate']:g}", f"{lo['learning_rate']:g}"),
        ("trainable parameters", f"{full['trainable_parameters']:,} "
         f"({full['trainable_percent']}%)",
         f"{lo['trainable_parameters']:,} ({lo['trainable_percent']}%)"),
        ("median train step (s)", f"{full['median_step_seconds']}",
         f"{lo['median_step_seconds']}"),
        ("mean train step (s)", f"{full['mean_step_seconds']}", f"{lo['mean_step_seconds']}"),
        ("training time (s)", f"{full['train_seconds']}", f"{lo['train_seconds']}"),
        ("peak RSS, training + dev evaluation (MiB)", f"{full['peak_rss_training_mib']}",
         f"{lo['peak_rss_training_mib']}"),
    ]
    lines = [
        f"Budget: {full['train_rows']:,} training rows (a stratified subset of SST-2 train, "
        f"seed {args.seed}), seeds {', '.join(map(str, r['seeds']))}, {args.epochs} epochs, "
        f"max_length {MAX_LENGTH}, batch {BATCH}, "
        "mean pooling, AdamW with 10% warm-up and linear decay. LoRA: rank "
        f"{args.rank}, alpha {args.alpha:g}, targets {args.targets}; the encoder frozen, "
        "the factors and the head trained. Learning rates fixed in advance (not tuned on "
        "dev); dev evaluated once per run. Each side in its own process. Rows other than dev "
        f"accuracy, and the checks below, are the first seed's ({r['seeds'][0]}).", "",
        "Timings were measured under load from other jobs (see the load average above) and "
        "are noisy; the accuracy figures are not affected.", "",
        "| | full fine-tuning | LoRA |", "| --- | --- | --- |",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows), "",
        f"- LoRA dev accuracy minus full fine-tuning's: {mean_spread(over['gap_points'], 2)} "
        f"points ({'within' if gap >= -1.0 else 'NOT within'} 1 point, by the mean); "
        "trainable share "
        f"{lo['trainable_percent']}% ({'under' if lo['trainable_percent'] < 2 else 'NOT under'} "
        "2%).",
        f"- adapter file (factors + head, .npz): {lo['adapter_bytes']:,} bytes; the whole "
        f"model as .keras: {lo['full_model_keras_bytes']:,} bytes.",
        "- merged vs unmerged model, dev probabilities: max abs difference "
        f"{lo['merged_vs_unmerged_max_abs_diff']:.2e}.",
        "- export of the LoRA model (merged at export): served vs `model.predict` on dev, "
        f"max abs difference {lo['export_vs_predict_max_abs_diff']:.2e}; ops outside the TF "
        f"Serving allow-list: {lo['export_unsupported_ops'] or 'none'}; its ops equal those "
        "of an export of the merged plain model, node for node: "
        f"{lo['export_ops_equal_merged_plain_export']} ({lo['export_matmul_count']} MatMul "
        "nodes); stored values "
        f"{lo['export_stored_values']:,} = the plain model's {lo['plain_model_parameters']:,}: "
        f"{lo['export_stored_values'] == lo['plain_model_parameters']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
