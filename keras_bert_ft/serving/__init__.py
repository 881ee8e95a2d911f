"""Serving: export a classifier for TF Serving and use the export.

- `export`: `export_for_serving` writes `<base>/<version>/`, a SavedModel that
  tokenizes raw text in its graph, atomically and only if TF Serving can load it;
- `warmup`: the warm-up requests TF Serving replays at load;
- `op_check`: the ops TF Serving's model server links (`unsupported_ops`);
- `config`: `models.config` and the batching parameters (`write_serving_config`);
- `predict`: `ExportedClassifier`, an export called as a TF Serving client would;
- `signatures`: the signature and input names.

The signature names are plain constants; the rest is imported on first use, so
that importing this package does not start TensorFlow.
"""

from keras_bert_ft._lazy import lazy_getattr
from keras_bert_ft.serving.signatures import (
    ID_INPUTS,
    IDS_SIGNATURE,
    PAIR_INPUT,
    TEXT_INPUT,
    TEXT_SIGNATURE,
)

_LAZY_EXPORTS = {
    "export_for_serving": "keras_bert_ft.serving.export",
    "ExportedClassifier": "keras_bert_ft.serving.predict",
    "unsupported_ops": "keras_bert_ft.serving.op_check",
    "write_serving_config": "keras_bert_ft.serving.config",
}

__all__ = [
    "ID_INPUTS",
    "IDS_SIGNATURE",
    "PAIR_INPUT",
    "TEXT_INPUT",
    "TEXT_SIGNATURE",
    *_LAZY_EXPORTS,
]


__getattr__ = lazy_getattr(__name__, _LAZY_EXPORTS)
