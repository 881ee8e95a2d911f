"""The BERT pooler: dense + tanh over the first (`[CLS]`) position."""

import keras


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class Pooler(keras.layers.Layer):
    """Maps the `[CLS]` vector through dense + tanh: position 0 of a (batch, seq, hidden)
    input, or a (batch, hidden) input that is that vector already."""

    def __init__(self, hidden_size: int, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size,
            activation="tanh",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.dense.build((None, hidden_size))

    def call(self, sequence_output):
        if len(sequence_output.shape) == 2:
            return self.dense(sequence_output)
        return self.dense(sequence_output[:, 0, :])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_size)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "initializer_range": self.initializer_range,
        }
