"""Early exit on SST-2: accuracy, mean layers and batch-1 latency over thresholds.

Usage: python bench/compression_early_exit.py [--train-size 8000] [--epochs 1]
                                             [--seed 0] [--seeds 3]
Starts from the encoder of the SST-2 teacher (bench/_sst2_teacher.py), adds
an exit after each of its 6 layers and trains all of it jointly (mean of the
exits' losses) on the same training rows, once per seed (a fresh copy of the
teacher each time). Accuracy and mean layers per threshold are the mean ± sample
standard deviation over the seeds, from batches of 32 (each row still leaves on
its own); the batch-1 latency is the first seed's model, one dev row at a time.
"""

from __future__ import annotations

import argparse
import math
import time

import _compress as compress
import keras
from _common import mean_spread, seed_summary, write_result
from _sst2_teacher import load_teacher, subset

from keras_bert_ft.compression.early_exit import EarlyExitClassifier
from keras_bert_ft.data import load_dataset
from keras_bert_ft.data.pipeline import dataset_from
from keras_bert_ft.training.optimizers import create_optimizer

THRESHOLDS = (1.01, 0.99, 0.97, 0.95, 0.9, 0.8, 0.7)


def train_exits(train, epochs: int, learning_rate: float, seed: int):
    """A fresh copy of the teacher's encoder with an exit per layer, trained jointly."""
    keras.utils.set_random_seed(seed)
    teacher = load_teacher()
    tok = teacher.tokenizer
    model = EarlyExitClassifier(teacher.encoder, 2, max_length=teacher.max_length,
                                tokenizer_config=teacher.tokenizer_config)  # fmt: skip
    steps = math.ceil(len(train) / 32) * epochs
    model.compile(optimizer=create_optimizer(learning_rate, steps), loss=model.default_loss(),
                  metrics=model.default_metrics())  # fmt: skip
    ds = dataset_from(train, tok, shuffle=True, seed=seed, batch_size=32, max_length=64)
    t = time.perf_counter()
    history = model.fit(ds, epochs=epochs, verbose=2)
    return model, tok, history, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=3, help="models to train (default 3)")
    a = p.parse_args()
    if a.seeds < 1:
        p.error(f"--seeds must be at least 1, got {a.seeds}")
    seeds = list(range(a.seed, a.seed + a.seeds))
    start = time.perf_counter()
    splits = load_dataset("sst2")
    train, dev = subset(splits["train"], a.train_size), splits["validation"]

    per_seed = []
    for seed in seeds:
        model, tok, history, train_seconds = train_exits(train, a.epochs, a.learning_rate, seed)
        x_dev = tok.encode_batch(dev.texts, max_length=64)
        per_exit = model.predict(x_dev, batch_size=64, verbose=0)
        results = [model.predict_early_exit(x_dev, th, batch_size=32) for th in THRESHOLDS]
        per_seed.append({
            "seed": seed, "train_seconds": train_seconds,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "exit_accuracy": [compress.accuracy(per_exit[:, i], dev.labels)
                              for i in range(model.num_exits)],
            "dev_accuracy": [compress.accuracy(r.probs, dev.labels) for r in results],
            "mean_layers": [r.mean_layers for r in results],
        })  # fmt: skip
        if seed == seeds[0]:
            first_model = model

    # Batch-1 latency (and its accuracy, which must equal the batched one) of the first model.
    first_model.predict_early_exit(x_dev, 1.01, batch_size=1)  # trace every step once
    timed = [first_model.predict_early_exit(x_dev, th, batch_size=1) for th in THRESHOLDS]
    first_ms = [1000 * r.seconds / len(dev) for r in timed]
    num_exits = first_model.num_exits
    rows = []
    for i, th in enumerate(THRESHOLDS):
        changes = [100 * (s["dev_accuracy"][i] - s["dev_accuracy"][0]) for s in per_seed]
        rows.append({
            "threshold": th,
            "dev_accuracy": seed_summary([s["dev_accuracy"][i] for s in per_seed]),
            "accuracy_change_points": seed_summary(changes),
            "mean_layers": seed_summary([s["mean_layers"][i] for s in per_seed]),
            "layer_fraction": seed_summary([s["mean_layers"][i] / num_exits for s in per_seed]),
            "first_seed_batch1": {"dev_accuracy": compress.accuracy(timed[i].probs, dev.labels),
                                  "mean_layers": timed[i].mean_layers,
                                  "ms_per_example": first_ms[i],
                                  "speedup": first_ms[0] / first_ms[i]},
        })  # fmt: skip
    payload = {
        "train_subset": f"first {len(train)} of {len(splits['train'])} SST-2 train rows",
        "epochs": a.epochs, "seeds": seeds, "per_seed": per_seed, "thresholds": rows,
        "wall_seconds": time.perf_counter() - start,
    }
    lines = ["| threshold | SST-2 dev accuracy | change | % of layers | "
             "ms/example (batch 1, seed " f"{seeds[0]}) | speed-up |", "|" + " ---: |" * 6]
    for r in rows:
        name = "full depth" if r["threshold"] > 1 else f"{r['threshold']:.2f}"
        b1 = r["first_seed_batch1"]
        lines.append(f"| {name} | {mean_spread(r['dev_accuracy'])} | "
                     f"{mean_spread(r['accuracy_change_points'], 2)} pt | "
                     f"{100 * r['layer_fraction']['mean']:.0f}% | "
                     f"{b1['ms_per_example']:.2f} | {b1['speedup']:.2f}x |")
    exit_means = [seed_summary([s["exit_accuracy"][i] for s in per_seed])["mean"]
                  for i in range(num_exits)]
    md = (
        f"Early-exit model: the SST-2 teacher's 6-layer encoder (bench/_sst2_teacher.py, "
        f"trained on {payload['train_subset']}) with an exit (masked mean pooling + softmax) "
        f"after every layer, all trained jointly for {a.epochs} epoch(s) on the same rows, "
        f"once per seed ({', '.join(map(str, seeds))}; "
        f"{sum(s['train_seconds'] for s in per_seed) / len(seeds):.0f} s each). "
        f"Dev: {len(dev)} rows. Accuracy, change and layers: mean ± sample std over the seeds "
        "(rows in batches of 32, each leaving at its own layer); latency: the first seed's "
        "model, one row at a time.\n\n"
        "Accuracy of each exit alone (mean over seeds): "
        + ", ".join(f"L{i + 1} {v:.4f}" for i, v in enumerate(exit_means))
        + "\n\n" + "\n".join(lines) + "\n\n"
        f"Wall time: {payload['wall_seconds']:.0f} s on a 2-core CPU."
    )
    write_result("compression_early_exit", payload, md)
    print(md)


if __name__ == "__main__":
    main()
