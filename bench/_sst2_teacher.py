"""The 6-layer SST-2 teacher the compression benchmarks compress.

Run as a script, it fine-tunes all-MiniLM-L6-v2 on the first `--train-size`
rows of the SST-2 training set (a subset: the full 67k rows take hours on a
2-core CPU) and writes `model.keras` plus the dev report under `--out`:

    python bench/_sst2_teacher.py [--train-size 8000] [--epochs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import _common  # noqa: F401  (sys.path and KBF_DATA_DIR first)

from keras_bert_ft.data import load_dataset
from keras_bert_ft.data.readers import TextDataset

TEACHER_DIR = Path("/tmp/kbf_bench/sst2_teacher")


def subset(data: TextDataset, n: int) -> TextDataset:
    """The first `n` rows (SST-2 train is already in random order)."""
    return data.subset(range(min(n, len(data))), source=f"{data.source}[:{n}]")


def load_teacher(directory: str | os.PathLike = TEACHER_DIR):
    """The teacher: the output folder of this script, or of
    `bench/finetune_accuracy.py sst2 --save-dir DIR` (trained on all of SST-2 train)."""
    import keras

    import keras_bert_ft.models  # noqa: F401  (registers the model classes)
    import keras_bert_ft.training  # noqa: F401  (and the optimizer the file holds)

    path = Path(directory) / "model.keras"
    if not path.exists():
        raise SystemExit(f"{path} missing: run bench/_sst2_teacher.py first")
    return keras.models.load_model(path)


def main() -> None:
    from keras_bert_ft.training.finetune import FinetuneSettings, finetune

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", default=str(TEACHER_DIR))
    a = p.parse_args()
    splits = load_dataset("sst2")
    train = subset(splits["train"], a.train_size)
    s = FinetuneSettings(epochs=a.epochs, max_length=64, learning_rate=5e-5, batch_size=32,
                         output_dir=a.out, verbose=2)  # fmt: skip
    t = time.perf_counter()
    r = finetune(train, splits["validation"], None, s)
    print(json.dumps({"dev_accuracy": r.report.accuracy, "seconds": time.perf_counter() - t,
                      "train_size": len(train)}))  # fmt: skip


if __name__ == "__main__":
    main()
