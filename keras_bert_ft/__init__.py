"""keras_bert_ft: fine-tune BERT-family encoders for text classification with Keras 3.

The tokenizer and the error types are imported eagerly (they need no
TensorFlow); everything that pulls in TensorFlow or Keras is imported on first
use, so that `keras_bert_ft.cli` can quiet TensorFlow before it loads.
"""

from importlib import import_module

from keras_bert_ft.errors import (
    CheckpointFormatError,
    DataError,
    ExportError,
    KerasBertFtError,
    ModelNotFoundError,
)
from keras_bert_ft.tokenization import WordPieceTokenizer

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "BertConfig": "keras_bert_ft.config",
    "BertEncoder": "keras_bert_ft.layers",
    "load_pretrained": "keras_bert_ft.checkpoints",
    "BertClassifier": "keras_bert_ft.models",
    "export_for_serving": "keras_bert_ft.serving.export",
}

__all__ = [
    "CheckpointFormatError",
    "DataError",
    "ExportError",
    "KerasBertFtError",
    "ModelNotFoundError",
    "WordPieceTokenizer",
    *_LAZY_EXPORTS,
]


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(import_module(_LAZY_EXPORTS[name]), name)
    if name == "CheckpointError":  # deprecated alias, kept for one release
        from keras_bert_ft import errors

        return errors.CheckpointError
    raise AttributeError(f"module 'keras_bert_ft' has no attribute {name!r}")
