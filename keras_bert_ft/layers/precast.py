"""Projection weights kept in the compute dtype, for an export.

Under mixed precision the variables are float32 and each call casts them to the
compute dtype: for the transformer's projections that is every kernel, on every
call (~10.6 M values for MiniLM). An export can store copies already cast once
(`projection_copies`) and trace its graph inside `substituted_projections`, so
that the layers read the copies and the graph has no per-call weight casts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import tensorflow as tf

# id(owner layer) -> (kernel, bias) in the compute dtype, while an export traces.
_SUBSTITUTES: dict[int, tuple] = {}


def projection_weights(owner, dtype, compute: Callable[[], tuple]) -> tuple:
    """`owner`'s (kernel, bias) in `dtype`: the stored copies while an export
    substitutes them, else `compute()` (the cast of the layer's variables)."""
    stored = _SUBSTITUTES.get(id(owner))
    if stored is not None and stored[0].dtype == dtype:
        return stored
    return compute()


@contextlib.contextmanager
def substituted_projections(copies: dict[int, tuple]) -> Iterator[None]:
    """Within this block the layers use `copies` (from `projection_copies`)."""
    saved = dict(_SUBSTITUTES)
    _SUBSTITUTES.update(copies)
    try:
        yield
    finally:
        _SUBSTITUTES.clear()
        _SUBSTITUTES.update(saved)


def projection_copies(model, dtype: tf.DType,
                      only_computing_in_dtype: bool = False) -> tuple[dict[int, tuple], list]:
    """Copies, as `tf.Variable`s in `dtype`, of every transformer projection in `model`.

    Returns `(copies, replaced)`: `copies` for `substituted_projections`, and the
    model variables the copies stand for (the same number of values in all).
    Quantized layers compute from their own int8 weights and get no copies; with
    `only_computing_in_dtype`, neither do layers whose compute dtype is another.
    """
    copies, replaced = {}, []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not callable(getattr(layer, "projections", None)):
            continue
        if any(getattr(sub, "quantization_mode", None) is not None
               for sub in layer._flatten_layers(include_self=True, recursive=True)):
            continue
        if only_computing_in_dtype and layer.compute_dtype != dtype.name:
            continue
        for owner, compute, sources in layer.projections(dtype):
            if id(owner) in copies:  # a block lists its attention's projections too
                continue
            kernel, bias = compute()
            copies[id(owner)] = (tf.Variable(kernel, trainable=False, name="kernel"),
                                 tf.Variable(bias, trainable=False, name="bias"))
            replaced += sources
    return copies, replaced
