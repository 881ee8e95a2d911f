"""Making a fine-tuned BERT smaller and faster, one technique a module:

- `distillation`: a shallower (or narrower) student trained on a teacher's soft targets.
- `quantization`: post-training int8 (TFLite, Keras) behind an accuracy gate.
- `two_tower`: a bi-encoder for sentence pairs with an on-disk vector cache.
- `early_exit`: a classifier on every layer; stop at the first confident one.
"""

from keras_bert_ft.compression.distillation import Distiller, distill, make_student
from keras_bert_ft.compression.early_exit import EarlyExitClassifier
from keras_bert_ft.compression.quantization import AccuracyGateError, export_quantized
from keras_bert_ft.compression.two_tower import TwoTowerClassifier, VectorCache

__all__ = [
    "AccuracyGateError",
    "Distiller",
    "EarlyExitClassifier",
    "TwoTowerClassifier",
    "VectorCache",
    "distill",
    "export_quantized",
    "make_student",
]
