"""keras-hub `BertBackbone`: read from a preset directory or an object, and build one.

keras-hub's BertBackbone hard-codes the tanh-approximated GELU, so a model with
the exact GELU (e.g. from Hugging Face) cannot be represented exactly there.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np

from keras_bert_ft.checkpoints._common import assign_weights, check_vocab
from keras_bert_ft.config import BertConfig

REQUIRED_FILES = ("config.json (BertBackbone)", "model.weights.h5",
                  "assets/tokenizer/vocabulary.txt")

_FIXED = {
    "embeddings/word_embeddings": "token_embedding/embeddings",
    "embeddings/position_embeddings": "position_embedding/embeddings",
    "embeddings/token_type_embeddings": "segment_embedding/embeddings",
    "embeddings/LayerNorm/gamma": "embeddings_layer_norm/gamma",
    "embeddings/LayerNorm/beta": "embeddings_layer_norm/beta",
    "pooler/dense/kernel": "pooled_dense/kernel",
    "pooler/dense/bias": "pooled_dense/bias",
}
_BLOCK = {
    "attention/self/query": "self_attention_layer/query",
    "attention/self/key": "self_attention_layer/key",
    "attention/self/value": "self_attention_layer/value",
    "attention/output/dense": "self_attention_layer/attention_output",
    "attention/output/LayerNorm": "self_attention_layer_norm",
    "intermediate/dense": "feedforward_intermediate_dense",
    "output/dense": "feedforward_output_dense",
    "output/LayerNorm": "feedforward_layer_norm",
}


def keras_hub_name(canonical: str) -> str:
    """The BertBackbone weight path of a canonical weight name."""
    if canonical in _FIXED:
        return _FIXED[canonical]
    m = re.fullmatch(r"encoder/layer_(\d+)/(.+)/(\w+)", canonical)
    if not m or m.group(2) not in _BLOCK:
        raise KeyError(f"no keras-hub BertBackbone weight for {canonical!r}")
    return f"transformer_layer_{m.group(1)}/{_BLOCK[m.group(2)]}/{m.group(3)}"


def is_keras_hub_preset(path: str) -> bool:
    cfg = os.path.join(path, "config.json")
    if not (os.path.isfile(cfg) and os.path.isfile(os.path.join(path, "model.weights.h5"))):
        return False
    with open(cfg, encoding="utf-8") as f:
        return "BertBackbone" in str(json.load(f).get("class_name", ""))


def is_backbone(obj) -> bool:
    return type(obj).__name__ == "BertBackbone" and hasattr(obj, "token_embedding")


def config_from_backbone(backbone) -> BertConfig:
    return BertConfig.from_keras_hub_dict(backbone.get_config())


def load_backbone_weights(encoder, backbone) -> None:
    """Copy a BertBackbone's weights into `encoder` (EinsumDense kernels flattened)."""
    weights = {w.path: w for w in backbone.weights}

    def fetch(canonical):
        name = keras_hub_name(canonical)
        w = weights.get(name)
        if w is None:
            return name, None, False
        value = np.asarray(w.numpy())
        target = tuple(encoder.weight_map()[canonical].shape)
        # Per-head shapes (hidden, heads, head_size) etc. flatten to the dense shapes;
        # only reshape when the element count agrees, so bad shapes are still reported.
        if value.shape != target and value.size == int(np.prod(target)):
            value = value.reshape(target)
        return name, value, False

    assign_weights(encoder, fetch, where=f"keras-hub {backbone.name}")


def _preset_vocab(path: str) -> tuple[str | None, bool]:
    vocab = os.path.join(path, "assets", "tokenizer", "vocabulary.txt")
    lowercase = True
    tok_cfg = os.path.join(path, "tokenizer.json")
    if os.path.isfile(tok_cfg):
        with open(tok_cfg, encoding="utf-8") as f:
            lowercase = bool(json.load(f).get("config", {}).get("lowercase", True))
    return (vocab if os.path.isfile(vocab) else None), lowercase


def read_keras_hub(source):
    """A BertBackbone, its vocab file and lowercasing from a preset dir or an object."""
    if is_backbone(source):
        return source, None, True
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(os.fspath(source))
    vocab, lowercase = _preset_vocab(os.fspath(source))
    return backbone, vocab, lowercase


def to_keras_hub(encoder):
    """A keras-hub BertBackbone holding `encoder`'s weights.

    Warns when `encoder` uses the exact GELU: BertBackbone always applies the tanh
    form, so its outputs will differ slightly (about 1e-3).
    """
    import keras_hub

    config = encoder.config
    if config.hidden_act != "gelu_tanh":
        warnings.warn(
            f"keras-hub BertBackbone uses the tanh GELU; this encoder uses {config.hidden_act}, "
            "so the backbone's outputs will differ slightly",
            stacklevel=2,
        )
    backbone = keras_hub.models.BertBackbone(**config.to_keras_hub_dict())
    weights = {w.path: w for w in backbone.weights}
    for name, var in encoder.weight_map().items():
        target = weights[keras_hub_name(name)]
        target.assign(np.asarray(var.numpy()).reshape(tuple(target.shape)))
    return backbone


def save_keras_hub_preset(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as a keras-hub preset directory (backbone + tokenizer)."""
    import keras_hub

    backbone = to_keras_hub(encoder)
    backbone.save_to_preset(path)
    if vocab_file is not None:
        check_vocab(vocab_file, encoder.config.vocab_size)
        tokenizer = keras_hub.models.BertTokenizer(
            vocabulary=os.fspath(vocab_file), lowercase=encoder.config.do_lower_case
        )
        tokenizer.save_to_preset(path)
