"""The post-LayerNorm transformer block of BERT."""

import functools

import keras
import tensorflow as tf

from keras_bert_ft.layers.activations import get_activation
from keras_bert_ft.layers.attention import (
    MultiHeadSelfAttention,
    add_products,
    attention_bias,
    dense_weights,
    is_quantized,
)
from keras_bert_ft.layers.fused import (
    can_fuse,
    can_fuse_elementwise,
    dropout_add_layer_norm,
    seed_scalar,
)
from keras_bert_ft.layers.fused import gelu_exact as fused_gelu_exact
from keras_bert_ft.layers.padding import may_pack, pack, real_tokens, unpack, worth_packing
from keras_bert_ft.layers.precast import (
    projection_parts,
    projection_weights,
    split_columns,
    split_rows,
)


def layer_norm_2d(x, layer: keras.layers.LayerNormalization):
    """`layer`'s LayerNorm (its gamma, beta, epsilon) over rows `x` of shape (n, width).

    Seven plain ops instead of Keras' generic ten: TF has no fused LayerNorm
    kernel that works without oneDNN, and a float32 round trip is kept only for
    float16, where the variance could overflow.
    """
    dtype = x.dtype
    if dtype == tf.float16:
        x = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x, -1, keepdims=True)
    centered = x - mean
    variance = tf.reduce_mean(tf.square(centered), -1, keepdims=True)
    scale = tf.math.rsqrt(variance + layer.epsilon) * tf.cast(layer.gamma, x.dtype)
    return tf.cast(centered * scale + tf.cast(layer.beta, x.dtype), dtype)


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class TransformerBlock(keras.layers.Layer):
    """Self-attention, then a feed-forward network; each followed by dropout,
    a residual add and LayerNorm (post-LN, as in the original BERT)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        hidden_act: str = "gelu_exact",
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.activation = get_activation(hidden_act)
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        policy = self.dtype_policy
        self.attention = MultiHeadSelfAttention(
            hidden_size, num_heads, attention_dropout, initializer_range,
            dtype=policy, name="attention",
        )
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="attention_layer_norm"
        )
        self.intermediate = keras.layers.Dense(
            intermediate_size, kernel_initializer=init, dtype=policy, name="intermediate"
        )
        self.output_dense = keras.layers.Dense(
            hidden_size, kernel_initializer=init, dtype=policy, name="output"
        )
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="output_layer_norm"
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy)
        # Build eagerly so that weights exist (and can be loaded) before the first call.
        self.attention.build((None, None, hidden_size))
        self.attention_layer_norm.build((None, None, hidden_size))
        self.intermediate.build((None, None, hidden_size))
        self.output_dense.build((None, None, intermediate_size))
        self.output_layer_norm.build((None, None, hidden_size))

    def _dense_2d(self, x, layer):
        if is_quantized(layer):
            return layer(x)
        dtype = self.compute_dtype
        kernel, bias = projection_weights(layer, dtype, lambda: dense_weights(layer, dtype))
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)

    def can_split(self, groups: int) -> bool:
        """Whether heads and feed-forward units divide into `groups` (`precast`)."""
        return self.attention.can_split(groups) and self.intermediate_size % groups == 0

    def projections(self, dtype):
        """(owner, weights in `dtype`, variables they come from, how to split them) of
        every projection, for `precast.projection_copies`."""
        return [*self.attention.projections(dtype),
                (self.intermediate, functools.partial(dense_weights, self.intermediate, dtype),
                 [self.intermediate.kernel, self.intermediate.bias], split_columns),
                (self.output_dense, functools.partial(dense_weights, self.output_dense, dtype),
                 [self.output_dense.kernel, self.output_dense.bias], split_rows)]

    def _add_and_norm(self, rows, x, layer_norm, training):
        """`layer_norm(rows + dropout(x))`: one fused op while training in float32 where
        the op library loads (`layers.fused`), TensorFlow's ops otherwise."""
        if can_fuse(training, layer_norm, x):
            seed = (seed_scalar(self.dropout_layer.seed_generator) if self.dropout > 0
                    else tf.constant(0, tf.int64))
            return dropout_add_layer_norm(rows, x, layer_norm, self.dropout, seed)
        return layer_norm_2d(rows + self.dropout_layer(x, training=training), layer_norm)

    def _activate(self, x, training):
        """The feed-forward activation: one fused op for the exact GELU while training in
        float32 where the op library loads (`layers.fused`), TensorFlow's ops otherwise."""
        if self.hidden_act == "gelu_exact" and can_fuse_elementwise(training, x):
            return fused_gelu_exact(x)
        return self.activation(x)

    def _block_2d(self, rows, batch, seq, bias, training, tokens=None):
        """The block over rows (all batch * seq of them, or the real tokens' with `tokens`)."""
        attended = self.attention.attend_2d(rows, batch, seq, bias, training=training,
                                            tokens=tokens)
        return self._feed_forward(rows, attended, training)

    def _first_token_2d(self, rows, first, batch, seq, bias, training, tokens=None):
        """The block's output at the first position only, (batch, hidden)."""
        attended = self.attention.attend_first_token(rows, first, batch, seq, bias,
                                                     training=training, tokens=tokens)
        return self._feed_forward(first, attended, training)

    def _feed_forward(self, rows, attended, training):
        rows = self._add_and_norm(rows, attended, self.attention_layer_norm, training)
        dtype = self.compute_dtype
        first, second = (projection_parts(self.intermediate, dtype),
                         projection_parts(self.output_dense, dtype))
        if first is not None and second is not None:
            # Split copies (`precast`): each group of units is its own chain of two matmuls.
            hidden = [self._activate(tf.nn.bias_add(tf.matmul(rows, kernel), bias), training)
                      for kernel, bias in first]
            h = add_products(hidden, second)
        else:
            h = self._activate(self._dense_2d(rows, self.intermediate), training)
            h = self._dense_2d(h, self.output_dense)
        return self._add_and_norm(rows, h, self.output_layer_norm, training)

    def call(self, x, mask, training=None, first_token_only=False):
        """The block over `x` (batch, seq, hidden); with `first_token_only`, just its
        output at position 0, (batch, hidden): the keys and values still come from
        every position, but no other query, feed-forward row or LayerNorm is computed."""
        batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        # Rows (batch * seq, hidden): every dense layer is then a 2-D MatMul + BiasAdd.
        rows = tf.reshape(x, (-1, self.hidden_size))
        bias = attention_bias(mask)
        if first_token_only:
            first = x[:, 0, :]

            def run(rows, tokens=None):
                return self._first_token_2d(rows, first, batch, seq, bias, training, tokens)
        else:
            def run(rows, tokens=None):
                out = self._block_2d(rows, batch, seq, bias, training, tokens)
                return out if tokens is None else unpack(out, tokens)

        def packed():
            tokens = real_tokens(mask)
            return run(pack(rows, tokens), tokens)

        out = tf.cond(worth_packing(mask), packed, lambda: run(rows)) if may_pack() else run(rows)
        return out if first_token_only else tf.reshape(out, (batch, seq, self.hidden_size))

    def compute_output_spec(self, x, mask, training=None, first_token_only=False):
        shape = (x.shape[0], x.shape[2]) if first_token_only else x.shape
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_eps": self.layer_norm_eps,
            "initializer_range": self.initializer_range,
        }
