"""Projection weights kept in the compute dtype, and optionally split, for an export.

Under mixed precision the variables are float32 and each call casts them to the
compute dtype: for the transformer's projections that is every kernel, on every
call (~10.6 M values for MiniLM). An export can store copies already cast once
(`projection_copies`) and trace its graph inside `substituted_projections`, so
that the layers read the copies and the graph has no per-call weight casts.

The copies can also be split into `groups` parts (`split_columns`, `split_rows`):
a block then runs its attention heads and feed-forward units as that many
independent chains of matmuls, which TensorFlow's executor runs side by side on
different cores, and adds their results. TensorFlow runs a small matmul on one
core better than on two (docs/speed.md, round 14), so single rows and small batches
gain most; the sums differ from the unsplit ones by rounding only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import tensorflow as tf

from keras_bert_ft.errors import require_positive_whole

# One projection's weights: its (kernel, bias) parts, the bias None where a part has none.
Parts = tuple[tuple[tf.Tensor, tf.Tensor | None], ...]
# id(owner layer) -> its parts in the compute dtype, while an export traces.
_SUBSTITUTES: dict[int, Parts] = {}


def projection_weights(owner, dtype, compute: Callable[[], tuple]) -> tuple:
    """`owner`'s (kernel, bias) in `dtype`: the stored copy while an export
    substitutes an unsplit one, else `compute()` (the cast of the layer's variables)."""
    stored = _SUBSTITUTES.get(id(owner))
    if stored is not None and len(stored) == 1 and stored[0][0].dtype == dtype:
        return stored[0]
    return compute()


def projection_parts(owner, dtype) -> Parts | None:
    """`owner`'s split (kernel, bias) parts in `dtype` while an export substitutes
    split copies (`projection_copies` with `groups` > 1), else None."""
    stored = _SUBSTITUTES.get(id(owner))
    if stored is not None and len(stored) > 1 and stored[0][0].dtype == dtype:
        return stored
    return None


def split_columns(kernel: tf.Tensor, bias: tf.Tensor, groups: int, blocks: int = 1) -> Parts:
    """A projection's output units in `groups` parts. The columns form `blocks` equal
    blocks (3 for a fused query|key|value kernel); part g holds the g-th slice of
    each block, so that it computes whole attention heads."""
    width = kernel.shape[0]
    kernel = tf.reshape(kernel, (width, blocks, groups, -1))
    bias = tf.reshape(bias, (blocks, groups, -1))
    return tuple((tf.reshape(kernel[:, :, g], (width, -1)), tf.reshape(bias[:, g], (-1,)))
                 for g in range(groups))


def split_rows(kernel: tf.Tensor, bias: tf.Tensor, groups: int) -> Parts:
    """A projection's input units in `groups` parts, whose products add up to the
    whole; the bias goes with the first part."""
    rows = tf.split(kernel, groups, axis=0)
    return tuple((part, bias if g == 0 else None) for g, part in enumerate(rows))


@contextlib.contextmanager
def substituted_projections(copies: dict[int, Parts]) -> Iterator[None]:
    """Within this block the layers use `copies` (from `projection_copies`)."""
    saved = dict(_SUBSTITUTES)
    _SUBSTITUTES.update(copies)
    try:
        yield
    finally:
        _SUBSTITUTES.clear()
        _SUBSTITUTES.update(saved)


def projection_copies(model, dtype: tf.DType, only_computing_in_dtype: bool = False,
                      groups: int = 1) -> tuple[dict[int, Parts], list]:
    """Copies, as `tf.Variable`s in `dtype`, of every transformer projection in `model`,
    each in `groups` parts where the layer allows it (its heads and units divide evenly).

    Returns `(copies, replaced)`: `copies` for `substituted_projections`, and the
    model variables the copies stand for (the same number of values in all).
    Quantized layers compute from their own int8 weights and get no copies; with
    `only_computing_in_dtype`, neither do layers whose compute dtype is another.
    """
    require_positive_whole(groups, "groups")
    copies, replaced = {}, []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if not callable(getattr(layer, "projections", None)):
            continue
        if any(getattr(sub, "quantization_mode", None) is not None
               for sub in layer._flatten_layers(include_self=True, recursive=True)):
            continue
        if only_computing_in_dtype and layer.compute_dtype != dtype.name:
            continue
        layer_groups = groups if layer.can_split(groups) else 1
        for owner, compute, sources, split in layer.projections(dtype):
            if id(owner) in copies:  # a block lists its attention's projections too
                continue
            kernel, bias = compute()
            parts = ((kernel, bias),) if layer_groups == 1 else split(kernel, bias, layer_groups)
            copies[id(owner)] = tuple(
                (tf.Variable(k, trainable=False, name="kernel"),
                 None if b is None else tf.Variable(b, trainable=False, name="bias"))
                for k, b in parts)
            replaced += sources
    return copies, replaced
