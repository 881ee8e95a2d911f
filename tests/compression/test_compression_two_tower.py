"""Two towers: the vector cache returns exactly the fresh vectors; scoring from vectors
equals the full model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tiny import tiny_encoder, tiny_tokenizer

from keras_bert_ft.compression.two_tower import (
    TwoTowerClassifier,
    VectorCache,
    pair_dataset,
    pair_features,
    text_encoder,
)

LEFT = ["a man plays a guitar", "the cat sleeps", "two dogs run in a park", "it rains"]
RIGHT = ["someone makes music", "a dog is awake", "animals are outside", "the sun shines"]


@pytest.fixture(scope="module")
def model():
    return TwoTowerClassifier(tiny_encoder(seed=3), 3, hidden_units=(16,), max_length=16)


def test_model_equals_tower_then_head(model):
    tok = tiny_tokenizer()
    x = pair_features(tok, LEFT, RIGHT, max_length=16)
    full = model.predict(x, verbose=0)
    encode = text_encoder(model, tok)
    np.testing.assert_allclose(model.score_vectors(encode(LEFT), encode(RIGHT)), full, atol=1e-5)
    # One query against many candidates: its vector broadcasts.
    scores = model.score_vectors(encode(LEFT[:1]), encode(RIGHT))
    np.testing.assert_allclose(scores[0], full[0], atol=1e-5)


def test_cache_hits_return_exactly_the_fresh_vectors(model, tmp_path):
    encode = text_encoder(model, tiny_tokenizer())
    fingerprint = model.fingerprint()
    cache = VectorCache(tmp_path, fingerprint)
    first = cache.get(LEFT, encode)
    assert (cache.misses, cache.hits) == (len(LEFT), 0)
    # Reopened from disk (another process would see the same), all hits.
    reopened = VectorCache(tmp_path, fingerprint)
    calls = []
    cached = reopened.get(LEFT[::-1] + LEFT, lambda t: calls.append(t) or encode(t))
    assert calls == [] and reopened.hits == 2 * len(LEFT)
    fresh = encode(LEFT)  # the same batch as the cached computation: bit for bit
    np.testing.assert_array_equal(cached[len(LEFT):], fresh)
    np.testing.assert_array_equal(cached[:len(LEFT)], fresh[::-1])
    # Alone, a text is padded differently: equal to float rounding only.
    np.testing.assert_allclose(encode([LEFT[0]])[0], cached[len(LEFT)], atol=1e-5)
    np.testing.assert_array_equal(cached[len(LEFT):], first)
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_is_keyed_by_model(model, tmp_path):
    encode = text_encoder(model, tiny_tokenizer())
    VectorCache(tmp_path, model.fingerprint()).get(LEFT, encode)
    other = TwoTowerClassifier(tiny_encoder(seed=4), 3, hidden_units=(16,), max_length=16)
    assert other.fingerprint() != model.fingerprint()
    assert len(VectorCache(tmp_path, other.fingerprint())) == 0
    # Mixed: two texts cached, one new; one compute call for the new one only.
    cache = VectorCache(tmp_path, model.fingerprint())
    seen = []
    cache.get(LEFT[:2] + ["new text"], lambda t: seen.append(list(t)) or encode(t))
    assert seen == [["new text"]]


def test_trains_with_fit_and_round_trips(model, tmp_path):
    x = pair_features(tiny_tokenizer(), LEFT * 2, RIGHT * 2, max_length=16)
    y = np.array([0, 1, 2, 1] * 2)
    batch, labels = next(iter(pair_dataset(x, y, batch_size=4, shuffle=True)))
    assert labels.shape == (4,) and set(batch) == set(x)
    # Each side is trimmed to its own longest row in the batch.
    for side in ("left", "right"):
        assert batch[f"{side}_input_mask"].numpy()[:, -1].any()
    keras.utils.set_random_seed(0)
    m = TwoTowerClassifier.from_config(model.get_config())
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    history = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    assert again.fingerprint() == m.fingerprint()
