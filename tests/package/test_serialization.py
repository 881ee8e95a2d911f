"""Every class the package registers with Keras survives serialise -> deserialise.

The list of objects comes from Keras' own registry after
`keras_bert_ft.saving.register_all()`, so a new registered class without an
entry in FACTORIES fails `test_every_registered_object_has_a_factory`.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from tiny import tiny_encoder, tiny_tokenizer, vocab_path

from keras_bert_ft.saving import register_all

PACKAGE = "keras_bert_ft"


def _classifier(**options):
    from keras_bert_ft.models import BertClassifier

    return BertClassifier(tiny_encoder(), 2, label_names=["neg", "pos"],
                          tokenizer=tiny_tokenizer(), **options)  # fmt: skip


def _lora_dense():
    from keras_bert_ft.lora import LoraDense

    layer = LoraDense(4, name="lora_dense")
    layer.build((None, 3))
    layer.enable_lora(2)
    return layer


def _hub_layer(tmp_path):
    from keras_bert_ft.checkpoints import save_tfhub
    from keras_bert_ft.checkpoints.tfhub import HubEncoderLayer

    path = str(tmp_path / "hub")
    save_tfhub(tiny_encoder(), path)
    return HubEncoderLayer(path)


def _distiller():
    from keras_bert_ft.compression.distillation import Distiller

    return Distiller(_classifier(), _classifier(), temperature=3.0, alpha=0.25)


def _two_tower():
    from keras_bert_ft.compression.two_tower import TwoTowerClassifier

    return TwoTowerClassifier(tiny_encoder(), 3, hidden_units=(8,), max_length=32)


def _early_exit():
    from keras_bert_ft.compression.early_exit import EarlyExitClassifier

    return EarlyExitClassifier(tiny_encoder(), 2, label_names=["a", "b"], max_length=32)


def _layer(module: str, name: str, *args, **kwargs):
    import importlib

    return lambda: getattr(importlib.import_module(module), name)(*args, **kwargs)


# Registered name -> a function making a small instance (tmp_path when it takes one), with
# options away from their defaults where cheap, so a key that get_config drops shows.
FACTORIES = {
    "BertEmbeddings": _layer("keras_bert_ft.layers.embeddings", "BertEmbeddings", 50, 16,
                             max_position_embeddings=32, type_vocab_size=2),
    "Pooler": _layer("keras_bert_ft.layers.pooler", "Pooler", 16, initializer_range=0.05),
    "MultiHeadSelfAttention": _layer("keras_bert_ft.layers.attention",
                                     "MultiHeadSelfAttention", 16, 2, dropout=0.2),
    "TransformerBlock": _layer("keras_bert_ft.layers.transformer", "TransformerBlock", 16, 2,
                               32, dropout=0.3),
    "BertEncoder": lambda: tiny_encoder(),
    "WordPieceEncode": _layer("keras_bert_ft.layers.wordpiece_encode", "WordPieceEncode",
                              str(vocab_path()), max_length=24),
    "LoraDense": _lora_dense,
    "MaskedMeanPooling": _layer("keras_bert_ft.models", "MaskedMeanPooling"),
    "FirstToken": _layer("keras_bert_ft.models", "FirstToken"),
    "BertClassifier": lambda: _classifier(pooling="mean", hidden_units=(8,), dropout=0.2),
    "WarmupLinearDecay": _layer("keras_bert_ft.training.schedules", "WarmupLinearDecay",
                                1e-3, 100, warmup_steps=10, end_learning_rate=1e-6),
    "AdamW": _layer("keras_bert_ft.training.optimizers", "AdamW", learning_rate=2e-5,
                    weight_decay=0.01),
    "HubEncoderLayer": _hub_layer,
    "MaskedLMHead": _layer("keras_bert_ft.pretraining.heads", "MaskedLMHead", 50, 16,
                           activation="relu"),
    "NextSentenceHead": _layer("keras_bert_ft.pretraining.heads", "NextSentenceHead",
                               initializer_range=0.05),
    "Distiller": _distiller,
    "PairFeatures": _layer("keras_bert_ft.compression.two_tower", "PairFeatures"),
    "TwoTowerClassifier": _two_tower,
    "StackExits": _layer("keras_bert_ft.compression.early_exit", "StackExits"),
    "EarlyExitClassifier": _early_exit,
    "multi_exit_loss": None,  # functions: their registered name is their whole config
    "last_exit_accuracy": None,
}


# Keras refuses these by default: they load an external SavedModel (TFSMLayer).
NEEDS_UNSAFE_MODE = {"HubEncoderLayer"}


def registered() -> dict[str, object]:
    register_all()
    return {key.split(">", 1)[1]: obj for key, obj in keras.saving.get_custom_objects().items()
            if key.startswith(PACKAGE + ">")}  # fmt: skip


def test_every_registered_object_has_a_factory():
    names = set(registered())
    assert names, "register_all registered nothing"
    assert names == set(FACTORIES), (f"without a factory: {sorted(names - set(FACTORIES))}; "
                                     f"stale: {sorted(set(FACTORIES) - names)}")  # fmt: skip


def _settings(obj) -> dict:
    """The plain public settings an object keeps (numbers, strings, tuples)."""
    if not hasattr(obj, "__dict__"):
        return {}
    return {k: v for k, v in vars(obj).items()
            if not k.startswith("_") and k != "built"
            and isinstance(v, (bool, int, float, str, tuple, type(None)))}  # fmt: skip


def _canonical(config) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_round_trip(name, tmp_path):
    obj = registered()[name]
    factory = FACTORIES[name]
    if factory is not None:
        obj = factory(tmp_path) if factory.__code__.co_argcount == 1 else factory()
    config = keras.saving.serialize_keras_object(obj)
    assert config["registered_name"] == f"{PACKAGE}>{name}" or (
        factory is None and config["config"] == f"{PACKAGE}>{name}"), config
    # through JSON, as a .keras file stores it
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)),
                                                  safe_mode=name not in NEEDS_UNSAFE_MODE)
    assert type(again) is type(obj) or (factory is None and again is obj)
    assert _canonical(keras.saving.serialize_keras_object(again)) == _canonical(config)
    # A key get_config forgot would round-trip unnoticed above; the settings kept on
    # the objects show it (the factories set options away from their defaults).
    kept = _settings(obj)
    assert {k: getattr(again, k, "<missing>") for k in kept} == kept
    if isinstance(obj, keras.layers.Layer) and obj.built:
        assert [tuple(w.shape) for w in again.weights] == [tuple(w.shape) for w in obj.weights]


def test_a_classifier_round_trip_keeps_its_predictions(tmp_path):
    from keras_bert_ft.saving import load_model

    model = _classifier(pooling="cls")
    texts = ["a good movie", "an awful film"]
    path = tmp_path / "m.keras"
    model.save(path)
    np.testing.assert_allclose(load_model(path).predict_texts(texts),
                               model.predict_texts(texts), atol=1e-6)  # fmt: skip
