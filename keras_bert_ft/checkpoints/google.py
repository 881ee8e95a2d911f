"""Google's original BERT TF checkpoints: `bert_config.json`, `bert_model.ckpt.*`,
`vocab.txt`, with variables named `bert/embeddings/...`, `bert/encoder/layer_N/...`."""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from keras_bert_ft.checkpoints._common import (
    assign_weights,
    atomic_write,
    check_vocab,
    copy_file_atomic,
)
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError

REQUIRED_FILES = ("bert_config.json", "bert_model.ckpt.index + bert_model.ckpt.data-*", "vocab.txt")
PREFIX = "bert/"


def checkpoint_prefix(path: str) -> str | None:
    """The checkpoint prefix in directory `path` (`bert_model.ckpt`, else any `*.ckpt*`)."""
    preferred = os.path.join(path, "bert_model.ckpt")
    if os.path.isfile(preferred + ".index"):
        return preferred
    indexes = sorted(glob.glob(os.path.join(path, "*.index")))
    return indexes[0][: -len(".index")] if indexes else None


def is_google_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "bert_config.json")) and (
        checkpoint_prefix(path) is not None
    )


def read_google_config(path: str) -> BertConfig:
    config = BertConfig.from_json_file(os.path.join(path, "bert_config.json"), fmt="google")
    # Google's releases say "cased" in the directory name (cased_L-12_H-768_A-12).
    name = os.path.basename(os.path.abspath(path)).lower()
    config.do_lower_case = not ("cased" in name and "uncased" not in name)
    return config


def load_google(path: str, encoder) -> str | None:
    """Fill `encoder` from the Google checkpoint directory `path`; returns the vocab file."""
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()

    def fetch(canonical):
        name = PREFIX + canonical
        value = reader.get_tensor(name) if name in shapes else None
        return name, value, False

    assign_weights(encoder, fetch, where=prefix)
    vocab = os.path.join(path, "vocab.txt")
    vocab = vocab if os.path.isfile(vocab) else None
    check_vocab(vocab, encoder.config.vocab_size)
    return vocab


def save_google(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as `bert_config.json` + `bert_model.ckpt` (+ `vocab.txt`).

    Only BERT encoders: the format has no names for other families.
    """
    import tensorflow as tf

    model_type = encoder.config.model_type
    if model_type != "bert":
        raise CheckpointFormatError(
            f"Google BERT checkpoints hold BERT models only, not {model_type!r}; save this "
            "encoder with save_hf or save_keras_hub_preset"
        )
    os.makedirs(path, exist_ok=True)
    if vocab_file is not None:
        check_vocab(vocab_file, encoder.config.vocab_size)
        copy_file_atomic(vocab_file, os.path.join(path, "vocab.txt"))
    items = sorted(encoder.weight_map().items())
    # SaveV2 writes exactly these names, as Google's tf.compat.v1.Saver did.
    tf.raw_ops.SaveV2(
        prefix=os.path.join(path, "bert_model.ckpt"),
        tensor_names=[PREFIX + n for n, _ in items],
        shape_and_slices=[""] * len(items),
        tensors=[np.asarray(v.numpy(), dtype=np.float32) for _, v in items],
    )

    def write_config(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(encoder.config.to_google_dict(), f, indent=2)

    atomic_write(os.path.join(path, "bert_config.json"), write_config)
