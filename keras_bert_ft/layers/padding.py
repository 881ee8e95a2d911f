"""Skipping padded positions in a transformer block's dense layers.

A batch padded to its longest row spends most of its dense-layer work on padding when
its rows differ in length (a served batch of unrelated requests, training without length
bucketing). When enough of the batch is padding, the block gathers the real tokens' rows,
runs every projection, the feed-forward network and both LayerNorms on them alone, and
puts them back in the padded layout only for the attention scores. The gathers cost a
few percent, so a batch with little padding keeps the padded path (docs/speed.md,
round 5). Outputs at padded positions are zero on the packed path; they carry no
meaning on either path and every consumer masks them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import NamedTuple

import tensorflow as tf

from keras_bert_ft.layers.fused import in_xla_function

# Pack when at least this fraction of the batch's positions is padding (packing broke
# even at about 10 % on MiniLM; docs/speed.md, round 5).
MIN_PADDING_FRACTION = 0.15

_tracing = threading.local()


@contextlib.contextmanager
def padded_layout_only() -> Iterator[None]:
    """Blocks traced inside take the padded path alone, with no `cond`.

    For converters that need one static graph: TFLite's quantizer leaves the matmuls
    inside `If` branches in float32 (a dynamic-range model of MiniLM came out 2.4x
    larger and no faster).
    """
    previous = getattr(_tracing, "padded_only", False)
    _tracing.padded_only = True
    try:
        yield
    finally:
        _tracing.padded_only = previous


def may_pack() -> bool:
    """Whether a block traced now may take the packed path: not under XLA (static
    shapes, which the real-token count is not) nor inside `padded_layout_only`."""
    return not getattr(_tracing, "padded_only", False) and not in_xla_function()


class RealTokens(NamedTuple):
    """Where a batch's real tokens are, in its flattened (batch * seq) rows."""

    rows: tf.Tensor  # (real,) int32: the flat row of each real token, in order
    slots: tf.Tensor  # (batch * seq,) int32: each flat row's index among the real
    # tokens; padded rows point at one past the last, a zero row appended by `unpack`


def worth_packing(mask: tf.Tensor) -> tf.Tensor:
    """A scalar bool: whether `mask` (batch, seq) is at least MIN_PADDING_FRACTION padding."""
    real = tf.reduce_sum(tf.cast(mask != 0, tf.float32))
    total = tf.cast(tf.size(mask), tf.float32)
    return real <= (1.0 - MIN_PADDING_FRACTION) * total


def real_tokens(mask: tf.Tensor) -> RealTokens:
    """The gather indices of `mask`'s (batch, seq) nonzero positions."""
    flat = tf.reshape(mask, [-1]) != 0
    rows = tf.cast(tf.where(flat)[:, 0], tf.int32)
    slots = tf.where(flat, tf.cumsum(tf.cast(flat, tf.int32)) - 1, tf.size(rows))
    return RealTokens(rows, slots)


def pack(x: tf.Tensor, tokens: RealTokens) -> tf.Tensor:
    """Rows `x` (batch * seq, width) -> the real tokens' rows (real, width)."""
    return tf.gather(x, tokens.rows)


def unpack(x: tf.Tensor, tokens: RealTokens) -> tf.Tensor:
    """Real tokens' rows `x` (real, width) -> (batch * seq, width), zero at padding."""
    return tf.gather(tf.pad(x, [[0, 1], [0, 0]]), tokens.slots)  # the zero row last
