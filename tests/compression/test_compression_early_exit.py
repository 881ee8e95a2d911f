"""Early exit: adaptive-depth answers equal the full model's exits, also batched."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.compression.early_exit import EarlyExitClassifier

TEXTS = [
    "a good movie", "awful film , truly the worst thing i have seen in years", "fun",
    "i loved it and would watch it again with my friends tomorrow", "very boring",
    "nice", "the acting was weak but the story kept me there until the end", "bad",
]  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return EarlyExitClassifier(tiny_encoder(seed=2, num_layers=4), 2, max_length=32)


@pytest.fixture(scope="module")
def features():
    return tiny_tokenizer().encode_batch(TEXTS, max_length=32)


def test_threshold_above_one_gives_the_full_depth_outputs(model, features):
    full = model.predict(features, verbose=0)
    assert full.shape == (len(TEXTS), 4, 2)
    for batch_size in (1, 3, 8):
        result = model.predict_early_exit(features, threshold=1.01, batch_size=batch_size)
        np.testing.assert_allclose(result.probs, full[:, -1], atol=1e-6)
        assert (result.exit_layer == 4).all()


def test_threshold_zero_exits_at_the_first_layer(model, features):
    result = model.predict_early_exit(features, threshold=0.0)
    np.testing.assert_allclose(result.probs, model.predict(features, verbose=0)[:, 0], atol=1e-6)
    assert result.mean_layers == 1.0


def test_mixed_exits_in_one_batch_match_each_examples_exit(model, features):
    full = model.predict(features, verbose=0)
    # A threshold between the layer-1 confidences: some rows leave, some go on.
    threshold = float(np.median(full[:, 0].max(-1)))
    result = model.predict_early_exit(features, threshold=threshold, batch_size=8)
    assert len(set(result.exit_layer.tolist())) > 1
    want = full[np.arange(len(TEXTS)), result.exit_layer - 1]
    np.testing.assert_allclose(result.probs, want, atol=1e-5)
    for i, layer in enumerate(result.exit_layer):
        exited_early = layer < 4
        assert not exited_early or full[i, layer - 1].max() >= threshold
        assert (full[i, : layer - 1].max(-1) < threshold).all()


def test_joint_training_and_config_round_trip(model):
    texts, labels = texts_and_labels(4)
    x = tiny_tokenizer().encode_batch(texts, max_length=16)
    keras.utils.set_random_seed(0)
    m = EarlyExitClassifier.from_config(model.get_config())
    assert m.num_exits == 4
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss=m.default_loss(),
              metrics=m.default_metrics())  # fmt: skip
    history = m.fit(x, np.asarray(labels), epochs=2, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert 0 <= history.history["accuracy"][-1] <= 1
