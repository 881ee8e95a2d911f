"""The last block at [CLS] alone (`TransformerBlock(first_token_only=True)`) and the
encoder's first-token outputs, which a classifier reads instead of `sequence_output`."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from graph_ops import ops_reaching_outputs, traced_nodes

from keras_bert_ft import models
from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers import BertEncoder, TransformerBlock, padding
from keras_bert_ft.models import BertClassifier

MASK = tf.constant([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
TINY = dict(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=40)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def block_and_inputs():
    keras.utils.set_random_seed(0)
    block = TransformerBlock(32, 4, 64, dropout=0.0, attention_dropout=0.0)
    return block, tf.random.normal((3, 5, 32))


def first_row_and_gradients(block, x, first_token_only, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = block(x, MASK, training=training, first_token_only=first_token_only)
        first = out if first_token_only else out[:, 0]
        loss = tf.reduce_sum(tf.sin(first))
    return first, tape.gradient(loss, [x, *block.trainable_variables])


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("training", [False, True])  # training: the fused ops, no dropout
def test_first_token_block_equals_row_0_of_the_block(training, packed, monkeypatch):
    monkeypatch.setattr(padding, "MIN_PADDING_FRACTION", 0.0 if packed else 1.01)
    block, x = block_and_inputs()
    first, grads = first_row_and_gradients(block, x, True, training)
    assert first.shape == (3, 32)
    full, full_grads = first_row_and_gradients(block, x, False, training)
    np.testing.assert_allclose(first, full, atol=2e-6)
    assert len(grads) == 2 + 16 - 1  # x and the block's 16 weights
    for a, b in zip(grads, full_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_training_first_token_block_does_not_slice_the_fused_kernel():
    # Slicing the (hidden, 3 * hidden) q/k/v kernel copied it, and its gradient was two
    # full-size StridedSliceGrads; the query and key-value kernels are used instead.
    block, x = block_and_inputs()

    @tf.function
    def step():
        return first_row_and_gradients(block, x, True, training=True)

    op_types = [node.op for node in traced_nodes(step)]
    assert "StridedSliceGrad" in op_types  # x[:, 0]'s gradient: the check sees the tape
    assert op_types.count("StridedSliceGrad") == 1


def test_first_token_block_with_int8_projections():
    block, x = block_and_inputs()
    for dense in (block.attention.query, block.attention.key, block.attention.value,
                  block.attention.output_dense, block.intermediate, block.output_dense):
        dense.quantize("int8")
    first = block(x, MASK, first_token_only=True)
    np.testing.assert_allclose(first, block(x, MASK)[:, 0], atol=2e-6)


def encoder_inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = MASK.numpy()
    ids = rng.integers(1, 97, mask.shape).astype("int32") * mask
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_encoder_first_token_outputs_equal_position_0(precision):
    keras.mixed_precision.set_global_policy(precision)
    out = BertEncoder(BertConfig(**TINY))(encoder_inputs())
    atol = 2e-6 if precision == "float32" else 2e-2
    np.testing.assert_allclose(out["first_token_output"], out["sequence_output"][:, 0],
                               atol=atol)
    np.testing.assert_allclose(out["first_token_pooled_output"], out["pooled_output"],
                               atol=atol)


def test_an_encoder_without_pooler_has_only_the_raw_first_token():
    out = BertEncoder(BertConfig(**TINY, model_type="electra", pooler=False))(encoder_inputs())
    assert "first_token_output" in out and "first_token_pooled_output" not in out


def row_matmuls(model, rows):
    """Reachable MatMuls of `model`'s traced training call that run on `rows` rows."""
    spec = {n: tf.TensorSpec(MASK.shape, tf.int32) for n in encoder_inputs()}
    with padding.padded_layout_only():  # one static graph, no cond branches
        concrete = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec)
    return [op for op in ops_reaching_outputs(concrete)
            if op.type == "MatMul" and op.outputs[0].shape[0] == rows]


@pytest.mark.parametrize("pooling, reads_first_token", [("pooled", True), ("cls", True),
                                                        ("mean", False)])
def test_classifier_leaves_the_last_block_out(pooling, reads_first_token, monkeypatch):
    keras.utils.set_random_seed(1)
    model = BertClassifier(BertEncoder(BertConfig(**TINY)), 3, pooling=pooling, dropout=0.0)
    # Four projections over all 15 positions per block: QKV, attention output, FFN in and out.
    expected = 4 * 1 + 1 if reads_first_token else 4 * 2  # the last block's K and V only
    assert len(row_matmuls(model, 15)) == expected
    monkeypatch.setattr(models, "first_token_features", lambda outputs, pooling: None)
    whole = BertClassifier(model.encoder, 3, pooling=pooling, dropout=0.0)
    assert len(row_matmuls(whole, 15)) == 8
    whole.set_weights(model.get_weights())
    x = encoder_inputs(1)
    np.testing.assert_allclose(model(x), whole(x), atol=1e-6)
