"""Two towers vs cross-encoder on MRPC: accuracy, and one query against 1,000 candidates.

Usage: python bench/compression_two_tower.py [--epochs 2] [--seed 0] [--seeds 3]
Both start from all-MiniLM-L6-v2 and train on the MRPC train split, once per
seed; both are evaluated on the MRPC dev split (mean ± sample standard deviation
over the seeds). The query timing uses the first seed's two models.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time

import _compress as compress
import keras
import numpy as np
from _common import mean_spread, seed_summary, write_result

from keras_bert_ft.checkpoints import load_pretrained
from keras_bert_ft.compression.two_tower import (
    TwoTowerClassifier,
    VectorCache,
    pair_dataset,
    pair_features,
    text_encoder,
)
from keras_bert_ft.data import load_dataset
from keras_bert_ft.training.finetune import FinetuneSettings, finetune
from keras_bert_ft.training.optimizers import create_optimizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=3, help="model pairs to train (default 3)")
    a = p.parse_args()
    if a.seeds < 1:
        p.error(f"--seeds must be at least 1, got {a.seeds}")
    seeds = list(range(a.seed, a.seed + a.seeds))
    start = time.perf_counter()
    splits = load_dataset("mrpc")
    train, dev = splits["train"], splits["validation"]
    accuracies = {"two_tower": [], "cross_encoder": []}
    seconds = {"two_tower": [], "cross_encoder": []}
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        # Two towers.
        encoder, tok, _ = load_pretrained("all-minilm-l6-v2")
        tower = TwoTowerClassifier(encoder, 2, hidden_units=(256,), max_length=64)
        steps = math.ceil(len(train) / 32) * a.epochs
        tower.compile(optimizer=create_optimizer(5e-5, steps),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        t = time.perf_counter()
        tower.fit(pair_dataset(pair_features(tok, train.texts, train.pairs), train.labels,
                               shuffle=True, seed=seed), epochs=a.epochs, verbose=2)  # fmt: skip
        seconds["two_tower"].append(time.perf_counter() - t)
        dev_pairs = pair_dataset(pair_features(tok, dev.texts, dev.pairs))
        accuracies["two_tower"].append(
            compress.accuracy(tower.predict(dev_pairs, verbose=0), dev.labels))

        # Cross-encoder: BertClassifier on packed pairs, same recipe as `keras-bert-ft train`.
        t = time.perf_counter()
        settings = FinetuneSettings(epochs=a.epochs, max_length=128, seed=seed, verbose=2)
        crossed = finetune(train, dev, None, settings).model
        seconds["cross_encoder"].append(time.perf_counter() - t)
        accuracies["cross_encoder"].append(
            compress.accuracy(crossed.predict_texts(dev.texts, dev.pairs), dev.labels))
        if seed == seeds[0]:
            tt, cross = tower, crossed
    over_seeds = {k: seed_summary(v) for k, v in accuracies.items()}
    tt_acc, cross_acc = over_seeds["two_tower"]["mean"], over_seeds["cross_encoder"]["mean"]
    tt_seconds = seed_summary(seconds["two_tower"])["mean"]
    cross_seconds = seed_summary(seconds["cross_encoder"])["mean"]

    # One query against N candidates.
    pool = list(dict.fromkeys(train.texts + train.pairs))[: a.candidates]
    query = dev.texts[0]
    cache_dir = tempfile.mkdtemp(prefix="kbf_vectors_")
    try:
        encode = text_encoder(tt, tok)
        cache = VectorCache(cache_dir, tt.fingerprint())
        t = time.perf_counter()
        cache.get(pool, encode)  # offline: fill the cache
        fill_seconds = time.perf_counter() - t

        def two_tower_query():
            fresh = VectorCache(cache_dir, tt.fingerprint())  # vectors read from disk
            return tt.score_vectors(encode([query]), fresh.get(pool, encode))

        def cross_query():
            return cross.predict_texts([query] * len(pool), pool, batch_size=64)

        times = {"two_tower": [], "cross": []}
        for _ in range(a.repeats):
            for name, fn in (("two_tower", two_tower_query), ("cross", cross_query)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        agree = float(np.mean(two_tower_query().argmax(-1) == cross_query().argmax(-1)))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    payload = {
        "seeds": seeds,
        "dev_accuracy": {"two_tower": tt_acc, "cross_encoder": cross_acc},
        "dev_accuracy_over_seeds": over_seeds,
        "train_seconds": {"two_tower": tt_seconds, "cross_encoder": cross_seconds},
        "epochs": a.epochs, "train_pairs": len(train), "dev_pairs": len(dev),
        "query_seconds": med, "query_speedup": med["cross"] / med["two_tower"],
        "cache_fill_seconds": fill_seconds, "candidates": len(pool),
        "label_agreement_on_query": agree, "wall_seconds": time.perf_counter() - start,
    }
    md = (
        f"MRPC: train {len(train)} pairs, dev {len(dev)} pairs; both models start from "
        f"all-MiniLM-L6-v2 and train {a.epochs} epochs (AdamW 5e-5, batch 32), once per seed "
        f"({', '.join(map(str, seeds))}): accuracy is the mean ± sample std over the seeds, "
        "training time the mean, the query timing the first seed's models.\n\n"
        "| model | MRPC dev accuracy | training s | one query vs "
        f"{len(pool)} candidates (median of {a.repeats}, s) |\n| --- | ---: | ---: | ---: |\n"
        f"| cross-encoder (BertClassifier on packed pairs) | "
        f"{mean_spread(over_seeds['cross_encoder'])} | "
        f"{cross_seconds:.0f} | {med['cross']:.3f} |\n"
        f"| two towers (shared encoder, [u, v, abs(u-v), u*v], MLP 256) | "
        f"{mean_spread(over_seeds['two_tower'])} | "
        f"{tt_seconds:.0f} | {med['two_tower']:.3f} |\n\n"
        f"Speed-up of a query with cached candidate vectors: {payload['query_speedup']:.1f}x "
        f"(the two-tower time includes reading the {len(pool)} vectors from the on-disk cache, "
        "one encoder pass for the query and the MLP; the cross-encoder runs "
        f"{len(pool)} pair encodings, tokenization included). Filling the cache once took "
        f"{fill_seconds:.1f} s.\nWall time: {payload['wall_seconds']:.0f} s on a 2-core CPU."
    )
    write_result("compression_two_tower", payload, md)
    print(md)


if __name__ == "__main__":
    main()
