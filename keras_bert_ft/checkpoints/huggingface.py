"""Hugging Face directories: `config.json`, `model.safetensors` or
`pytorch_model.bin`, `vocab.txt`."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from keras_bert_ft.checkpoints._common import (
    assign_weights,
    atomic_write,
    check_vocab,
    copy_file_atomic,
)
from keras_bert_ft.config import BertConfig

REQUIRED_FILES = ("config.json", "model.safetensors or pytorch_model.bin", "vocab.txt")


def is_hf_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, f)) for f in ("model.safetensors", "pytorch_model.bin")
    )


def hf_name(canonical: str) -> str:
    """The Hugging Face parameter name of a canonical weight name (no model prefix)."""
    *parts, last = canonical.split("/")
    suffix = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}.get(last)
    if suffix is None:  # an embedding table: the name itself is the module
        parts, suffix = [*parts, last], "weight"
    return re.sub(r"layer_(\d+)", r"layer.\1", ".".join(parts)) + "." + suffix


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """All tensors of a HF directory's weight file, as float32 numpy arrays."""
    st = os.path.join(path, "model.safetensors")
    if os.path.isfile(st):
        try:
            from safetensors.numpy import load_file

            state = load_file(st)
        except (TypeError, ValueError):  # bfloat16 has no numpy dtype
            from safetensors.tensorflow import load_file

            state = {k: v.numpy() for k, v in load_file(st).items()}
        return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
    bin_path = os.path.join(path, "pytorch_model.bin")
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{bin_path} is a PyTorch pickle and reading it needs torch, which is not "
            "installed. Install torch (the CPU build is enough), or convert the "
            "directory to model.safetensors."
        ) from e
    # weights_only=True: never run code from the pickle.
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _is_transposed(canonical: str) -> bool:
    # torch Linear stores (out, in); Keras Dense (in, out).
    return canonical.endswith("/kernel")


def load_hf_weights(encoder, state: dict[str, np.ndarray], where: str) -> None:
    """Assign a HF BERT state dict (with or without a `bert.` prefix) to `encoder`."""
    prefix = next(
        (p for p in ("", "bert.", "model.") if p + "embeddings.word_embeddings.weight" in state),
        "",
    )

    def fetch(canonical):
        name = prefix + hf_name(canonical)
        value = state.get(name)
        if value is None:  # old checkpoints call LayerNorm parameters gamma / beta
            legacy = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta"
            )
            value = state.get(legacy)
        transposed = _is_transposed(canonical)
        if value is not None and transposed:
            value = value.T
        return name, value, transposed

    assign_weights(encoder, fetch, where)


def read_hf_config(path: str) -> BertConfig:
    config = BertConfig.from_json_file(os.path.join(path, "config.json"), fmt="hf")
    tok_cfg = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(tok_cfg):
        with open(tok_cfg, encoding="utf-8") as f:
            config.do_lower_case = bool(json.load(f).get("do_lower_case", config.do_lower_case))
    return config


def load_hf(path: str, config: BertConfig, encoder) -> str | None:
    """Fill `encoder` from the HF directory `path`; returns the vocab file if any."""
    vocab = os.path.join(path, "vocab.txt")
    vocab = vocab if os.path.isfile(vocab) else None
    state = read_state_dict(path)
    load_hf_weights(encoder, state, where=path)
    check_vocab(vocab, encoder.config.vocab_size)
    return vocab


def save_hf(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as a HF directory that `transformers.BertModel` can load."""
    from safetensors.numpy import save_file

    os.makedirs(path, exist_ok=True)
    config = encoder.config
    if vocab_file is not None:
        check_vocab(vocab_file, config.vocab_size)
        copy_file_atomic(vocab_file, os.path.join(path, "vocab.txt"))
    state = {}
    for name, var in encoder.weight_map().items():
        value = np.asarray(var.numpy(), dtype=np.float32)
        state[hf_name(name)] = np.ascontiguousarray(value.T if _is_transposed(name) else value)
    atomic_write(
        os.path.join(path, "model.safetensors"),
        lambda tmp: save_file(state, tmp, metadata={"format": "pt"}),
    )
    _write_json(os.path.join(path, "config.json"), config.to_hf_dict())
    _write_json(
        os.path.join(path, "tokenizer_config.json"),
        {"do_lower_case": config.do_lower_case, "tokenizer_class": "BertTokenizer"},
    )


def _write_json(path: str, obj) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)

    atomic_write(path, write)
