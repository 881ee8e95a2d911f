"""Multi-head self-attention that ignores padded positions."""

import functools
import math

import keras
import tensorflow as tf
from keras import ops

from keras_bert_ft.layers.padding import RealTokens, pack, unpack
from keras_bert_ft.layers.precast import (
    projection_parts,
    projection_weights,
    split_columns,
    split_rows,
)


def is_quantized(*layers) -> bool:
    """Whether any of these Dense layers was quantized (`model.quantize`): its kernel
    is then int8 with a scale, and only the layer's own call computes with it."""
    return any(getattr(layer, "quantization_mode", None) is not None for layer in layers)


def attention_bias(mask):
    """An additive float32 bias from a (batch, seq) mask: 0 at real keys, -1e9 at padded ones.

    Shape (batch, 1, 1, seq): it broadcasts over heads and query positions.
    """
    keep = tf.cast(mask, tf.float32)[:, None, None, :]
    return (1.0 - keep) * -1e9


def transpose(x, perm, training=None):
    """`tf.transpose(x, perm)`; outside training, done on `x`'s bits as integers.

    TensorFlow's oneDNN rewrite turns every float `Transpose` into its own kernel, which
    costs ~60 us a call on a served row of 16 tokens against ~20 us for the integer one,
    and is no faster at batch 32 (docs/speed.md, round 9). Integers are left alone. The
    gradient (integrated gradients differentiate at inference) is the inverse transpose.
    """
    bits = {4: tf.int32, 2: tf.int16}.get(x.dtype.size) if x.dtype.is_floating else None
    if training or bits is None:
        return tf.transpose(x, perm)
    inverse = [perm.index(i) for i in range(len(perm))]

    @tf.custom_gradient
    def on_bits(t):
        def grad(dy):
            return transpose(dy, inverse)
        return tf.bitcast(tf.transpose(tf.bitcast(t, bits), perm), t.dtype), grad

    return on_bits(x)


def add_products(inputs, parts):
    """sum_g inputs[g] @ kernel_g, plus the bias of the parts that have one: a
    projection split by its input rows (`precast.split_rows`)."""
    out = None
    for x, (kernel, bias) in zip(inputs, parts, strict=True):
        y = tf.matmul(x, kernel)
        y = y if bias is None else tf.nn.bias_add(y, bias)
        out = y if out is None else out + y
    return out


def dense_weights(layer: keras.layers.Dense, dtype):
    """A `Dense` layer's kernel and bias cast to `dtype`."""
    return tf.cast(layer.kernel, dtype), tf.cast(layer.bias, dtype)


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention over `num_heads` heads.

    `call(x, mask)` takes `x` of shape (batch, seq, hidden) and `mask` of shape
    (batch, seq), nonzero at real tokens; padded keys get no attention weight.
    Returns the output projection, shape (batch, seq, hidden).

    The weights are four `Dense` layers (query, key, value, output) so that
    checkpoints map onto them one to one; the computation fuses them (see
    `attend_2d`).
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

    @property
    def query_scale(self) -> float:
        """1 / sqrt(head size): the scores' scale, folded into the query."""
        return 1.0 / math.sqrt(self.head_size)

    def build(self, x_shape=None, mask_shape=None):
        # The weights are made in __init__, so checkpoints load before any call;
        # `attend_2d` is called directly by the block, never through `__call__`.
        self.built = True

    def attend_2d(self, x, batch, seq, bias, training=None, tokens: RealTokens | None = None):
        """Self-attention over rows `x` (batch * seq, hidden); returns the same shape.

        `bias` comes from `attention_bias`. All projections are 2-D MatMul +
        BiasAdd, which TensorFlow's oneDNN graph rewrite fuses into one kernel.
        With `tokens` (`layers.padding`), `x` holds only the real tokens' rows: the
        projections run on them alone and only the scores see the padded layout.
        Under split copies (`precast`), each group of heads runs on its own.
        """
        contexts = []
        for qkv in self._qkv_groups(x):
            if tokens is not None:
                qkv = unpack(qkv, tokens)
            heads = qkv.shape[-1] // (3 * self.head_size)
            # (batch, seq, 3, heads, head) -> (3, batch, heads, seq, head): one copy for all three.
            qkv = transpose(tf.reshape(qkv, (batch, seq, 3, heads, self.head_size)),
                            (2, 0, 3, 1, 4), training)
            # unstack, not qkv[i]: the gradient of indexing is three full-size StridedSliceGrads.
            q, k, v = tf.unstack(qkv, 3)
            context = self._attend(q, k, v, bias, training)  # (batch, heads, seq, head)
            context = tf.reshape(transpose(context, (0, 2, 1, 3), training),
                                 (-1, heads * self.head_size))
            contexts.append(context if tokens is None else pack(context, tokens))
        return self._output_projection(contexts)

    def attend_first_token(self, x, first, batch, seq, bias, training=None,
                           tokens: RealTokens | None = None):
        """Self-attention of the first position's query over every key: rows `x` as in
        `attend_2d` (all, or the real tokens' with `tokens`), `first` (batch, hidden) the
        first position's row of each sequence. Returns (batch, hidden), equal to row 0 of
        each sequence of `attend_2d`'s output, without computing the other queries."""
        if is_quantized(self.query, self.key, self.value):
            pairs = [(self.query(first) * self.query_scale,
                      tf.concat([self.key(x), self.value(x)], 1))]
        elif training:
            pairs = [self.first_token_projections(x, first, self.compute_dtype)]
        else:
            # Inference: every row's projection, as in `attend_2d`, and no kernel copy (the
            # copy cost more than the unused queries in a served batch of one).
            pairs = []
            for qkv in self._qkv_groups(x):
                if tokens is not None:
                    qkv = unpack(qkv, tokens)
                width = qkv.shape[-1] // 3
                qkv = tf.reshape(qkv, (batch, seq, 3 * width))
                pairs.append((qkv[:, 0, :width], qkv[:, :, width:]))
            tokens = None  # the keys and values are in the padded layout already
        return self._first_token_context(pairs, batch, seq, bias, training, tokens)

    def _first_token_context(self, pairs, batch, seq, bias, training, tokens):
        """The output projection of the first query's attention, from one (query
        (batch, width), keys|values (rows, 2 * width)) pair per group of heads."""
        contexts = []
        for q, kv in pairs:
            if tokens is not None:
                kv = unpack(kv, tokens)
            heads = q.shape[-1] // self.head_size
            kv = transpose(tf.reshape(kv, (batch, seq, 2, heads, self.head_size)),
                           (2, 0, 3, 1, 4), training)
            k, v = tf.unstack(kv, 2)
            q = tf.reshape(q, (batch, heads, 1, self.head_size))
            context = self._attend(q, k, v, bias, training)  # (batch, heads, 1, head)
            contexts.append(tf.reshape(context, (batch, heads * self.head_size)))
        return self._output_projection(contexts)

    def _qkv_groups(self, x):
        """The fused q/k/v projection of rows `x`: one (rows, 3 * hidden) tensor, or one
        per group of heads under split copies, each (rows, 3 * its heads' width)."""
        dtype = self.compute_dtype
        if is_quantized(self.query, self.key, self.value):
            return [tf.concat([self.query(x) * self.query_scale, self.key(x), self.value(x)], 1)]
        parts = projection_parts(self, dtype)
        if parts is not None:
            return [tf.nn.bias_add(tf.matmul(x, kernel), bias) for kernel, bias in parts]
        kernel, bias_qkv = projection_weights(self, dtype, lambda: self.qkv_weights(dtype))
        return [tf.nn.bias_add(tf.matmul(x, kernel), bias_qkv)]

    def first_token_projections(self, x, first, dtype):
        """While training: the query of the `first` rows alone, (batch, hidden), and the
        keys and values of every row `x`, (rows, 2 * hidden). Built from the query kernel
        and a key-value kernel, not by slicing the fused q/k/v one: each slice would copy
        it, and its gradient would be a full-size zero tensor filled twice (StridedSliceGrad)."""
        scale = self.query_scale
        q = tf.nn.bias_add(tf.matmul(first, tf.cast(self.query.kernel * scale, dtype)),
                           tf.cast(self.query.bias * scale, dtype))
        kernel = tf.concat([self.key.kernel, self.value.kernel], 1)
        bias = tf.concat([self.key.bias, self.value.bias], 0)
        kv = tf.nn.bias_add(tf.matmul(x, tf.cast(kernel, dtype)), tf.cast(bias, dtype))
        return q, kv

    def _attend(self, q, k, v, bias, training):
        """softmax(q k^T + bias) v per head, with dropout on the probabilities."""
        dtype = self.compute_dtype
        scores = tf.matmul(q, k, transpose_b=True)
        if dtype == "float16":
            # float16 would overflow on long or large-valued rows (and cannot hold -1e9).
            probs = tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32) + bias), dtype)
        else:
            # float32, or bfloat16 (float32's range): no round trip through float32.
            probs = tf.nn.softmax(scores + tf.cast(bias, dtype))
        probs = self.dropout_layer(probs, training=training)
        return tf.matmul(probs, v)

    def _output_projection(self, contexts):
        """The output projection of the heads' contexts: one tensor, or one per group
        of heads (their products with the kernel's matching rows add up)."""
        dtype = self.compute_dtype
        if len(contexts) > 1:
            parts = projection_parts(self.output_dense, dtype)
            if parts is None or len(parts) != len(contexts):
                raise ValueError("split q/k/v copies need split output copies in as many parts")
            return add_products(contexts, parts)
        (context,) = contexts
        if is_quantized(self.output_dense):
            return self.output_dense(context)
        kernel, bias_out = projection_weights(self.output_dense, dtype,
                                              lambda: dense_weights(self.output_dense, dtype))
        return tf.nn.bias_add(tf.matmul(context, kernel), bias_out)

    def qkv_weights(self, dtype):
        """One fused projection: q (pre-scaled), k and v side by side, (hidden, 3 * hidden)."""
        scale = self.query_scale
        kernel = tf.concat([self.query.kernel * scale, self.key.kernel, self.value.kernel], 1)
        bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias], 0)
        return tf.cast(kernel, dtype), tf.cast(bias, dtype)

    def can_split(self, groups: int) -> bool:
        """Whether the heads divide into `groups` equal groups (`precast`)."""
        return self.num_heads % groups == 0

    def projections(self, dtype):
        """(owner, weights in `dtype`, variables they come from, how to split them) for
        `precast`: q/k/v by heads, the output projection by its input rows."""
        dense = (self.query, self.key, self.value)
        return [(self, lambda: self.qkv_weights(dtype),
                 [d.kernel for d in dense] + [d.bias for d in dense],
                 functools.partial(split_columns, blocks=3)),
                (self.output_dense, lambda: dense_weights(self.output_dense, dtype),
                 [self.output_dense.kernel, self.output_dense.bias], split_rows)]

    def call(self, x, mask, training=None):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        rows = tf.reshape(x, (-1, self.hidden_size))
        out = self.attend_2d(rows, batch, seq, attention_bias(mask), training=training)
        return tf.reshape(out, (batch, seq, self.hidden_size))

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
