"""BertClassifier: heads, pooling, freezing modes, layer-wise LR factors, saving."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.data import make_dataset
from keras_bert_ft.models import BertClassifier
from keras_bert_ft.training import AdamW, compile_classifier


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _batch(tokenizer, texts, pairs=None):
    return tokenizer.encode_batch(texts, pairs=pairs, max_length=32)


@pytest.mark.parametrize(
    "kwargs, shape, check",
    [
        ({"num_classes": 3}, (4, 3), "softmax"),
        ({"num_classes": 2, "binary_sigmoid": True}, (4, 1), "unit"),
        ({"num_classes": 4, "multi_label": True}, (4, 4), "unit"),
        ({"num_classes": 0}, (4, 1), None),
        ({"num_classes": 3, "pooling": "cls", "hidden_units": (16, 8)}, (4, 3), "softmax"),
        ({"num_classes": 3, "pooling": "mean"}, (4, 3), "softmax"),
    ],
)
def test_heads(tokenizer, kwargs, shape, check):
    model = BertClassifier(tiny_encoder(), **kwargs)
    out = np.asarray(model(_batch(tokenizer, ["a", "b c", "d e f", "g"])))
    assert out.shape == shape and out.dtype == np.float32
    if check == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    elif check == "unit":
        assert ((out > 0) & (out < 1)).all()


def test_pairs_use_segment_ids(tokenizer):
    model = BertClassifier(tiny_encoder(), 3, dropout=0.0)
    single = _batch(tokenizer, ["the cat sat on the mat"])
    pair = _batch(tokenizer, ["the cat sat"], ["on the mat"])
    assert pair["input_type_ids"].max() == 1
    assert not np.allclose(model(single), model(pair))


def test_mean_pooling_ignores_padding(tokenizer):
    model = BertClassifier(tiny_encoder(), 2, pooling="mean", dropout=0.0)
    short = tokenizer.encode_batch(["good film"], max_length=32)
    padded = tokenizer.encode_batch(["good film"], max_length=32, padding="max_length")
    assert padded["input_word_ids"].shape[1] > short["input_word_ids"].shape[1]
    np.testing.assert_allclose(model(short), model(padded), atol=1e-5)


@pytest.mark.parametrize("bad", [
    {"num_classes": 1}, {"num_classes": 3, "binary_sigmoid": True},
    {"num_classes": 2, "pooling": "max"}, {"num_classes": 2, "label_names": ["a"]},
    {"num_classes": 2, "train_encoder_layers": 3},
])  # fmt: skip
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        BertClassifier(tiny_encoder(), **bad)


def _groups(model):
    enc = model.encoder
    return {
        "embeddings": enc.embeddings.weights,
        "block0": enc.blocks[0].weights,
        "block1": enc.blocks[1].weights,
        "pooler": enc.pooler.weights,
        "head": [w for layer in model.layers if layer.name in ("logits",) for w in layer.weights],
    }


@pytest.mark.parametrize(
    "mode, pooling, expect_changed",
    [
        (None, "pooled", {"embeddings", "block0", "block1", "pooler", "head"}),
        (1, "pooled", {"block1", "pooler", "head"}),
        (1, "mean", {"block1", "head"}),
        (0, "mean", {"head"}),
    ],
)
def test_fine_tune_modes_train_and_freeze_what_they_say(tokenizer, mode, pooling, expect_changed):
    model = BertClassifier(tiny_encoder(), 2, pooling=pooling, train_encoder_layers=mode)
    texts, labels = texts_and_labels(8)
    ds = make_dataset(texts, np.array(labels), tokenizer, batch_size=8, shuffle=True, seed=0)
    compile_classifier(model, total_steps=4, learning_rate=1e-2, warmup_ratio=0.0)
    groups = _groups(model)
    before = {name: [w.numpy().copy() for w in ws] for name, ws in groups.items()}
    model.fit(ds, epochs=2, verbose=0, shuffle=False)
    for name, ws in groups.items():
        changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before[name], ws, strict=True)]
        if name in expect_changed:
            assert all(changed), f"{name} should train in mode {mode}: {changed}"
        else:
            assert not any(changed), f"{name} should be frozen in mode {mode}"
    trainable = {id(v) for v in model.trainable_weights}
    for name, ws in groups.items():
        assert all((id(w) in trainable) == (name in expect_changed) for w in ws), name


def test_layerwise_lr_multipliers_scale_updates(tokenizer):
    model = BertClassifier(tiny_encoder(), 2, pooling="pooled", dropout=0.0)
    pairs = model.layerwise_lr_multipliers(0.5)
    factor = {id(v): f for v, f in pairs}
    enc = model.encoder
    assert factor[id(enc.embeddings.word_embeddings)] == 0.5**3
    assert factor[id(enc.blocks[0].weights[0])] == 0.5**2
    assert factor[id(enc.blocks[1].weights[0])] == 0.5
    assert factor[id(enc.pooler.weights[0])] == 1.0
    # Adam's first step moves every weight by about lr (times its factor).
    lr = 1e-3
    optimizer = AdamW(learning_rate=lr, weight_decay=0.0, epsilon=1e-12, lr_multipliers=pairs)
    model.compile(optimizer=optimizer, loss=model.default_loss())
    texts, labels = texts_and_labels(4)
    ds = make_dataset(texts, np.array(labels), tokenizer, batch_size=8)
    watch = {"emb_ln": enc.embeddings.layer_norm.gamma,
             "block0": enc.blocks[0].output_layer_norm.gamma,
             "block1": enc.blocks[1].output_layer_norm.gamma, "pooler": enc.pooler.dense.kernel}
    before = {k: v.numpy().copy() for k, v in watch.items()}
    model.fit(ds.take(1), epochs=1, verbose=0, shuffle=False)
    step = {k: np.abs(v.numpy() - before[k]).max() for k, v in watch.items()}
    expected = {"emb_ln": 0.125, "block0": 0.25, "block1": 0.5, "pooler": 1.0}
    for k, f in expected.items():
        assert step[k] == pytest.approx(lr * f, rel=0.05), (k, step)


def test_keras_save_and_reload(tmp_path, tokenizer):
    model = BertClassifier(
        tiny_encoder(), 3, pooling="mean", hidden_units=(16,), train_encoder_layers=1,
        label_names=["neg", "neu", "pos"], tokenizer=tokenizer, max_length=24,
    )  # fmt: skip
    path = tmp_path / "clf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, BertClassifier)
    assert loaded.label_names == ("neg", "neu", "pos")
    assert loaded.max_length == 24 and loaded.train_encoder_layers == 1
    assert loaded.tokenizer is not None and loaded.tokenizer.get_config() == tokenizer.get_config()
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    texts = ["a good movie", "bad", "it was fine i guess"]
    np.testing.assert_allclose(loaded.predict_texts(texts), model.predict_texts(texts), atol=1e-6)
    assert loaded.predict_labels(texts) == model.predict_labels(texts)
    assert set(loaded.predict_labels(texts)) <= {"neg", "neu", "pos"}
    config = loaded.get_config()
    assert BertClassifier.from_config(config).get_config()["label_names"] == config["label_names"]


RELOAD = """
import sys
from keras_bert_ft.saving import load_model  # registers every class of the package
model = load_model(sys.argv[1])
assert type(model.optimizer).__name__ == "AdamW", model.optimizer
print(model.predict_labels(["a good movie"]))
"""


def test_compiled_model_reloads_in_a_fresh_process(tmp_path, tokenizer):
    from keras_bert_ft.training import compile_classifier

    model = BertClassifier(tiny_encoder(), 2, label_names=["neg", "pos"], tokenizer=tokenizer)
    compile_classifier(model, total_steps=10, learning_rate=1e-4)
    texts, labels = texts_and_labels(4)
    batch = tokenizer.encode_batch(texts)
    model.fit(batch, np.array(labels), epochs=1, verbose=0)
    path = tmp_path / "compiled.keras"
    model.save(path)
    result = subprocess.run([sys.executable, "-c", RELOAD, str(path)], capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] in ("['neg']", "['pos']")


def test_a_bare_string_is_one_text(tokenizer):
    model = BertClassifier(tiny_encoder(), 2, label_names=["neg", "pos"], tokenizer=tokenizer)
    text = "a good movie"
    labels = model.predict_labels(text)
    assert len(labels) == 1 and labels == model.predict_labels([text])
    assert model.predict_texts(text).shape == (1, 2)
    assert model.encode(text)["input_word_ids"].shape[0] == 1
    assert model.encode(text.encode())["input_word_ids"].shape[0] == 1  # bytes too
    pair = model.encode("the cat sat", "on the mat")
    np.testing.assert_array_equal(pair["input_type_ids"],
                                  model.encode(["the cat sat"], ["on the mat"])["input_type_ids"])
    assert model.predict_texts("the cat sat", "on the mat").shape == (1, 2)


def test_predicting_the_wrong_kind_of_input_is_refused(tokenizer):
    encoder = tiny_encoder()
    pair_model = BertClassifier(encoder, 2, tokenizer=tokenizer, pairs=True)
    with pytest.raises(ValueError, match="trained on sentence pairs: pass pairs="):
        pair_model.predict_labels(["the cat sat"])
    assert len(pair_model.predict_labels(["the cat sat"], ["on the mat"])) == 1
    single_model = BertClassifier(encoder, 2, tokenizer=tokenizer, pairs=False)
    with pytest.raises(ValueError, match="trained on single texts"):
        single_model.predict_texts(["the cat sat"], ["on the mat"])
    unknown = BertClassifier(encoder, 2, tokenizer=tokenizer)  # an old model: both accepted
    assert unknown.predict_texts(["a"], ["b"]).shape == unknown.predict_texts(["a"]).shape
    with pytest.raises(ValueError, match="2 texts but 1 pairs"):
        pair_model.predict_texts(["a", "b"], "c")
