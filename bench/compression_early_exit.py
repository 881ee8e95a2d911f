"""Early exit on SST-2: accuracy, mean layers and batch-1 latency over thresholds.

Usage: python bench/compression_early_exit.py [--train-size 8000] [--epochs 1]
Starts from the encoder of the SST-2 teacher (bench/_sst2_teacher.py), adds
an exit after each of its 6 layers and trains all of it jointly (mean of the
exits' losses) on the same training rows.
"""

from __future__ import annotations

import argparse
import math
import time

import _compress as compress
import keras
from _common import write_result
from _sst2_teacher import load_teacher, subset

from keras_bert_ft.compression.early_exit import EarlyExitClassifier
from keras_bert_ft.data import load_dataset
from keras_bert_ft.data.pipeline import dataset_from
from keras_bert_ft.training.optimizers import create_optimizer

THRESHOLDS = (1.01, 0.99, 0.97, 0.95, 0.9, 0.8, 0.7)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    a = p.parse_args()
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    splits = load_dataset("sst2")
    train, dev = subset(splits["train"], a.train_size), splits["validation"]
    teacher = load_teacher()
    tok = teacher.tokenizer
    model = EarlyExitClassifier(teacher.encoder, 2, max_length=teacher.max_length,
                                tokenizer_config=teacher.tokenizer_config)  # fmt: skip
    steps = math.ceil(len(train) / 32) * a.epochs
    model.compile(optimizer=create_optimizer(a.learning_rate, steps), loss=model.default_loss(),
                  metrics=model.default_metrics())  # fmt: skip
    ds = dataset_from(train, tok, shuffle=True, seed=0, batch_size=32, max_length=64)
    t = time.perf_counter()
    history = model.fit(ds, epochs=a.epochs, verbose=2)
    train_seconds = time.perf_counter() - t

    x_dev = tok.encode_batch(dev.texts, max_length=64)
    per_exit = model.predict(x_dev, batch_size=64, verbose=0)
    exit_acc = [compress.accuracy(per_exit[:, i], dev.labels) for i in range(model.num_exits)]
    model.predict_early_exit(x_dev, 1.01, batch_size=1)  # trace every step once
    rows = []
    for th in THRESHOLDS:
        r = model.predict_early_exit(x_dev, th, batch_size=1)
        rows.append({"threshold": th, "dev_accuracy": compress.accuracy(r.probs, dev.labels),
                     "mean_layers": r.mean_layers,
                     "layer_fraction": r.mean_layers / model.num_exits,
                     "ms_per_example": 1000 * r.seconds / len(dev)})  # fmt: skip
    full = rows[0]
    for r in rows:
        r["accuracy_change_points"] = 100 * (r["dev_accuracy"] - full["dev_accuracy"])
        r["speedup"] = full["ms_per_example"] / r["ms_per_example"]
    batched = model.predict_early_exit(x_dev, 0.9, batch_size=32)
    payload = {
        "train_subset": f"first {len(train)} of {len(splits['train'])} SST-2 train rows",
        "epochs": a.epochs, "train_seconds": train_seconds,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "exit_accuracy": exit_acc, "thresholds": rows,
        "batched_check": {"threshold": 0.9, "batch_size": 32,
                          "dev_accuracy": compress.accuracy(batched.probs, dev.labels),
                          "mean_layers": batched.mean_layers},
        "wall_seconds": time.perf_counter() - start,
    }
    lines = ["| threshold | SST-2 dev accuracy | change | mean layers | % of layers | "
             "ms/example (batch 1) | speed-up |", "|" + " ---: |" * 7]
    for r in rows:
        name = "full depth" if r["threshold"] > 1 else f"{r['threshold']:.2f}"
        lines.append(f"| {name} | {r['dev_accuracy']:.4f} | {r['accuracy_change_points']:+.2f} pt"
                     f" | {r['mean_layers']:.2f} | {100 * r['layer_fraction']:.0f}% | "
                     f"{r['ms_per_example']:.2f} | {r['speedup']:.2f}x |")
    md = (
        f"Early-exit model: the SST-2 teacher's 6-layer encoder (bench/_sst2_teacher.py, "
        f"trained on {payload['train_subset']}) with an exit (masked mean pooling + softmax) "
        f"after every layer, all trained jointly for {a.epochs} epoch(s) on the same rows "
        f"({train_seconds:.0f} s). Dev: {len(dev)} rows, one at a time (batch 1).\n\n"
        "Accuracy of each exit alone: " + ", ".join(f"L{i + 1} {v:.4f}"
                                                     for i, v in enumerate(exit_acc))
        + "\n\n" + "\n".join(lines) + "\n\n"
        f"Batched (32 rows, threshold 0.9, rows leaving at different layers): accuracy "
        f"{payload['batched_check']['dev_accuracy']:.4f}, mean layers "
        f"{batched.mean_layers:.2f}.\nWall time: {payload['wall_seconds']:.0f} s on a 2-core "
        "CPU."
    )
    write_result("compression_early_exit", payload, md)
    print(md)


if __name__ == "__main__":
    main()
