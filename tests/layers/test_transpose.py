"""Attention's transposes run on integers outside training (layers/attention.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from graph_ops import traced_nodes

from keras_bert_ft.layers import TransformerBlock
from keras_bert_ft.layers.attention import transpose

PERM = (2, 0, 3, 1, 4)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float16, tf.int32])
@pytest.mark.parametrize("training", [False, True])
def test_transpose_equals_tf_transpose(dtype, training):
    x = tf.cast(tf.random.stateless_normal((2, 5, 3, 4, 6), seed=(1, 2)) * 100, dtype)
    out = tf.function(lambda t: transpose(t, PERM, training))(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), tf.transpose(x, PERM).numpy())


@pytest.mark.parametrize("training", [False, True])
def test_transpose_gradient_is_the_inverse_transpose(training):
    x = tf.random.stateless_normal((2, 5, 3, 4, 6), seed=(3, 4))
    weights = tf.random.stateless_normal((3, 2, 4, 5, 6), seed=(5, 6))

    @tf.function
    def grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * weights)
        return tape.gradient(loss, x)

    ours = grad(lambda t: transpose(t, PERM, training))
    np.testing.assert_allclose(ours.numpy(), grad(lambda t: tf.transpose(t, PERM)).numpy())


def float_transposes(fn) -> list[str]:
    """The float `Transpose` nodes of `fn`'s graph and of its branch functions."""
    return [n.name for n in traced_nodes(fn)
            if n.op == "Transpose" and tf.as_dtype(n.attr["T"].type).is_floating]


def test_block_has_no_float_transpose_outside_training():
    block = TransformerBlock(16, 2, 32, dropout=0.0, attention_dropout=0.0)
    x = tf.random.stateless_normal((2, 5, 16), seed=(7, 8))
    mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    inference = tf.function(lambda: block(x, mask, training=False))
    first_token = tf.function(lambda: block(x, mask, training=False, first_token_only=True))
    assert not float_transposes(inference) and not float_transposes(first_token)
    # Training keeps TensorFlow's float transposes (no bitcasts in the backward pass).
    assert float_transposes(tf.function(lambda: block(x, mask, training=True)))
    np.testing.assert_allclose(inference().numpy(), block(x, mask, training=True).numpy(),
                               atol=1e-5)
