"""Integrated-gradients explanations: completeness, words from word pieces, the HTML
page, the `explain` command, and the page rendered by a real headless browser."""

from __future__ import annotations

import shutil
import subprocess

import keras
import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft import cli
from keras_bert_ft.explain import ExplainError, explain
from keras_bert_ft.explain_html import NEGATIVE_RGB, POSITIVE_RGB, render_html, word_colour
from keras_bert_ft.models import BertClassifier

TEXTS = ["a good movie", "a bad movie", "an unbelievably great story!"]


@pytest.fixture(scope="module")
def trained():
    """A tiny classifier trained to tell the positive words of tests/support/tiny.py from the
    negative ones, so that its attributions have something to find."""
    model = BertClassifier(tiny_encoder(), 2, pooling="mean", label_names=["neg", "pos"],
                           tokenizer=tiny_tokenizer(), max_length=16, pairs=False)  # fmt: skip
    texts, labels = texts_and_labels(8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.default_loss())
    model.fit(model.encode(texts), np.array(labels), epochs=15, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("explain") / "model.keras"
    trained.save(path)
    return path


def test_word_vectors_entry_matches_the_id_lookup():
    enc = tiny_encoder()
    ids = np.array([[101, 2204, 3185, 102]], dtype="int32")
    types = np.zeros_like(ids)
    vectors = keras.ops.take(enc.embeddings.word_embeddings, ids, axis=0)
    np.testing.assert_allclose(enc.embeddings.call_with_word_vectors(vectors, types),
                               enc.embeddings(ids, types), atol=1e-6)  # fmt: skip


def test_completeness_holds_within_5_percent(trained):
    for ex in explain(trained, TEXTS):
        difference = ex.score - ex.baseline_score
        assert abs(difference) > 0.05, "the test needs a score that the words move"
        assert abs(ex.attribution_sum - difference) <= 0.05 * abs(difference), ex
        assert ex.completeness_error <= 0.05
        # [CLS] and [SEP] are kept in the baseline: no attribution.
        assert ex.token_attributions[0] == 0 and ex.token_attributions[-1] == 0


def test_steps_double_until_the_check_holds(trained):
    coarse = explain(trained, TEXTS, steps=1, max_steps=1)
    assert max(ex.completeness_error for ex in coarse) > 0.05  # one interval is not enough
    adaptive = explain(trained, TEXTS, steps=1)
    assert all(ex.completeness_error <= 0.05 and ex.steps > 1 for ex in adaptive)


def test_trained_words_get_the_attribution(trained):
    good, bad, _ = explain(trained, TEXTS)
    assert (good.predicted_name, bad.predicted_name) == ("pos", "neg")
    by_word = {w.text: w.attribution for w in good.words}
    assert by_word["good"] > 0 and by_word["good"] == max(by_word.values())
    by_word = {w.text: w.attribution for w in bad.words}
    assert by_word["bad"] > 0 and by_word["bad"] == max(by_word.values())
    # Explaining the other label turns the sign of the deciding word.
    other = explain(trained, TEXTS[0], target="neg")[0]
    assert other.target_name == "neg"
    assert {w.text: w.attribution for w in other.words}["good"] < 0


def test_word_pieces_merge_back_to_words(trained):
    text = "An UNBELIEVABLY good film!"
    ex = explain(trained, text)[0]
    assert ex.tokens[1:-1] == ["an", "un", "##bel", "##ie", "##va", "##bly", "good", "film", "!"]
    assert [w.text for w in ex.words] == ["An", "UNBELIEVABLY", "good", "film", "!"]
    assert [text[w.start:w.end] for w in ex.words] == [w.text for w in ex.words]
    pieces = ex.token_attributions[2:7]
    assert ex.words[1].attribution == pytest.approx(float(pieces.sum()))
    assert sum(w.attribution for w in ex.words) == pytest.approx(ex.attribution_sum)


def test_pairs_have_words_in_both_segments():
    model = BertClassifier(tiny_encoder(seed=1), 3, pooling="cls", hidden_units=(16,),
                           tokenizer=tiny_tokenizer(), max_length=24, pairs=True)  # fmt: skip
    ex = explain(model, "a man sleeps", pairs="nobody is awake")[0]
    assert [(w.text, w.segment) for w in ex.words] == [
        ("a", 0), ("man", 0), ("sleeps", 0), ("nobody", 1), ("is", 1), ("awake", 1)]
    assert ex.completeness_error <= 0.05
    with pytest.raises(ValueError, match="pairs"):
        explain(model, "a man sleeps")


def test_bad_targets_are_refused(trained):
    with pytest.raises(ExplainError, match="'maybe' is not one of the labels neg, pos"):
        explain(trained, "a good movie", target="maybe")
    with pytest.raises(ExplainError, match="target 5 is not a class index"):
        explain(trained, "a good movie", target=5)


def test_html_is_self_contained_and_escaped(trained):
    ex = explain(trained, ["a good <b>movie</b> & more"])
    page = render_html(ex)
    assert "<script" not in page.lower() and "http" not in page.lower()
    # "<", "b", ">" are words of their own, each escaped inside its span.
    assert ">&lt;</span>" in page and ">&gt;</span>" in page and ">&amp;</span>" in page
    assert "<b>movie" not in page and "movie</b>" not in page
    assert "Predicted: <b>" in page and "Completeness" in page
    strongest = max(ex[0].words, key=lambda w: abs(w.attribution))
    assert word_colour(strongest.attribution, abs(strongest.attribution)) in page


def test_explain_command_writes_the_page(saved, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert cli.main(["explain", str(saved), "a good movie", "a bad movie",
                     "--output", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("completeness: sum") == 2 and "pos" in printed and "neg" in printed
    page = out.read_text(encoding="utf-8")
    assert page.count('class="example"') == 2 and ">good</span>" in page


def test_explain_command_errors_are_one_line(saved, tmp_path, capsys):
    assert cli.main(["explain", str(saved), "a", "b", "--pair", "c"]) == 2
    assert capsys.readouterr().err.strip() == "error: 2 TEXT but 1 --pair: give one --pair per TEXT"
    assert cli.main(["explain", str(saved), "a", "--pair", "c"]) == 2
    assert "classifies single texts" in capsys.readouterr().err
    assert cli.main(["explain", str(saved), "a", "--target", "maybe",
                     "--output", str(tmp_path / "x.html")]) == 2  # fmt: skip
    assert "is not one of the labels" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)  # fmt: skip


def _count_near(pixels: np.ndarray, rgb, tolerance: int = 40) -> int:
    return int(np.sum(np.all(np.abs(pixels - np.array(rgb)) <= tolerance, axis=-1)))


def screenshot(page, tmp_path, size=(1000, 900)):
    """A PNG of `page` rendered by headless chromium, as an (h, w, 3) int array."""
    from PIL import Image

    shot = tmp_path / "page.png"
    run = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         f"--window-size={size[0]},{size[1]}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file(), run.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_page_renders_in_a_headless_browser(trained, tmp_path):
    explanations = explain(trained, TEXTS)
    # The strongest word of each text is drawn at full colour: green when it raises the
    # explained score, red when it lowers it. Here both occur ("good" for pos, "great"
    # against neg); the legend, which also shows both colours, is left out.
    signs = {np.sign(max(ex.words, key=lambda w: abs(w.attribution)).attribution)
             for ex in explanations}  # fmt: skip
    assert signs == {1.0, -1.0}
    page = tmp_path / "page.html"
    page.write_text(render_html(explanations, "Explanations", legend=False), encoding="utf-8")
    pixels = screenshot(page, tmp_path)
    assert pixels.shape == (900, 1000, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text drawn, not a blank page
    for rgb in (POSITIVE_RGB, NEGATIVE_RGB):
        assert _count_near(pixels, rgb) > 200, rgb
    # Without explanations, neither colour is on the page.
    page.write_text(render_html([], "Explanations", legend=False), encoding="utf-8")
    empty = screenshot(page, tmp_path)
    assert _count_near(empty, POSITIVE_RGB) == 0 and _count_near(empty, NEGATIVE_RGB) == 0
