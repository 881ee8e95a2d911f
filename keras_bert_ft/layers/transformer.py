"""The post-LayerNorm transformer block of BERT."""

import keras

from keras_bert_ft.layers.activations import get_activation
from keras_bert_ft.layers.attention import MultiHeadSelfAttention


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
        self.attention_layer_norm.build((None, None, hidden_size))
        self.intermediate.build((None, None, hidden_size))
        self.output_dense.build((None, None, intermediate_size))
        self.output_layer_norm.build((None, None, hidden_size))

    def call(self, x, mask, training=None):
        attended = self.attention(x, mask, training=training)
        x = self.attention_layer_norm(x + self.dropout_layer(attended, training=training))
        h = self.activation(self.intermediate(x))
        h = self.dropout_layer(self.output_dense(h), training=training)
        return self.output_layer_norm(x + h)

    def compute_output_shape(self, x_shape, mask_shape=None):
        return x_shape

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
