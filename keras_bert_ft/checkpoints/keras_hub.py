"""keras-hub `BertBackbone`, `DistilBertBackbone` and `ElectraBackbone`: read from a
preset directory or an object, and build one.

keras-hub's BERT and ELECTRA backbones hard-code the tanh-approximated GELU, so a
model of theirs with the exact GELU (e.g. from Hugging Face) cannot be represented
exactly there; its DistilBERT backbone uses the exact GELU.

A checkpoint format module (see `keras_bert_ft.checkpoints`): detect, read_config,
read_vocab, load, save. `load` also takes a backbone object.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np

from keras_bert_ft import infra
from keras_bert_ft.checkpoints._common import apply_options, assign_weights, check_vocab
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError

NAME = "keras_hub"
TITLE = "keras-hub backbone preset directory"
REQUIRED_FILES = ("config.json (BertBackbone, DistilBertBackbone or ElectraBackbone)",
                  "model.weights.h5", "assets/tokenizer/vocabulary.txt")

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


# Where the other families differ from BertBackbone.
_FAMILY_FIXED = {
    "bert": {},
    "distilbert": {
        "embeddings/word_embeddings": "token_and_position_embedding/token_embedding/embeddings",
        "embeddings/position_embeddings":
            "token_and_position_embedding/position_embedding/embeddings",
    },
    "electra": {
        "encoder/embedding_hidden_mapping_in/kernel": "embeddings_projection/kernel",
        "encoder/embedding_hidden_mapping_in/bias": "embeddings_projection/bias",
    },
}
_TOKENIZERS = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer",
               "electra": "ElectraTokenizer"}  # fmt: skip
# The GELU each keras-hub backbone applies.
_ACTIVATIONS = {"bert": "gelu_tanh", "distilbert": "gelu_exact", "electra": "gelu_tanh"}
_GELU_WORDS = {"gelu_tanh": "tanh GELU", "gelu_exact": "exact GELU"}


def keras_hub_name(canonical: str, model_type: str = "bert") -> str:
    """The keras-hub backbone weight path of a canonical weight name."""
    fixed = _FAMILY_FIXED[model_type]
    if canonical in fixed:
        return fixed[canonical]
    if canonical in _FIXED:
        return _FIXED[canonical]
    m = re.fullmatch(r"encoder/layer_(\d+)/(.+)/(\w+)", canonical)
    if not m or m.group(2) not in _BLOCK:
        raise KeyError(f"no keras-hub {model_type} backbone weight for {canonical!r}")
    return f"transformer_layer_{m.group(1)}/{_BLOCK[m.group(2)]}/{m.group(3)}"


def detect(path: str) -> bool:
    """Whether `path` holds a keras-hub backbone preset (of any family: unsupported ones
    are then refused by name when the config is read)."""
    cfg = os.path.join(path, "config.json")
    if not (os.path.isfile(cfg) and os.path.isfile(os.path.join(path, "model.weights.h5"))):
        return False
    with open(cfg, encoding="utf-8") as f:
        try:
            d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    return isinstance(d, dict) and str(d.get("class_name", "")).endswith("Backbone")


def _backbone_class(obj) -> str | None:
    # The keras-hub class a backbone object is (or derives from), e.g. "ElectraBackbone".
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("keras_hub") and cls.__name__.endswith("Backbone"):
            return cls.__name__
    return None


def is_backbone(obj) -> bool:
    """Whether `obj` is a keras-hub backbone object (of any family)."""
    return _backbone_class(obj) not in (None, "Backbone")


def config_from_backbone(backbone) -> BertConfig:
    """The config of a keras-hub backbone; CheckpointFormatError for unsupported families."""
    return BertConfig.from_keras_hub_dict(backbone.get_config(), _backbone_class(backbone))


def load_backbone_weights(encoder, backbone) -> None:
    """Copy a keras-hub backbone's weights into `encoder` (EinsumDense kernels flattened)."""
    weights = {w.path: w for w in backbone.weights}
    model_type = encoder.config.model_type

    def fetch(canonical):
        name = keras_hub_name(canonical, model_type)
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


def read_vocab(path: str) -> str | None:
    """The preset's `assets/tokenizer/vocabulary.txt`, or None."""
    vocab = os.path.join(path, "assets", "tokenizer", "vocabulary.txt")
    return vocab if os.path.isfile(vocab) else None


def _preset_lowercase(path: str) -> bool:
    tok_cfg = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(tok_cfg):
        return True
    with open(tok_cfg, encoding="utf-8") as f:
        return bool(json.load(f).get("config", {}).get("lowercase", True))


def read_config(path: str) -> BertConfig:
    """The encoder config of a preset directory (its backbone's config.json), lowercasing
    from its tokenizer; CheckpointFormatError for unsupported families."""
    config = BertConfig.from_json_file(os.path.join(path, "config.json"), fmt="keras_hub")
    return config.replace(do_lower_case=_preset_lowercase(path))


def read_keras_hub(source):
    """A backbone, its vocab file and lowercasing from a preset dir or an object.

    A preset's config is checked first, so an unsupported family is refused by
    name before its weights load.
    """
    if is_backbone(source):
        return source, None, True
    import keras_hub

    path = os.fspath(source)
    config_file = os.path.join(path, "config.json")
    config = BertConfig.from_json_file(config_file, fmt="keras_hub")
    cls = getattr(keras_hub.models, config.keras_hub_class)
    try:
        backbone = cls.from_preset(path)
    except (ValueError, OSError) as e:
        raise CheckpointFormatError(f"{path}: keras-hub could not load the preset ({e})") from e
    return backbone, read_vocab(path), _preset_lowercase(path)


def load(source, num_layers: int | None = None, **overrides):
    """A `BertEncoder` of the backbone's family filled from a preset directory or a
    backbone object; returns `(encoder, config, vocab)`, the config cut to `num_layers`
    and with `overrides` set."""
    from keras_bert_ft.layers import BertEncoder

    backbone, vocab, lowercase = read_keras_hub(source)
    config = config_from_backbone(backbone).replace(do_lower_case=lowercase)
    config = apply_options(config, num_layers, overrides)
    encoder = BertEncoder(config)
    load_backbone_weights(encoder, backbone)
    check_vocab(vocab, config.vocab_size)
    return encoder, config, vocab


def to_keras_hub(encoder):
    """A keras-hub backbone of the encoder's family holding its weights.

    Warns when the backbone cannot apply the encoder's activation (keras-hub's
    BERT and ELECTRA backbones always use the tanh GELU, its DistilBERT backbone
    the exact one), so its outputs will differ slightly (about 1e-3); and when the
    backbone has a pooler the encoder lacks (ElectraBackbone always has one).
    """
    import keras_hub

    config = encoder.config
    cls_name = config.keras_hub_class
    backbone_act = _ACTIVATIONS[config.model_type]
    if config.hidden_act != backbone_act:
        warnings.warn(
            f"keras-hub {cls_name} uses the {_GELU_WORDS[backbone_act]}; this encoder uses "
            f"{config.hidden_act}, "
            "so the backbone's outputs will differ slightly",
            stacklevel=2,
        )
    backbone = getattr(keras_hub.models, cls_name)(**config.to_keras_hub_dict())
    weights = {w.path: w for w in backbone.weights}
    if "pooled_dense/kernel" in weights and not config.pooler:
        warnings.warn(
            f"keras-hub {cls_name} has a pooler but this encoder has none: the backbone's "
            "pooled_output comes from an untrained (randomly initialised) dense layer",
            stacklevel=2,
        )
    for name, var in encoder.weight_map().items():
        target = weights[keras_hub_name(name, config.model_type)]
        target.assign(np.asarray(var.numpy()).reshape(tuple(target.shape)))
    return backbone


def save(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as a keras-hub preset directory (backbone + tokenizer).

    The folder is written beside `path` and renamed onto it when complete, replacing
    a folder already there.
    """
    import keras_hub

    if vocab_file is not None:
        check_vocab(vocab_file, encoder.config.vocab_size)
    backbone = to_keras_hub(encoder)
    with infra.atomic_path(path, directory=True) as tmp:
        backbone.save_to_preset(str(tmp))
        if vocab_file is not None:
            tokenizer_cls = getattr(keras_hub.models, _TOKENIZERS[encoder.config.model_type])
            tokenizer = tokenizer_cls(
                vocabulary=os.fspath(vocab_file), lowercase=encoder.config.do_lower_case
            )
            tokenizer.save_to_preset(str(tmp))
