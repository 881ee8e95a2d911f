"""Transformer blocks skip padded positions in their dense layers (layers/padding.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from graph_ops import traced_op_types

from keras_bert_ft.layers import TransformerBlock, padding

MASK = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])


def test_real_tokens_pack_and_unpack():
    tokens = padding.real_tokens(MASK)
    np.testing.assert_array_equal(tokens.rows, [0, 1, 2, 4, 8, 9, 10, 11])
    np.testing.assert_array_equal(tokens.slots, [0, 1, 2, 8, 3, 8, 8, 8, 4, 5, 6, 7])
    rows = tf.reshape(tf.range(12 * 2, dtype=tf.float32), (12, 2)) + 1
    packed = padding.pack(rows, tokens)
    assert packed.shape == (8, 2)
    back = padding.unpack(packed, tokens).numpy()
    real = tf.reshape(MASK, [-1]).numpy() == 1
    np.testing.assert_array_equal(back[real], rows.numpy()[real])
    assert not back[~real].any()
    # A batch of nothing but padding (Keras builds models on zeros).
    empty = padding.real_tokens(tf.zeros((2, 3), tf.int32))
    assert padding.pack(rows[:6], empty).shape == (0, 2)
    assert not padding.unpack(padding.pack(rows[:6], empty), empty).numpy().any()


def test_worth_packing_from_15_percent_of_padding():
    assert not padding.worth_packing(tf.ones((4, 4), tf.int32))
    two_pads = tf.constant([[1, 1, 1, 1]] * 3 + [[1, 1, 0, 0]])  # 2 of 16 = 12.5 %
    assert not padding.worth_packing(two_pads)
    three_pads = tf.constant([[1, 1, 1, 1]] * 3 + [[1, 0, 0, 0]])  # 3 of 16 = 18.75 %
    assert padding.worth_packing(three_pads)
    assert padding.worth_packing(MASK)  # 5 of 12


def block_and_inputs(dropout=0.0):
    keras.utils.set_random_seed(0)
    block = TransformerBlock(32, 4, 64, dropout=dropout, attention_dropout=0.0)
    x = tf.random.normal((3, 4, 32))
    return block, x


def run_block(block, x, mask, training, packed, monkeypatch):
    monkeypatch.setattr(padding, "MIN_PADDING_FRACTION", 0.0 if packed else 1.01)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = block(x, mask, training=training)
        real = tf.cast(mask, tf.float32)[..., None]
        loss = tf.reduce_sum(tf.sin(out) * real)
    return out, tape.gradient(loss, [x, *block.trainable_variables])


@pytest.mark.parametrize("training", [False, True])
def test_packed_block_equals_padded_block_at_real_tokens(training, monkeypatch):
    block, x = block_and_inputs()
    real = MASK.numpy() == 1
    out_packed, grads_packed = run_block(block, x, MASK, training, True, monkeypatch)
    out_padded, grads_padded = run_block(block, x, MASK, training, False, monkeypatch)
    np.testing.assert_allclose(out_packed.numpy()[real], out_padded.numpy()[real], atol=2e-6)
    assert not out_packed.numpy()[~real].any()
    assert np.abs(out_padded.numpy()[~real]).max() > 0.1  # the padded path computes them
    for a, b in zip(grads_packed, grads_padded, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_the_traced_block_chooses_per_batch(monkeypatch):
    block, x = block_and_inputs()
    call = tf.function(lambda x, mask: block(x, mask),
                       input_signature=[tf.TensorSpec([None, None, 32]),
                                        tf.TensorSpec([None, None], tf.int32)])
    full = tf.ones((3, 4), tf.int32)
    out = call(x, full).numpy()  # no padding: every row computed
    np.testing.assert_allclose(out, block(x, full).numpy(), atol=2e-6)
    assert not call(x, MASK).numpy()[MASK.numpy() == 0].any()  # packed: padding stays zero


def test_xla_keeps_the_padded_path():
    block, x = block_and_inputs()
    xla = tf.function(lambda: block(x, MASK), jit_compile=True)
    ops = traced_op_types(xla)
    assert "Where" not in ops and "If" not in ops and "StatelessIf" not in ops
    real = MASK.numpy() == 1
    np.testing.assert_allclose(xla().numpy()[real], block(x, MASK).numpy()[real], atol=2e-5)


def test_padded_layout_only_traces_no_cond_and_restores_packing():
    block, x = block_and_inputs()
    with padding.padded_layout_only():
        ops = traced_op_types(tf.function(lambda: block(x, MASK)))
        assert not padding.may_pack()
    assert "Where" not in ops and "If" not in ops and "StatelessIf" not in ops
    assert padding.may_pack()
    assert {"If", "StatelessIf"} & traced_op_types(tf.function(lambda: block(x, MASK)))
