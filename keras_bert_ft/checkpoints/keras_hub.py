"""keras-hub `BertBackbone`, `DistilBertBackbone` and `ElectraBackbone`: read from a
preset directory or an object, and build one.

keras-hub's BERT and ELECTRA backbones hard-code the tanh-approximated GELU, so a
model of theirs with the exact GELU (e.g. from Hugging Face) cannot be represented
exactly there; its DistilBERT backbone uses the exact GELU.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np

from keras_bert_ft.checkpoints._common import assign_weights, check_vocab
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError

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


def is_keras_hub_preset(path: str) -> bool:
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


def _preset_vocab(path: str) -> tuple[str | None, bool]:
    vocab = os.path.join(path, "assets", "tokenizer", "vocabulary.txt")
    lowercase = True
    tok_cfg = os.path.join(path, "tokenizer.json")
    if os.path.isfile(tok_cfg):
        with open(tok_cfg, encoding="utf-8") as f:
            lowercase = bool(json.load(f).get("config", {}).get("lowercase", True))
    return (vocab if os.path.isfile(vocab) else None), lowercase


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
    vocab, lowercase = _preset_vocab(path)
    return backbone, vocab, lowercase


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


def save_keras_hub_preset(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as a keras-hub preset directory (backbone + tokenizer)."""
    import keras_hub

    backbone = to_keras_hub(encoder)
    backbone.save_to_preset(path)
    if vocab_file is not None:
        check_vocab(vocab_file, encoder.config.vocab_size)
        tokenizer_cls = getattr(keras_hub.models, _TOKENIZERS[encoder.config.model_type])
        tokenizer = tokenizer_cls(
            vocabulary=os.fspath(vocab_file), lowercase=encoder.config.do_lower_case
        )
        tokenizer.save_to_preset(path)
