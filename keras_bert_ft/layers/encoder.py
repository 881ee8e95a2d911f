"""`BertEncoder`: the functional Keras model of a BERT encoder."""

from __future__ import annotations

import keras

from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers.embeddings import BertEmbeddings
from keras_bert_ft.layers.pooler import Pooler
from keras_bert_ft.layers.transformer import TransformerBlock

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class BertEncoder(keras.Model):
    """A BERT encoder with the TF-Hub BERT interface.

    Inputs (dict, int32, shape (batch, seq)): `input_word_ids`, `input_mask`,
    `input_type_ids`. Outputs (dict): `sequence_output` (batch, seq, hidden),
    `pooled_output` (batch, hidden), `encoder_outputs`, the list of every
    transformer block's output, and `first_token_output` and
    `first_token_pooled_output`: `sequence_output[:, 0]` and `pooled_output`
    computed on a path of their own that runs the last block for the `[CLS]`
    query alone. A graph that reads only those two (a classifier) does not run
    the rest of the last block; in training their dropout draws are their own.

    DistilBERT and ELECTRA encoders are built from their configs the same way.
    Without a pooler (`config.pooler` False) there is no `pooled_output` (nor
    `first_token_pooled_output`) and no `pooler` attribute; without token types
    `input_type_ids` is accepted and ignored.

    Build it from a `BertConfig` (`BertEncoder(config)`) or from the config's
    fields as keyword arguments (`BertEncoder(num_layers=2, ...)`).
    """

    def __init__(self, config: BertConfig | dict | None = None, name: str = "bert_encoder",
                 **kwargs):
        model_kwargs = {k: kwargs.pop(k) for k in ("trainable", "dtype") if k in kwargs}
        if config is None:
            config = BertConfig(**kwargs)
        elif isinstance(config, dict):
            config = BertConfig.from_dict({**config, **kwargs})
        elif kwargs:
            config = config.replace(**kwargs)
        c = config
        inputs = {
            n: keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES
        }
        embeddings = BertEmbeddings(
            c.vocab_size, c.hidden_size, c.max_position_embeddings, c.type_vocab_size,
            c.embedding_size, c.hidden_dropout, c.layer_norm_eps, c.initializer_range,
            name="embeddings",
        )

        def block(i):
            return TransformerBlock(
                c.hidden_size, c.num_heads, c.intermediate_size, c.hidden_act,
                c.hidden_dropout, c.attention_dropout, c.layer_norm_eps, c.initializer_range,
                name=f"transformer_layer_{i}",
            )

        # Cross-layer sharing calls one block num_layers times.
        blocks = [block(0)] * c.num_layers if c.share_layers else [
            block(i) for i in range(c.num_layers)
        ]
        pooler = Pooler(c.hidden_size, c.initializer_range, name="pooler") if c.pooler else None

        mask = inputs["input_mask"]
        x = embeddings(inputs["input_word_ids"], inputs["input_type_ids"])
        encoder_outputs = []
        for b in blocks:
            last_input = x
            x = b(x, mask)
            encoder_outputs.append(x)
        # The last block at [CLS] alone: a model that reads only these outputs (a
        # classifier) leaves the rest of that block out of its graph.
        first_token = blocks[-1](last_input, mask, first_token_only=True)
        outputs = {"sequence_output": x}
        if pooler is not None:
            outputs["pooled_output"] = pooler(x)
        outputs["encoder_outputs"] = encoder_outputs
        outputs["first_token_output"] = first_token
        if pooler is not None:
            outputs["first_token_pooled_output"] = pooler(first_token)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **model_kwargs)
        self.config = config
        self.embeddings = embeddings
        self.blocks = blocks
        if pooler is not None:  # absent otherwise: callers test hasattr(encoder, "pooler")
            self.pooler = pooler

    def weight_map(self) -> dict[str, keras.Variable]:
        """Every weight under its canonical name.

        Canonical names are Google BERT's checkpoint names without the `bert/`
        prefix (e.g. `encoder/layer_0/attention/self/query/kernel`); kernels are
        (in, out). With `share_layers`, only `layer_0` exists; without token
        types or a pooler, their names are absent.
        """
        e = self.embeddings
        names = {
            "embeddings/word_embeddings": e.word_embeddings,
            "embeddings/position_embeddings": e.position_embeddings,
        }
        if e.token_type_embeddings is not None:
            names["embeddings/token_type_embeddings"] = e.token_type_embeddings
        names["embeddings/LayerNorm/gamma"] = e.layer_norm.gamma
        names["embeddings/LayerNorm/beta"] = e.layer_norm.beta
        if e.projection is not None:
            names["encoder/embedding_hidden_mapping_in/kernel"] = e.projection.kernel
            names["encoder/embedding_hidden_mapping_in/bias"] = e.projection.bias
        unique_blocks = self.blocks[:1] if self.config.share_layers else self.blocks
        for i, b in enumerate(unique_blocks):
            p = f"encoder/layer_{i}/"
            parts = {
                "attention/self/query": b.attention.query,
                "attention/self/key": b.attention.key,
                "attention/self/value": b.attention.value,
                "attention/output/dense": b.attention.output_dense,
                "intermediate/dense": b.intermediate,
                "output/dense": b.output_dense,
            }
            for part, dense in parts.items():
                names[p + part + "/kernel"] = dense.kernel
                names[p + part + "/bias"] = dense.bias
            for part, ln in (("attention/output/LayerNorm", b.attention_layer_norm),
                             ("output/LayerNorm", b.output_layer_norm)):
                names[p + part + "/gamma"] = ln.gamma
                names[p + part + "/beta"] = ln.beta
        if self.config.pooler:
            names["pooler/dense/kernel"] = self.pooler.dense.kernel
            names["pooler/dense/bias"] = self.pooler.dense.bias
        return names

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
