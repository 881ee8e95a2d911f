"""TF-Hub BERT encoder SavedModels: read (local path or hub handle) and write.

Keras 3 cannot host `hub.KerasLayer`, so a loaded SavedModel is wrapped in
`HubEncoderLayer`, a `keras.layers.TFSMLayer` over the `__call__` endpoint
whose variables are trainable and which passes `training` on, so dropout
behaves as in the original during fine-tuning.

A checkpoint format module (see `keras_bert_ft.checkpoints`): detect, read_config,
read_vocab, load, save.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import keras

from keras_bert_ft import infra
from keras_bert_ft.checkpoints._common import check_vocab, count_vocab
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.layers.encoder import INPUT_NAMES

NAME = "tfhub"
TITLE = "TF-Hub SavedModel directory"
REQUIRED_FILES = ("saved_model.pb", "variables/", "assets/vocab.txt")
CONFIG_ASSET = "kbf_config.json"


def detect(path: str) -> bool:
    """Whether the directory `path` holds a SavedModel."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def is_hub_handle(source: str) -> bool:
    return source.startswith(("http://", "https://", "gs://")) or source.startswith(
        ("tfhub.dev/", "www.kaggle.com/models/")
    )


def resolve_handle(handle: str) -> str:
    """Download (or find in the TF-Hub cache) a hub handle; returns the local path."""
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as e:  # network errors come in many types
        raise OSError(
            f"could not resolve the TF-Hub handle {handle!r} ({type(e).__name__}: {e}). "
            "Without a network, download the SavedModel elsewhere and pass its local "
            "directory (the one holding saved_model.pb) instead."
        ) from e


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class HubEncoderLayer(keras.layers.TFSMLayer):
    """A TF-Hub BERT encoder SavedModel as a trainable Keras 3 layer.

    Takes the dict `{input_word_ids, input_mask, input_type_ids}` and returns the
    SavedModel's output dict; `training` reaches the SavedModel's `__call__`.
    """

    def __init__(self, filepath: str, call_endpoint: str = "__call__", trainable: bool = True,
                 **kwargs):
        super().__init__(filepath, call_endpoint=call_endpoint, trainable=trainable, **kwargs)

    def _add_existing_weight(self, weight):
        # TFSMLayer keeps the ":0" of TF variable names, which optimizers reject
        # when they name their slot variables; track the same variable under a clean name.
        variable = keras.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=weight.name.split(":")[0].replace("/", "_"),
        )
        self._track_variable(variable)

    def call(self, inputs, training=False):
        inputs = {n: keras.ops.cast(inputs[n], "int32") for n in INPUT_NAMES}
        return self.call_endpoint_fn(inputs, training=bool(training))


def hub_encoder_model(path: str, name: str = "hub_bert_encoder") -> keras.Model:
    """A functional model with the BertEncoder interface around the SavedModel at `path`."""
    inputs = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES}
    out = HubEncoderLayer(path, name="hub_encoder")(inputs)
    outputs = {
        "sequence_output": out["sequence_output"],
        "pooled_output": out["pooled_output"],
        "encoder_outputs": list(out["encoder_outputs"]),
    }
    return keras.Model(inputs, outputs, name=name)


def read_config(path: str) -> BertConfig | None:
    """The config stored by `save`, or None for SavedModels from elsewhere (their shape
    is known only once loaded)."""
    cfg = os.path.join(path, "assets", CONFIG_ASSET)
    if os.path.isfile(cfg):
        with open(cfg, encoding="utf-8") as f:
            return BertConfig.from_dict(json.load(f))
    return None


def infer_hub_config(model: keras.Model, vocab_file: str | None, do_lower_case: bool) -> BertConfig:
    """What can be seen from outside: widths and depth from one tiny call.

    Published TF-Hub encoders carry no config; their GELU is the tanh form.
    """
    import numpy as np

    dummy = {n: np.zeros((1, 2), "int32") for n in INPUT_NAMES}
    dummy["input_mask"][:] = 1
    out = model(dummy)
    hidden = int(out["sequence_output"].shape[-1])
    vocab_size = None
    if vocab_file is not None:
        vocab_size = count_vocab(vocab_file)
    return BertConfig(
        vocab_size=vocab_size or 0,
        hidden_size=hidden,
        num_layers=len(out["encoder_outputs"]),
        num_heads=1,  # not visible from outside the graph
        intermediate_size=0,
        hidden_act="gelu_tanh",
        do_lower_case=do_lower_case,
    )


def read_vocab(path: str) -> str | None:
    """The SavedModel's `assets/vocab.txt`, or None."""
    vocab = os.path.join(path, "assets", "vocab.txt")
    return vocab if os.path.isfile(vocab) else None


def load(path: str, num_layers: int | None = None, **overrides):
    """Wrap the SavedModel at `path` in a Keras model; returns `(model, config, vocab)`.

    Its graph is fixed: `num_layers` and `overrides` are refused.
    """
    import tensorflow as tf

    if overrides:
        raise CheckpointFormatError(
            f"{sorted(overrides)} cannot be changed in a TF-Hub SavedModel")
    if num_layers is not None:
        raise CheckpointFormatError(
            "num_layers cannot be applied to a TF-Hub SavedModel (its graph is fixed); "
            "load a Hugging Face or Google checkpoint of the model instead"
        )
    vocab = read_vocab(path)
    do_lower_case = True
    obj = tf.saved_model.load(path)
    if hasattr(obj, "do_lower_case"):
        do_lower_case = bool(obj.do_lower_case.numpy())
    model = hub_encoder_model(path)
    config = read_config(path)
    if config is None:
        config = infer_hub_config(model, vocab, do_lower_case)
    config.do_lower_case = do_lower_case
    # The word embedding table is the weight named so (Model Garden and this package).
    tables = [w for w in model.weights if "word_embeddings" in w.name and len(w.shape) == 2]
    if tables:
        check_vocab(vocab, int(tables[0].shape[0]))
    return model, config, vocab


def save(encoder, path: str, vocab_file: str | None = None) -> None:
    """Export `encoder` with the interface of the published TF-Hub BERT encoders.

    `__call__(inputs, training=False)` takes the dict of `input_word_ids`,
    `input_mask`, `input_type_ids` (int32, (batch, seq)) and returns
    `sequence_output`, `pooled_output`, `encoder_outputs` and `default`
    (= pooled_output), in float32. `variables` / `trainable_variables` are saved,
    and `vocab_file` and `do_lower_case` are attached as assets.
    """
    import tensorflow as tf

    config = encoder.config
    if not config.pooler:
        raise CheckpointFormatError(
            f"the TF-Hub BERT interface returns a pooled_output, but this {config.model_type} "
            "encoder has no pooler; save it with save_hf or save_keras_hub_preset"
        )
    specs = {n: tf.TensorSpec((None, None), tf.int32, name=n) for n in INPUT_NAMES}

    @tf.function
    def call(inputs, training=False):
        out = encoder(inputs, training=training)
        seq = tf.cast(out["sequence_output"], tf.float32)
        pooled = tf.cast(out["pooled_output"], tf.float32)
        return {
            "sequence_output": seq,
            "pooled_output": pooled,
            "default": pooled,
            "encoder_outputs": [tf.cast(x, tf.float32) for x in out["encoder_outputs"]],
        }

    @tf.function(input_signature=[specs])
    def serve(inputs):
        out = call(inputs, training=False)
        return {"sequence_output": out["sequence_output"], "pooled_output": out["pooled_output"]}

    call.get_concrete_function(specs, training=False)
    call.get_concrete_function(specs, training=True)

    # The assets are copied into the SavedModel from a scratch folder; the SavedModel is
    # written beside `path` and renamed onto it whole, so a reader never sees half of one.
    with tempfile.TemporaryDirectory() as assets_src, \
            infra.atomic_path(path, directory=True) as out_dir:
        root = tf.train.Checkpoint()
        root.encoder = encoder
        root.variables = list(encoder.variables)
        root.trainable_variables = list(encoder.trainable_variables)
        root.do_lower_case = tf.Variable(config.do_lower_case, trainable=False)
        if vocab_file is not None:
            check_vocab(vocab_file, config.vocab_size)
            shutil.copyfile(vocab_file, os.path.join(assets_src, "vocab.txt"))
            root.vocab_file = tf.saved_model.Asset(os.path.join(assets_src, "vocab.txt"))
        with open(os.path.join(assets_src, CONFIG_ASSET), "w", encoding="utf-8") as f:
            json.dump(config.to_dict(), f, indent=2)
        root.kbf_config_file = tf.saved_model.Asset(os.path.join(assets_src, CONFIG_ASSET))
        root.__call__ = call
        tf.saved_model.save(root, str(out_dir), signatures={"serving_default": serve})
