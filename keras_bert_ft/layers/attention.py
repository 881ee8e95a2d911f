"""Multi-head self-attention that ignores padded positions."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention over `num_heads` heads.

    `call(x, mask)` takes `x` of shape (batch, seq, hidden) and `mask` of shape
    (batch, seq), nonzero at real tokens; padded keys get no attention weight.
    Returns the output projection, shape (batch, seq, hidden).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        dropout: float = 0.1,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} not divisible by num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.head_size = hidden_size // num_heads
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)

        def dense(name):
            layer = keras.layers.Dense(
                hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name=name
            )
            layer.build((None, None, hidden_size))
            return layer

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def _split_heads(self, x):
        # (batch, seq, hidden) -> (batch, heads, seq, head_size)
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, seq, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, x, mask, training=None):
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        # Softmax in float32: float16 would overflow on long or large-valued rows.
        scores = ops.cast(scores, "float32") / math.sqrt(self.head_size)
        keep = ops.cast(mask, "bool")[:, None, None, :]
        scores = ops.where(keep, scores, -1e9)
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.dropout_layer(probs, training=training)
        context = ops.matmul(probs, v)
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, seq, self.hidden_size))
        return self.output_dense(context)

    def compute_output_shape(self, x_shape, mask_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "initializer_range": self.initializer_range,
        }
