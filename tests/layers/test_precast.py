"""Projection copies for exports (`layers.precast`): split into groups of heads and
feed-forward units, they compute what the whole projections compute."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from graph_ops import traced_nodes

from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers import BertEncoder, TransformerBlock, padding
from keras_bert_ft.layers.precast import (
    projection_copies,
    split_columns,
    split_rows,
    substituted_projections,
)
from keras_bert_ft.models import BertClassifier

MASK = tf.constant([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
TINY = dict(vocab_size=97, hidden_size=48, num_layers=2, num_heads=6, intermediate_size=96,
            max_position_embeddings=40)


def test_split_columns_keeps_whole_heads_of_each_block():
    # Columns: q heads 0-3 | k heads 0-3 | v heads 0-3, each head 2 wide.
    kernel = tf.reshape(tf.range(5 * 24, dtype=tf.float32), (5, 24))
    bias = tf.range(24, dtype=tf.float32)
    parts = split_columns(kernel, bias, 2, blocks=3)
    assert len(parts) == 2
    # Part 1 holds heads 2-3 of q, of k and of v: columns 4-7, 12-15, 20-23.
    want = np.concatenate([np.arange(4, 8), np.arange(12, 16), np.arange(20, 24)])
    np.testing.assert_array_equal(parts[1][0], kernel.numpy()[:, want])
    np.testing.assert_array_equal(parts[1][1], want)
    plain = split_columns(kernel, bias, 3)
    np.testing.assert_array_equal(tf.concat([k for k, _ in plain], 1), kernel)


def test_split_rows_products_add_up_and_the_bias_comes_once():
    rng = np.random.default_rng(0)
    kernel, bias = rng.standard_normal((12, 5)), rng.standard_normal(5)
    x = rng.standard_normal((4, 12))
    parts = split_rows(tf.constant(kernel), tf.constant(bias), 3)
    assert [b is None for _, b in parts] == [False, True, True]
    total = sum(x[:, 4 * g:4 * (g + 1)] @ k.numpy() for g, (k, _) in enumerate(parts))
    np.testing.assert_allclose(total + parts[0][1].numpy(), x @ kernel + bias, atol=1e-12)


def matmul_count(fn, copies) -> int:
    with substituted_projections(copies):
        return sum(node.op == "MatMul" for node in traced_nodes(tf.function(fn)))


def traced(fn, copies):
    """`fn` traced (as an export traces) with the layers reading `copies`."""
    with substituted_projections(copies):
        return tf.function(fn).get_concrete_function()


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("first_token_only", [False, True])
@pytest.mark.parametrize("groups", [2, 3, 6])
def test_split_block_equals_the_whole_block(groups, first_token_only, packed, monkeypatch):
    monkeypatch.setattr(padding, "MIN_PADDING_FRACTION", 0.0 if packed else 1.01)
    keras.utils.set_random_seed(0)
    block = TransformerBlock(48, 6, 96, dropout=0.0, attention_dropout=0.0)
    x = tf.random.normal((3, 5, 48))

    def run():
        return block(x, MASK, training=False, first_token_only=first_token_only)

    copies, replaced = projection_copies(block, tf.float32, groups=groups)
    # q/k/v, attention output, feed-forward in and out: each in `groups` parts.
    assert [len(parts) for parts in copies.values()] == [groups] * 4
    assert sum(int(np.prod(v.shape)) for parts in copies.values() for pair in parts
               for v in pair if v is not None) == sum(int(np.prod(v.shape)) for v in replaced)
    split = traced(run, copies)()
    whole = traced(run, projection_copies(block, tf.float32)[0])()
    # Every projection's matmul is one per group (in both branches of the packing `cond`).
    assert matmul_count(run, copies) == groups * matmul_count(run, {}) > 0
    real = MASK.numpy().astype(bool)
    want, got = (run().numpy(), split.numpy()) if first_token_only else (
        run().numpy()[real], split.numpy()[real])
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(whole.numpy()[real] if not first_token_only else whole, want,
                               atol=2e-5)


def test_layers_whose_heads_do_not_divide_keep_whole_projections():
    keras.utils.set_random_seed(0)
    block = TransformerBlock(48, 6, 96, dropout=0.0, attention_dropout=0.0)
    assert block.can_split(3) and not block.can_split(4)
    copies, _ = projection_copies(block, tf.float32, groups=4)
    assert [len(parts) for parts in copies.values()] == [1] * 4
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="groups must be a positive whole number"):
            projection_copies(block, tf.float32, groups=bad)


def test_split_classifier_predicts_what_the_model_does():
    keras.utils.set_random_seed(3)
    model = BertClassifier(BertEncoder(BertConfig(**TINY)), 3, pooling="pooled", dropout=0.0)
    ids = np.random.default_rng(0).integers(1, 97, size=(3, 5)).astype("int32")
    inputs = {"input_word_ids": tf.constant(ids), "input_mask": MASK,
              "input_type_ids": tf.zeros_like(MASK)}
    copies, _ = projection_copies(model, tf.float32, groups=2)
    assert len(copies) == 4 * TINY["num_layers"]
    served = traced(lambda: model(inputs, training=False), copies)()
    np.testing.assert_allclose(served, model(inputs, training=False), atol=1e-6)
