"""Loading saved Keras models: every serialisable class of the package, registered at once.

Keras finds a custom class in a `.keras` file only when the module defining it
was imported. The package imports TensorFlow lazily, so a plain
`import keras_bert_ft` registers nothing; `load_model` imports every module
that registers a class first, whatever the saved model holds.
"""

from __future__ import annotations

import importlib
import os

# Every module that defines a @keras.saving.register_keras_serializable object.
REGISTERING_MODULES = (
    "keras_bert_ft.layers",
    "keras_bert_ft.layers.wordpiece_encode",
    "keras_bert_ft.lora",
    "keras_bert_ft.models",
    "keras_bert_ft.training.schedules",
    "keras_bert_ft.training.optimizers",
    "keras_bert_ft.checkpoints.tfhub",
    "keras_bert_ft.pretraining.heads",
    "keras_bert_ft.compression.distillation",
    "keras_bert_ft.compression.early_exit",
    "keras_bert_ft.compression.two_tower",
)


def register_all() -> None:
    """Import every module that registers a serialisable class (idempotent)."""
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


def load_model(path: str | os.PathLike, **kwargs):
    """`keras.saving.load_model` with every class of the package registered first."""
    import keras

    register_all()
    return keras.saving.load_model(path, **kwargs)
