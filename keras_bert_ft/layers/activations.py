"""Activations by their unambiguous names (see `keras_bert_ft.config`)."""

from collections.abc import Callable

import keras
from keras import ops


def gelu_exact(x):
    """GELU with the exact erf: Hugging Face's "gelu"."""
    return keras.activations.gelu(x, approximate=False)


def gelu_tanh(x):
    """GELU with the tanh approximation: Google BERT's and TF-Hub's "gelu"."""
    return keras.activations.gelu(x, approximate=True)


_ACTIVATIONS = {
    "gelu_exact": gelu_exact,
    "gelu_tanh": gelu_tanh,
    "relu": ops.relu,
    "silu": ops.silu,
}


def get_activation(name: str) -> Callable:
    """The activation function called `name`."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {list(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]
