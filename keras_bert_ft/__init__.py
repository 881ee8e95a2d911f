"""keras_bert_ft: fine-tune BERT-family encoders for text classification with Keras 3.

The error types are imported eagerly; everything else (the tokenizer too) on
first use, so that importing a lower layer of the package loads nothing above
it, and `keras_bert_ft.cli` can quiet TensorFlow before it loads.
"""

# Before anything loads TensorFlow: its oneDNN kernels, off by default on some CPUs.
from keras_bert_ft.cpu_features import prefer_onednn, warn_if_onednn_is_off

if not prefer_onednn():
    warn_if_onednn_is_off()

from keras_bert_ft._lazy import lazy_getattr  # noqa: E402
from keras_bert_ft.errors import (
    CheckpointFormatError,
    DataError,
    ExportError,
    KerasBertFtError,
    ModelNotFoundError,
)

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "WordPieceTokenizer": "keras_bert_ft.tokenizers.wordpiece",
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
    *_LAZY_EXPORTS,
]


# The deprecated alias goes through errors' own warning.
__getattr__ = lazy_getattr(__name__, {**_LAZY_EXPORTS, "CheckpointError": "keras_bert_ft.errors"})
