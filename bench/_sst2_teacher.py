"""Shared by the compression benchmarks: the 6-layer SST-2 teacher.

Fine-tunes all-MiniLM-L6-v2 on the first `--train-size` rows of the SST-2
training set (a subset: the full 67k rows take hours on a 2-core CPU) and
writes `model.keras` plus the dev report under `--out`.
"""

from __future__ import annotations

import argparse
import json
import time

from keras_bert_ft.data import load_dataset
from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.training.finetune import FinetuneSettings, finetune

TEACHER_DIR = "/tmp/kbf_bench/sst2_teacher"


def subset(data: TextDataset, n: int) -> TextDataset:
    """The first `n` rows (SST-2 train is already in random order)."""
    return TextDataset(data.texts[:n], None if data.pairs is None else data.pairs[:n],
                       data.labels[:n], data.label_vocab, source=f"{data.source}[:{n}]")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", default=TEACHER_DIR)
    a = p.parse_args()
    splits = load_dataset("sst2")
    train = subset(splits["train"], a.train_size)
    s = FinetuneSettings(epochs=a.epochs, max_length=64, learning_rate=5e-5, batch_size=32,
                         output_dir=a.out, verbose=2)
    t = time.perf_counter()
    r = finetune(train, splits["validation"], None, s)
    print(json.dumps({"dev_accuracy": r.report.accuracy, "seconds": time.perf_counter() - t,
                      "train_size": len(train)}))


if __name__ == "__main__":
    main()
