"""Google's original BERT TF checkpoints: `bert_config.json`, `bert_model.ckpt.*`,
`vocab.txt`, with variables named `bert/embeddings/...`, `bert/encoder/layer_N/...`.

A checkpoint format module (see `keras_bert_ft.checkpoints`): detect, read_config,
read_vocab, load, save."""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np

from keras_bert_ft.checkpoints._common import apply_options, assign_weights, check_vocab
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.infra import atomic_write

NAME = "google"
TITLE = "Google TF checkpoint directory"
REQUIRED_FILES = ("bert_config.json", "bert_model.ckpt.index + bert_model.ckpt.data-*", "vocab.txt")
PREFIX = "bert/"


def checkpoint_prefix(path: str) -> str | None:
    """The checkpoint prefix in directory `path` (`bert_model.ckpt`, else any `*.ckpt*`)."""
    preferred = os.path.join(path, "bert_model.ckpt")
    if os.path.isfile(preferred + ".index"):
        return preferred
    indexes = sorted(glob.glob(os.path.join(path, "*.index")))
    return indexes[0][: -len(".index")] if indexes else None


def detect(path: str) -> bool:
    """Whether the directory `path` holds a Google checkpoint (`bert_config.json` + ckpt)."""
    return os.path.isfile(os.path.join(path, "bert_config.json")) and (
        checkpoint_prefix(path) is not None
    )


def read_config(path: str) -> BertConfig:
    """The encoder config in `bert_config.json`; cased or not from the directory name."""
    config = BertConfig.from_json_file(os.path.join(path, "bert_config.json"), fmt="google")
    # Google's releases say "cased" in the directory name (cased_L-12_H-768_A-12).
    name = os.path.basename(os.path.abspath(path)).lower()
    config.do_lower_case = not ("cased" in name and "uncased" not in name)
    return config


def read_vocab(path: str) -> str | None:
    """The directory's `vocab.txt`, or None."""
    vocab = os.path.join(path, "vocab.txt")
    return vocab if os.path.isfile(vocab) else None


def load(path: str, num_layers: int | None = None, **overrides):
    """A `BertEncoder` filled from the checkpoint directory `path`; returns
    `(encoder, config, vocab)`, the config cut to `num_layers` and with `overrides` set."""
    import tensorflow as tf

    from keras_bert_ft.layers import BertEncoder

    config = apply_options(read_config(path), num_layers, overrides)
    encoder = BertEncoder(config)
    prefix = checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()

    def fetch(canonical):
        name = PREFIX + canonical
        value = reader.get_tensor(name) if name in shapes else None
        return name, value, False

    assign_weights(encoder, fetch, where=prefix)
    vocab = read_vocab(path)
    check_vocab(vocab, config.vocab_size)
    return encoder, config, vocab


def save(encoder, path: str, vocab_file: str | None = None) -> None:
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
        atomic_write(os.path.join(path, "vocab.txt"), lambda tmp: shutil.copyfile(vocab_file, tmp))
    items = sorted(encoder.weight_map().items())
    # SaveV2 writes exactly these names, as Google's tf.compat.v1.Saver did.
    tf.raw_ops.SaveV2(
        prefix=os.path.join(path, "bert_model.ckpt"),
        tensor_names=[PREFIX + n for n, _ in items],
        shape_and_slices=[""] * len(items),
        tensors=[np.asarray(v.numpy(), dtype=np.float32) for _, v in items],
    )
    config_json = json.dumps(encoder.config.to_google_dict(), indent=2)
    atomic_write(os.path.join(path, "bert_config.json"), config_json)
