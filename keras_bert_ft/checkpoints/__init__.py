"""Load a pretrained BERT encoder from any supported format, and write it back out.

`load_pretrained(source)` detects the format from what `source` is or holds:
a Hugging Face directory, a Google TF checkpoint directory, a TF-Hub SavedModel
(path or hub handle), a keras-hub backbone (preset directory or object), a
packaged model name (`all-minilm-l6-v2`) or a Hugging Face Hub name.
Besides BERT, the WordPiece families DistilBERT and ELECTRA load from Hugging
Face directories and keras-hub presets (`BertConfig.model_type`); other
families (RoBERTa, XLM-R, DeBERTa, ALBERT, ...) are recognised and refused
with a `CheckpointFormatError` naming the part that is not supported.
`inspect_pretrained(source)` reads only what a source says about itself (its
config and vocabulary), so that options can be checked before any weights load.
Sources that cannot be used raise `ModelNotFoundError` or `CheckpointFormatError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from keras_bert_ft.checkpoints import google, huggingface, keras_hub, names, tfhub
from keras_bert_ft.checkpoints._common import VocabSource, check_vocab, count_vocab, tokenizer_for
from keras_bert_ft.checkpoints.google import save_google
from keras_bert_ft.checkpoints.huggingface import save_hf
from keras_bert_ft.checkpoints.keras_hub import save_keras_hub_preset, to_keras_hub
from keras_bert_ft.checkpoints.tfhub import HubEncoderLayer, save_tfhub
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError, ModelNotFoundError

__all__ = [
    "CheckpointFormatError",
    "HubEncoderLayer",
    "ModelNotFoundError",
    "PretrainedInfo",
    "detect_format",
    "inspect_pretrained",
    "load_pretrained",
    "locate_pretrained",
    "save_google",
    "save_hf",
    "save_keras_hub_preset",
    "save_tfhub",
    "to_keras_hub",
]

FORMATS = {
    "hf": ("Hugging Face directory", huggingface.REQUIRED_FILES),
    "google": ("Google TF checkpoint directory", google.REQUIRED_FILES),
    "tfhub": ("TF-Hub SavedModel directory", tfhub.REQUIRED_FILES),
    "keras_hub": ("keras-hub backbone preset directory", keras_hub.REQUIRED_FILES),
}


def detect_format(path: str) -> str:
    """Which format the directory `path` holds: "hf", "google", "tfhub" or "keras_hub"."""
    if not os.path.isdir(path):
        raise CheckpointFormatError(f"{path} is a file, not a directory holding a BERT checkpoint")
    if keras_hub.is_keras_hub_preset(path):
        return "keras_hub"
    if huggingface.is_hf_dir(path):
        return "hf"
    if google.is_google_dir(path):
        return "google"
    if tfhub.is_saved_model_dir(path):
        return "tfhub"
    looked_for = "; ".join(f"{title} ({', '.join(files)})" for title, files in FORMATS.values())
    found = ", ".join(sorted(os.listdir(path))) or "nothing"
    raise CheckpointFormatError(
        f"{path} holds no BERT checkpoint in a known format. Looked for: {looked_for}. "
        f"Found: {found}"
    )


def _apply_options(config: BertConfig, num_layers: int | None, overrides: dict) -> BertConfig:
    if num_layers is not None:
        if not 1 <= num_layers <= config.num_layers:
            raise CheckpointFormatError(
                f"num_layers={num_layers}, but the checkpoint has {config.num_layers} layers"
            )
        config = config.replace(num_layers=num_layers)
    return config.replace(**overrides) if overrides else config


def _not_found(source: str, reason: str) -> ModelNotFoundError:
    packaged = ", ".join(names.PACKAGED)
    return ModelNotFoundError(
        f"model {source!r} not found: it is not a local directory, not a packaged model "
        f"(packaged: {packaged}), and {reason}"
    )


def locate_pretrained(source: str | os.PathLike) -> str:
    """The local directory of `source`: a path, a packaged model, a TF-Hub handle (resolved
    through the TF-Hub cache) or a Hugging Face Hub name (downloaded into the cache).

    Raises ModelNotFoundError (a FileNotFoundError) naming all it tried.
    """
    source = os.fspath(source)
    if os.path.exists(source):
        return source
    if tfhub.is_hub_handle(source):
        try:
            return tfhub.resolve_handle(source)
        except OSError as e:
            raise ModelNotFoundError(str(e)) from e
    try:
        packaged = names.packaged_path(source)
    except ImportError as e:
        raise ModelNotFoundError(str(e)) from e
    if packaged is not None:
        return packaged
    if not names.looks_like_hub_name(source):
        raise _not_found(source, "not a Hugging Face Hub name (no such file or directory)")
    try:
        return names.download_hf(source)
    except OSError as e:
        reason = f"it could not be downloaded from the Hugging Face Hub: {e}"
        raise _not_found(source, reason) from e


@dataclass
class PretrainedInfo:
    """What a pretrained source says about itself, read without loading its weights.

    `config` is None for TF-Hub SavedModels that carry no config (their shape is
    only known once loaded); `vocab_size` is the number of vocabulary entries, or
    None when the source has no vocabulary.
    """

    path: str
    format: str
    config: BertConfig | None
    vocab_size: int | None


def _vocab_of(path: str, fmt: str) -> VocabSource | None:
    if fmt == "hf":
        return huggingface.hf_vocab(path)
    candidates = {
        "google": ("vocab.txt",),
        "tfhub": ("assets", "vocab.txt"),
        "keras_hub": ("assets", "tokenizer", "vocabulary.txt"),
    }[fmt]
    vocab = os.path.join(path, *candidates)
    return vocab if os.path.isfile(vocab) else None


def _config_of(path: str, fmt: str) -> BertConfig | None:
    if fmt == "hf":
        return huggingface.read_hf_config(path)
    if fmt == "google":
        return google.read_google_config(path)
    if fmt == "tfhub":
        return tfhub.read_hub_config(path, None)
    return BertConfig.from_json_file(os.path.join(path, "config.json"), fmt="keras_hub")


def inspect_pretrained(source: str | os.PathLike) -> PretrainedInfo:
    """Find `source` (as `load_pretrained` does) and read its config and vocabulary, but
    not its weights: cheap enough to check options (sequence length, layers) first.

    Raises ModelNotFoundError or CheckpointFormatError, as `load_pretrained` would.
    """
    path = locate_pretrained(source)
    fmt = detect_format(path)
    config = _config_of(path, fmt)
    vocab = _vocab_of(path, fmt)
    if config is not None:
        check_vocab(vocab, config.vocab_size)
    return PretrainedInfo(path, fmt, config, None if vocab is None else count_vocab(vocab))


def load_pretrained(source, num_layers: int | None = None, **overrides):
    """Load a pretrained encoder; returns `(encoder, tokenizer, config)`.

    Args:
      source: a directory (Hugging Face, Google checkpoint, TF-Hub SavedModel or
        keras-hub preset), a TF-Hub handle, a keras-hub `BertBackbone`,
        `DistilBertBackbone` or `ElectraBackbone`, a
        packaged name such as "all-minilm-l6-v2", or a Hugging Face Hub name
        such as "bert-base-uncased" (downloaded and cached; offline it fails
        at once and says how to pass a local directory).
      num_layers: keep only the first `num_layers` transformer layers.
      **overrides: `BertConfig` fields to change, e.g. `hidden_dropout=0.2`.

    DistilBERT and ELECTRA models (Hugging Face and keras-hub) come as a
    `BertEncoder` of their family (`config.model_type`); those without a
    pooler have no `pooled_output`. The encoder is a `BertEncoder`, except for
    TF-Hub SavedModels, which come
    as a Keras model around a trainable `HubEncoderLayer` with the same inputs
    and outputs. The tokenizer is a `WordPieceTokenizer` over the checkpoint's
    vocabulary (None when the source has no vocabulary).
    """
    from keras_bert_ft.layers import BertEncoder

    if keras_hub.is_backbone(source):
        fmt, path = "keras_hub", source
    else:
        path = locate_pretrained(source)
        fmt = detect_format(path)

    if fmt == "tfhub":
        if overrides:
            raise CheckpointFormatError(
                f"{sorted(overrides)} cannot be changed in a TF-Hub SavedModel")
        model, vocab, config = tfhub.load_tfhub(path, num_layers)
        return model, tokenizer_for(vocab, config.do_lower_case), config

    if fmt == "keras_hub":
        backbone, vocab, lowercase = keras_hub.read_keras_hub(path)
        config = keras_hub.config_from_backbone(backbone).replace(do_lower_case=lowercase)
        config = _apply_options(config, num_layers, overrides)
        encoder = BertEncoder(config)
        keras_hub.load_backbone_weights(encoder, backbone)
        keras_hub.check_vocab(vocab, config.vocab_size)
        return encoder, tokenizer_for(vocab, config.do_lower_case), config

    if fmt == "hf":
        config = _apply_options(huggingface.read_hf_config(path), num_layers, overrides)
        encoder = BertEncoder(config)
        vocab = huggingface.load_hf(path, config, encoder)
    else:
        config = _apply_options(google.read_google_config(path), num_layers, overrides)
        encoder = BertEncoder(config)
        vocab = google.load_google(path, encoder)
    return encoder, tokenizer_for(vocab, config.do_lower_case), config
