"""Two towers vs cross-encoder on MRPC: accuracy, and one query against 1,000 candidates.

Usage: python bench/compression_two_tower.py [--epochs 2]
Both start from all-MiniLM-L6-v2 and train on the MRPC train split; both
are evaluated on the MRPC dev split.
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
from _common import write_result

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
    a = p.parse_args()
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    splits = load_dataset("mrpc")
    train, dev = splits["train"], splits["validation"]

    # Two towers.
    encoder, tok, _ = load_pretrained("all-minilm-l6-v2")
    tt = TwoTowerClassifier(encoder, 2, hidden_units=(256,), max_length=64)
    steps = math.ceil(len(train) / 32) * a.epochs
    tt.compile(optimizer=create_optimizer(5e-5, steps), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])  # fmt: skip
    t = time.perf_counter()
    tt.fit(pair_dataset(pair_features(tok, train.texts, train.pairs), train.labels,
                        shuffle=True), epochs=a.epochs, verbose=2)  # fmt: skip
    tt_seconds = time.perf_counter() - t
    tt_acc = compress.accuracy(tt.predict(pair_dataset(pair_features(tok, dev.texts, dev.pairs)),
                                          verbose=0), dev.labels)  # fmt: skip

    # Cross-encoder: BertClassifier on packed pairs, same recipe as `keras-bert-ft train`.
    t = time.perf_counter()
    cross = finetune(train, dev, None, FinetuneSettings(epochs=a.epochs, max_length=128,
                                                        verbose=2)).model  # fmt: skip
    cross_seconds = time.perf_counter() - t
    cross_acc = compress.accuracy(cross.predict_texts(dev.texts, dev.pairs), dev.labels)

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
        "dev_accuracy": {"two_tower": tt_acc, "cross_encoder": cross_acc},
        "train_seconds": {"two_tower": tt_seconds, "cross_encoder": cross_seconds},
        "epochs": a.epochs, "train_pairs": len(train), "dev_pairs": len(dev),
        "query_seconds": med, "query_speedup": med["cross"] / med["two_tower"],
        "cache_fill_seconds": fill_seconds, "candidates": len(pool),
        "label_agreement_on_query": agree, "wall_seconds": time.perf_counter() - start,
    }
    md = (
        f"MRPC: train {len(train)} pairs, dev {len(dev)} pairs; both models start from "
        f"all-MiniLM-L6-v2 and train {a.epochs} epochs (AdamW 5e-5, batch 32).\n\n"
        "| model | MRPC dev accuracy | training s | one query vs "
        f"{len(pool)} candidates (median of {a.repeats}, s) |\n| --- | ---: | ---: | ---: |\n"
        f"| cross-encoder (BertClassifier on packed pairs) | {cross_acc:.4f} | "
        f"{cross_seconds:.0f} | {med['cross']:.3f} |\n"
        f"| two towers (shared encoder, [u, v, abs(u-v), u*v], MLP 256) | {tt_acc:.4f} | "
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
