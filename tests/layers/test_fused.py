"""The fused training ops (`layers.fused`): dropout + residual + LayerNorm, equal to
TensorFlow's ops with the same mask, forward and backward; the dropout rate and seeds;
the exact GELU against TensorFlow's; bad inputs; and where `TransformerBlock` uses them
(training in float32 only)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from graph_ops import traced_op_types

from keras_bert_ft.layers import TransformerBlock, fused
from keras_bert_ft.layers.transformer import layer_norm_2d

if fused.fused_library() is None:
    pytest.skip("the op library is not built", allow_module_level=True)
LIB = fused.fused_library()


def inputs(rows=70, width=48, seed=0):
    rng = np.random.default_rng(seed)
    residual, x, dy = (tf.constant(rng.normal(size=(rows, width)).astype(np.float32))
                       for _ in range(3))  # fmt: skip
    norm = keras.layers.LayerNormalization(epsilon=1e-12)
    norm.build((None, width))
    norm.gamma.assign(rng.normal(1, 0.2, width).astype(np.float32))
    norm.beta.assign(rng.normal(0, 0.2, width).astype(np.float32))
    return residual, x, dy, norm


def fused_outputs(residual, x, norm, rate, seed):
    return LIB.kbf_dropout_add_layer_norm(residual, x, norm.gamma, norm.beta,
                                          tf.constant(seed, tf.int64), rate=rate,
                                          epsilon=norm.epsilon)  # fmt: skip


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_equals_tensorflow_ops_with_the_same_mask_forward_and_backward(rate):
    residual, x, dy, norm = inputs()
    keep = tf.cast(fused_outputs(residual, x, norm, rate, 7)[3], tf.float32)
    if rate == 0:
        assert np.all(keep.numpy() == 1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([residual, x])
        ours = fused.dropout_add_layer_norm(residual, x, norm, rate, tf.constant(7, tf.int64))
        theirs = layer_norm_2d(residual + x * keep / (1 - rate), norm)
        loss_ours, loss_theirs = tf.reduce_sum(ours * dy), tf.reduce_sum(theirs * dy)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    wrt = [residual, x, norm.gamma, norm.beta]
    for a, b in zip(tape.gradient(loss_ours, wrt), tape.gradient(loss_theirs, wrt), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_dropout_rate_seeds_and_repeatability():
    residual, x, _, norm = inputs(rows=2000, width=500)  # 1,000,000 elements
    keep = fused_outputs(residual, x, norm, 0.1, 3)[3].numpy()
    assert abs(keep.mean() - 0.9) < 0.005
    assert np.array_equal(keep, fused_outputs(residual, x, norm, 0.1, 3)[3].numpy())
    assert (keep != fused_outputs(residual, x, norm, 0.1, 4)[3].numpy()).mean() > 0.1
    # The backward's gamma/beta sums are taken in a fixed order: bit-identical reruns.
    _, mean, rstd, kept = fused_outputs(residual, x, norm, 0.1, 3)
    dy = tf.ones_like(residual)
    grads = [LIB.kbf_dropout_add_layer_norm_grad(dy, residual, x, norm.gamma, kept, mean, rstd,
                                                 rate=0.1)[2].numpy() for _ in range(2)]
    assert np.array_equal(grads[0], grads[1])


def test_bad_inputs_are_refused_with_the_reason():
    residual, x, _, norm = inputs()
    with pytest.raises(tf.errors.InvalidArgumentError, match="x must have residual's shape"):
        fused_outputs(residual, x[:, :10], norm, 0.1, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be in"):
        fused_outputs(residual, x, norm, 1.0, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="gamma and beta|rank"):
        LIB.kbf_dropout_add_layer_norm(residual, x, norm.gamma[:5], norm.beta[:5],
                                       tf.constant(0, tf.int64), rate=0.1, epsilon=1e-12)
    outputs = fused_outputs(residual, x, norm, 0.1, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mean and rstd"):
        LIB.kbf_dropout_add_layer_norm_grad(residual, residual, x, norm.gamma, outputs[3],
                                            outputs[1][:3], outputs[2], rate=0.1)


def test_gelu_equals_tensorflows_exact_gelu_forward_and_backward():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-20, 20, 40_001), rng.normal(size=100_000) * 3,
                        [0.0, -0.0, 1e-30, -1e-8, 11.99, 12.0, 12.01, 1e4, -1e4]])
    x = tf.constant(x.astype(np.float32))
    dy = tf.constant(rng.normal(size=x.shape).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = fused.gelu_exact(x), tf.nn.gelu(x, approximate=False)
    # erf within 1.5e-7: the output within |x| * 1e-7 of TensorFlow's, the slope within 1e-6.
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=1e-6)
    grad_ours = tape.gradient(ours, x, output_gradients=dy)
    grad_theirs = tape.gradient(theirs, x, output_gradients=dy)
    np.testing.assert_allclose(grad_ours, grad_theirs, atol=2e-6 * np.abs(dy).max(), rtol=1e-5)
    assert np.isnan(fused.gelu_exact(tf.constant([np.nan])).numpy()).all()
    assert fused.gelu_exact(tf.zeros([0, 3])).shape == (0, 3)


def test_gelu_gradient_refuses_mismatched_shapes():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="shape|Dimension"):
        LIB.kbf_gelu_grad(tf.ones([4, 3]), tf.ones([4, 2]))


def block_ops(block, training, x, mask):
    """Every op type of the traced call, those inside its branch functions included."""
    return traced_op_types(tf.function(lambda: block(x, mask, training=training)))


def test_transformer_block_fuses_only_while_training_in_float32():
    block = TransformerBlock(32, 2, 64, dropout=0.1, attention_dropout=0.0)
    x, mask = tf.random.normal((2, 5, 32)), tf.ones((2, 5), tf.int32)
    assert {"KbfDropoutAddLayerNorm", "KbfGelu"} <= block_ops(block, True, x, mask)
    assert not {"KbfDropoutAddLayerNorm", "KbfGelu"} & block_ops(block, False, x, mask)
    tanh = TransformerBlock(32, 2, 64, hidden_act="gelu_tanh")
    assert "KbfGelu" not in block_ops(tanh, True, x, mask)  # only the exact GELU
    bf16 = TransformerBlock(32, 2, 64, dtype="mixed_bfloat16")
    assert not {"KbfDropoutAddLayerNorm", "KbfGelu"} & block_ops(
        bf16, True, tf.cast(x, tf.bfloat16), mask)
    # XLA cannot compile the library's ops: a jit-compiled training step keeps TF's.
    xla = tf.function(lambda: block(x, mask, training=True), jit_compile=True)
    assert not {"KbfDropoutAddLayerNorm", "KbfGelu"} & {
        op.type for op in xla.get_concrete_function().graph.get_operations()}
    assert xla().shape == (2, 5, 32)


def test_not_fused_where_an_accelerator_is_visible(monkeypatch):
    block = TransformerBlock(32, 2, 64, dropout=0.1)
    x, mask = tf.random.normal((2, 5, 32)), tf.ones((2, 5), tf.int32)
    monkeypatch.setattr(fused, "accelerator_visible", lambda: True)
    assert not {"KbfDropoutAddLayerNorm", "KbfGelu"} & block_ops(block, True, x, mask)


def test_transformer_block_gradients_match_the_unfused_block(monkeypatch):
    # Without dropout both paths compute the same function: compare their gradients.
    keras.utils.set_random_seed(0)
    block = TransformerBlock(32, 2, 64, dropout=0.0, attention_dropout=0.0)
    x, mask = tf.random.normal((3, 6, 32)), tf.constant([[1] * 6, [1] * 4 + [0] * 2, [1] * 6])

    def grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(block(x, mask, training=True)))
        return tape.gradient(loss, block.trainable_variables)

    assert {"KbfDropoutAddLayerNorm", "KbfGelu"} <= block_ops(block, True, x, mask)
    fused_grads = grads()
    monkeypatch.setattr("keras_bert_ft.layers.transformer.can_fuse", lambda *a: False)
    monkeypatch.setattr("keras_bert_ft.layers.transformer.can_fuse_elementwise",
                        lambda *a: False)
    assert not {"KbfDropoutAddLayerNorm", "KbfGelu"} & block_ops(block, True, x, mask)
    for a, b in zip(fused_grads, grads(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_training_repeats_with_the_same_keras_seed():
    block = TransformerBlock(32, 2, 64, dropout=0.3)
    x, mask = tf.random.normal((2, 5, 32)), tf.ones((2, 5), tf.int32)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(11)
        fresh = TransformerBlock(32, 2, 64, dropout=0.3)
        fresh.set_weights(block.get_weights())
        runs.append(fresh(x, mask, training=True).numpy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], block(x, mask, training=False).numpy())
