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

Each format is a module with the same contract, listed in `FORMATS`:

  NAME, TITLE, REQUIRED_FILES   its key ("hf", ...), what to call it, what it holds
  detect(path) -> bool          whether the directory `path` is in this format
  read_config(path)             its `BertConfig` (None when the format stores none)
  read_vocab(path)              its vocabulary: a vocab.txt path, a `Vocabulary` or None
  load(path, num_layers=None, **overrides) -> (encoder, config, vocab)
  save(encoder, path, vocab_file=None)

`save_hf`, `save_google`, `save_tfhub` and `save_keras_hub_preset` are the savers'
names from before the contract, kept here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

from keras_bert_ft.checkpoints import google, huggingface, keras_hub, names, tfhub
from keras_bert_ft.checkpoints._common import check_vocab, count_vocab, tokenizer_for
from keras_bert_ft.checkpoints.keras_hub import to_keras_hub
from keras_bert_ft.checkpoints.tfhub import HubEncoderLayer
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError, ModelNotFoundError

__all__ = [
    "FORMATS",
    "CheckpointFormatError",
    "HubEncoderLayer",
    "ModelNotFoundError",
    "PretrainedInfo",
    "detect_format",
    "format_module",
    "inspect_pretrained",
    "load_pretrained",
    "locate_pretrained",
    "save_google",
    "save_hf",
    "save_keras_hub_preset",
    "save_tfhub",
    "to_keras_hub",
]

# The checkpoint formats, in the order they are tried. Their `detect`s do not overlap.
FORMATS: tuple[ModuleType, ...] = (huggingface, google, tfhub, keras_hub)

save_hf = huggingface.save
save_google = google.save
save_tfhub = tfhub.save
save_keras_hub_preset = keras_hub.save


def format_module(path: str) -> ModuleType:
    """The module in `FORMATS` whose `detect` accepts the directory `path`."""
    if not os.path.isdir(path):
        raise CheckpointFormatError(f"{path} is a file, not a directory holding a BERT checkpoint")
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    looked_for = "; ".join(f"{fmt.TITLE} ({', '.join(fmt.REQUIRED_FILES)})" for fmt in FORMATS)
    found = ", ".join(sorted(os.listdir(path))) or "nothing"
    raise CheckpointFormatError(
        f"{path} holds no BERT checkpoint in a known format. Looked for: {looked_for}. "
        f"Found: {found}"
    )


def detect_format(path: str) -> str:
    """Which format the directory `path` holds: "hf", "google", "tfhub" or "keras_hub"."""
    return format_module(path).NAME


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


def inspect_pretrained(source: str | os.PathLike) -> PretrainedInfo:
    """Find `source` (as `load_pretrained` does) and read its config and vocabulary, but
    not its weights: cheap enough to check options (sequence length, layers) first.

    Raises ModelNotFoundError or CheckpointFormatError, as `load_pretrained` would.
    """
    path = locate_pretrained(source)
    fmt = format_module(path)
    config = fmt.read_config(path)
    vocab = fmt.read_vocab(path)
    if config is not None:
        check_vocab(vocab, config.vocab_size)
    return PretrainedInfo(path, fmt.NAME, config, None if vocab is None else count_vocab(vocab))


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
    if keras_hub.is_backbone(source):
        fmt, path = keras_hub, source
    else:
        path = locate_pretrained(source)
        fmt = format_module(path)
    encoder, config, vocab = fmt.load(path, num_layers, **overrides)
    return encoder, tokenizer_for(vocab, config.do_lower_case), config
