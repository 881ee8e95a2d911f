"""Word + position + token-type embeddings, LayerNorm, dropout (+ ALBERT/ELECTRA projection)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class BertEmbeddings(keras.layers.Layer):
    """Sum of word, position and token-type embeddings, then LayerNorm and dropout.

    With `embedding_size` set (and different from `hidden_size`), the tables are
    `embedding_size` wide and a dense projection maps the result to `hidden_size`
    (ALBERT's factorised embeddings, ELECTRA's `embeddings_project`). With
    `type_vocab_size=0` there is no token-type table and `type_ids` are ignored
    (DistilBERT).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        embedding_size: int | None = None,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        width = embedding_size or hidden_size
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.word_embeddings = self.add_weight(
            shape=(vocab_size, width), initializer=init, name="word_embeddings",
            autocast=False,
        )
        self.position_embeddings = self.add_weight(
            shape=(max_position_embeddings, width), initializer=init, name="position_embeddings",
            autocast=False,
        )
        self.token_type_embeddings = None
        if type_vocab_size:
            self.token_type_embeddings = self.add_weight(
                shape=(type_vocab_size, width), initializer=init, name="token_type_embeddings",
                autocast=False,
            )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build((None, None, width))
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.projection = None
        if embedding_size and embedding_size != hidden_size:
            self.projection = keras.layers.Dense(
                hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="projection"
            )
            self.projection.build((None, None, width))

    def call(self, word_ids, type_ids, training=None):
        word_vectors = ops.take(self.word_embeddings, word_ids, axis=0)
        return self.call_with_word_vectors(word_vectors, type_ids, training=training)

    def call_with_word_vectors(self, word_vectors, type_ids, training=None):
        """The embeddings of given word vectors (batch, seq, width) instead of word ids.

        For callers that move the input through embedding space, e.g. integrated
        gradients (`keras_bert_ft.explain`); `call` is this after the id lookup.
        """
        seq_len = ops.shape(word_vectors)[1]
        x = word_vectors
        if self.token_type_embeddings is not None:
            x = x + ops.take(self.token_type_embeddings, type_ids, axis=0)
        x = x + ops.expand_dims(self.position_embeddings[:seq_len], 0)
        # The tables are not autocast (as in Keras' Embedding): under mixed precision
        # only the looked-up rows are cast, not the whole vocabulary on every call.
        x = self.layer_norm(ops.cast(x, self.compute_dtype))
        x = self.dropout_layer(x, training=training)
        if self.projection is not None:
            x = self.projection(x)
        return x

    def compute_output_shape(self, word_ids_shape, type_ids_shape=None):
        return (*word_ids_shape, self.hidden_size)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "embedding_size": self.embedding_size,
            "dropout": self.dropout,
            "layer_norm_eps": self.layer_norm_eps,
            "initializer_range": self.initializer_range,
        }
