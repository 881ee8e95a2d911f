"""Pretraining heads over `BertEncoder`: masked-LM and next-sentence prediction."""

from __future__ import annotations

import keras
from keras import ops

from keras_bert_ft.layers.activations import get_activation


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class MaskedLMHead(keras.layers.Layer):
    """BERT's MLM head: dense + activation + LayerNorm, then logits over the vocabulary.

    The output projection is the word-embedding table itself (tied, as in BERT),
    passed at call time; the head owns only the transform and an output bias.
    Logits are computed at the gathered `positions` only, not at every token.
    """

    def __init__(self, vocab_size: int, width: int, activation: str = "gelu_exact",
                 layer_norm_eps: float = 1e-12, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.width = width
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.dense = keras.layers.Dense(width, kernel_initializer=init,
                                        dtype=self.dtype_policy, name="dense")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm")
        self._act = get_activation(activation)

    def build(self, sequence_shape, positions_shape=None, table_shape=None):
        hidden = sequence_shape[-1]
        self.dense.build((None, hidden))
        self.layer_norm.build((None, self.width))
        self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros",
                                           name="output_bias")

    def call(self, sequence_output, positions, embedding_table):
        """Logits (batch, predictions, vocab) at `positions` (batch, predictions)."""
        gathered = ops.take_along_axis(
            sequence_output, ops.expand_dims(ops.cast(positions, "int32"), -1), axis=1)
        x = self.layer_norm(self._act(self.dense(gathered)))
        table = ops.cast(embedding_table, x.dtype)
        return ops.matmul(x, ops.transpose(table)) + ops.cast(self.output_bias, x.dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "width": self.width,
                "activation": self.activation, "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class NextSentenceHead(keras.layers.Layer):
    """BERT's NSP head: two logits (0: the second segment follows, 1: it is random)
    from the pooled output."""

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="dense")

    def build(self, pooled_shape):
        self.dense.build(pooled_shape)

    def call(self, pooled_output):
        return self.dense(pooled_output)

    def get_config(self):
        return {**super().get_config(), "initializer_range": self.initializer_range}
