"""Long documents: head_tail truncation and overlapping windows, held to plain references.

The references below spell the rules out with lists and loops; the C++ core
(encode_batch), the TF op, the in-graph serving tokenizer and the classifier's
window pooling must give exactly what they give.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from tiny import tiny_encoder, tiny_tokenizer

from keras_bert_ft.long_documents import default_head_tokens, pool_window_scores
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

CLS, SEP, PAD = 101, 102, 0


def reference_head_tail(ids: list, max_length: int, head_tokens: int) -> list:
    """[CLS] + the first h and last (budget - h) wordpieces + [SEP], or all when they fit."""
    budget = max_length - 2
    if len(ids) <= budget:
        return [CLS, *ids, SEP]
    head = min(head_tokens, budget)
    tail = budget - head
    return [CLS, *ids[:head], *(ids[len(ids) - tail:] if tail else []), SEP]


def reference_windows(ids: list, max_length: int, stride: int) -> list[list]:
    """Windows of max_length - 2 wordpieces; consecutive ones share `stride`; packed."""
    length = max_length - 2
    windows, start = [], 0
    while True:
        windows.append([CLS, *ids[start:start + length], SEP])
        if start + length >= len(ids):
            return windows
        start += length - stride


def padded(rows: list[list], seq: int) -> list[list]:
    return [r + [PAD] * (seq - len(r)) for r in rows]


@pytest.fixture(scope="module")
def tokenizer(vocab_file) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file)


@pytest.fixture(scope="module")
def reviews(data_dir) -> list[str]:
    """300 IMDB test reviews (HTML breaks as spaces); most are longer than 128 wordpieces."""
    texts = []
    with (data_dir / "imdb" / "test.jsonl").open(encoding="utf-8") as f:
        for line in itertools.islice(f, 0, 23000, 75):
            texts.append(re.sub(r"(?:\s*<br\s*/?>\s*)+", " ", json.loads(line)["text"]))
    return texts


def numbers(n: int) -> str:
    return " ".join(str(i) for i in range(n))  # "0".."99": one wordpiece each


# -- head_tail ------------------------------------------------------------------
def test_head_tail_rules_on_all_small_lengths(tokenizer):
    for n, max_length in itertools.product(range(0, 24), range(2, 16)):
        ids = tokenizer.token_ids(numbers(n))
        assert len(ids) == n
        for head in range(0, max_length + 2):
            row = tokenizer.encode(numbers(n), max_length=max_length, truncation="head_tail",
                                   head_tokens=head)
            got = row["input_word_ids"][row["input_mask"] == 1].tolist()
            assert got == reference_head_tail(ids, max_length, head), (n, max_length, head)
            assert not row["input_type_ids"].any()


def test_head_tail_on_real_reviews_equals_reference(tokenizer, reviews):
    full = [tokenizer.token_ids(t) for t in reviews]
    assert sum(len(ids) > 126 for ids in full) > len(full) // 2
    for max_length, head in ((128, None), (128, 0), (64, 40), (128, 500)):
        batch = tokenizer.encode_batch(reviews, max_length=max_length, truncation="head_tail",
                                       head_tokens=head, num_threads=2, return_offsets=True)
        h = default_head_tokens(max_length) if head is None else head
        seq = batch["input_word_ids"].shape[1]
        want = padded([reference_head_tail(ids, max_length, h) for ids in full], seq)
        assert batch["input_word_ids"].tolist() == want
        assert (batch["input_mask"].sum(axis=1) == [min(len(i) + 2, max_length)
                                                    for i in full]).all()
        # Offsets follow their tokens: the tail's spans come from the end of the text.
        spans = batch["offsets"][0]
        last = int(batch["input_mask"][0].sum()) - 2
        tail = tokenizer.token_ids_and_offsets(reviews[0])[1][-1]
        assert (spans[last].tolist() == list(tail)) == (h < max_length - 2)


def test_default_head_is_a_quarter_of_the_room():
    assert default_head_tokens(512) == 127  # Sun et al. kept 128 of 510
    assert default_head_tokens(256) == 63
    assert default_head_tokens(2) == 0


def test_head_tail_refuses_pairs(tokenizer):
    with pytest.raises(ValueError, match="head_tail.*single texts"):
        tokenizer.encode_batch(["a b"], ["c d"], max_length=8, truncation="head_tail")
    with pytest.raises(ValueError, match="head_tokens must be >= 0"):
        tokenizer.encode("a b", max_length=8, truncation="head_tail", head_tokens=-1)
    # The C++ core refuses pairs on its own too (for callers of the binding or the op).
    with pytest.raises(ValueError, match="head_tail' applies to single texts, not to pairs"):
        tokenizer._core.encode_batch(["a"], ["b"], 8, "head_tail", False, 1, 1, False, 2)


def test_other_strategies_unchanged_for_single_texts(tokenizer):
    row = tokenizer.encode(numbers(30), max_length=8, truncation="longest_first", head_tokens=2)
    assert tokenizer.decode(row["input_word_ids"]) == "0 1 2 3 4 5"


def test_tf_op_head_tail_equals_host(tokenizer, reviews, vocab_file):
    from keras_bert_ft.tokenizers import op as ops

    for head in (None, 10):
        host = tokenizer.encode_batch(reviews, max_length=96, truncation="head_tail",
                                      head_tokens=head)
        graph = ops.wordpiece_encode(tf.constant(reviews), vocab_file=str(vocab_file),
                                     max_length=96, truncation="head_tail", head_tokens=head)
        for name in ops.FEATURES:
            np.testing.assert_array_equal(graph[name].numpy(), host[name])
    with pytest.raises(ValueError, match="head_tail"):
        ops.wordpiece_encode(["a"], ["b"], vocab_file=str(vocab_file), truncation="head_tail")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not to pairs"):
        ops._library.kbf_word_piece_encode(["a"], ["b"], str(vocab_file), has_pairs=True,
                                           truncation="head_tail")


def test_op_layer_carries_head_tokens(tokenizer, vocab_file):
    from keras_bert_ft.layers.wordpiece_encode import WordPieceEncode

    layer = WordPieceEncode(str(vocab_file), max_length=10, truncation="head_tail",
                            head_tokens=3)
    out = layer(tf.constant([numbers(30)]))
    assert tokenizer.decode(out["input_word_ids"][0].numpy()) == "0 1 2 25 26 27 28 29"
    again = WordPieceEncode.from_config(layer.get_config())
    assert again.head_tokens == 3


def test_serving_tokenizer_head_tail_equals_host(tokenizer, reviews):
    from keras_bert_ft.tokenizers.graph import ServingTokenizer

    for max_length, head in ((128, None), (64, 0), (64, 62), (64, 100)):
        serving = ServingTokenizer(tokenizer, max_length=max_length, truncation="head_tail",
                                   head_tokens=head)
        graph = serving(tf.constant(reviews + ["", "short one"]))
        host = tokenizer.encode_batch(reviews + ["", "short one"], max_length=max_length,
                                      truncation="head_tail", head_tokens=head)
        for name in ("input_word_ids", "input_mask", "input_type_ids"):
            np.testing.assert_array_equal(graph[name].numpy(), host[name])
    with pytest.raises(ValueError, match="head_tail"):
        serving(tf.constant(["a"]), tf.constant(["b"]))


# -- windows --------------------------------------------------------------------
def test_window_rules_on_all_small_lengths(tokenizer):
    for n, max_length in itertools.product(range(0, 20), range(3, 10)):
        ids = tokenizer.token_ids(numbers(n))
        for stride in range(0, max_length - 2):
            out = tokenizer.encode_batch([numbers(n), "x"], max_length=max_length,
                                         return_overflow=True, stride=stride)
            want = reference_windows(ids, max_length, stride)
            seq = out["input_word_ids"].shape[1]
            assert out["input_word_ids"].tolist() == padded(want + [[CLS, 1060, SEP]], seq)
            assert out["overflow_to_sample_mapping"].tolist() == [0] * len(want) + [1]
            assert out["input_mask"].sum() == sum(len(w) for w in want) + 3


def test_windows_on_real_reviews_equal_reference(tokenizer, reviews):
    full = [tokenizer.token_ids(t) for t in reviews]
    for max_length, stride in ((128, 0), (128, 32), (64, 61), (256, 64)):
        out = tokenizer.encode_batch(reviews, max_length=max_length, stride=stride,
                                     return_overflow=True, padding="max_length")
        want, docs = [], []
        for d, ids in enumerate(full):
            windows = reference_windows(ids, max_length, stride)
            want += windows
            docs += [d] * len(windows)
        assert out["input_word_ids"].tolist() == padded(want, max_length)
        assert out["overflow_to_sample_mapping"].tolist() == docs
        assert len(docs) > len(reviews)  # long reviews did make several windows


def test_window_options_are_checked(tokenizer):
    with pytest.raises(ValueError, match=r"stride .* must be in \[0, 6\)"):
        tokenizer.encode_batch(["a"], max_length=8, stride=6, return_overflow=True)
    with pytest.raises(ValueError, match="return_overflow"):
        tokenizer.encode_batch(["a"], max_length=8, stride=2)
    with pytest.raises(ValueError, match="single texts"):
        tokenizer.encode_batch(["a"], ["b"], max_length=8, return_overflow=True)
    with pytest.raises(ValueError, match=r"texts\[1\].*UTF-8"):
        tokenizer.encode_batch([b"a", b"\xff"], max_length=8, return_overflow=True)


def test_in_graph_windows_equal_host(tokenizer, reviews):
    from keras_bert_ft.tokenizers.graph import ServingTokenizer

    serving = ServingTokenizer(tokenizer, max_length=128)
    texts = reviews + ["", "a short one"]
    for stride in (0, 50, 125):
        rows, docs = serving.windows(tf.constant(texts), stride)
        host = tokenizer.encode_batch(texts, max_length=128, stride=stride,
                                      return_overflow=True)
        for name in ("input_word_ids", "input_mask", "input_type_ids"):
            np.testing.assert_array_equal(rows[name].numpy(), host[name])
        np.testing.assert_array_equal(docs.numpy(), host["overflow_to_sample_mapping"])


def test_pooling_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(3), size=9).astype(np.float32)
    docs = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4])
    for pooling in ("mean", "max"):
        got = pool_window_scores(scores, docs, 5, pooling, softmax=True)
        for d in range(5):
            rows = scores[docs == d]
            want = rows.mean(axis=0) if pooling == "mean" else rows.max(axis=0)
            want = want / want.sum() if pooling == "max" else want
            np.testing.assert_allclose(got[d], want, rtol=1e-6)
    with pytest.raises(ValueError, match="at least one window"):
        pool_window_scores(scores, docs, 6)


# -- the classifier ---------------------------------------------------------------
def tiny_classifier(**kwargs):
    from keras_bert_ft.models import BertClassifier

    return BertClassifier(tiny_encoder(), 2, pooling="mean", tokenizer=tiny_tokenizer(),
                          max_length=16, pairs=False, **kwargs)


def test_classifier_pools_its_windows_scores():
    model = tiny_classifier(window_stride=4, window_pooling="max")
    texts = [numbers(40), "a good movie", numbers(15)]
    got = model.predict_texts(texts)
    windows = model.tokenizer.encode_batch(texts, max_length=16, stride=4, return_overflow=True)
    docs = windows.pop("overflow_to_sample_mapping")
    scores = model.predict(windows, verbose=0)
    assert len(docs) == 4 + 1 + 2
    for d in range(3):
        want = scores[docs == d].max(axis=0)
        np.testing.assert_allclose(got[d], want / want.sum(), rtol=1e-5, atol=1e-6)
    config = model.get_config()
    assert (config["window_stride"], config["window_pooling"]) == (4, "max")


def test_classifier_head_tail_and_window_options_are_checked():
    model = tiny_classifier(truncation="head_tail", head_tokens=3)
    row = model.encode(numbers(30))
    assert model.tokenizer.decode(row["input_word_ids"][0]) == "0 1 2 " + " ".join(
        str(i) for i in range(19, 30))
    with pytest.raises(ValueError, match="window_pooling"):
        tiny_classifier(window_stride=2, window_pooling="median")
    with pytest.raises(ValueError, match="stride"):
        tiny_classifier(window_stride=14)


def test_window_dataset_labels_each_window_with_its_document():
    from keras_bert_ft.data.pipeline import make_window_dataset

    ds, docs = make_window_dataset([numbers(40), "a good movie"], np.array([1, 0]),
                                   tiny_tokenizer(), max_length=16, stride=4, batch_size=64)
    features, labels = next(iter(ds))
    assert docs.tolist() == [0] * 4 + [1]
    assert labels.numpy().tolist() == [1] * 4 + [0]
    assert features["input_mask"].numpy().sum(axis=1).tolist() == [16] * 3 + [12, 5]


# -- the serving export -------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(window_stride=4, window_pooling="mean"),
    dict(window_stride=0, window_pooling="max"),
    dict(truncation="head_tail", head_tokens=5),
], ids=["windows-mean", "windows-max", "head_tail"])
def test_export_serves_what_predict_texts_gives(tmp_path, options):
    from keras_bert_ft.serving.export import export_for_serving

    model = tiny_classifier(label_names=["neg", "pos"], **options)
    texts = [numbers(40), "a good movie", numbers(15), ""]
    path = export_for_serving(model, export_dir=tmp_path / "m")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = serve(text=tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), model.predict_texts(texts),
                               rtol=1e-4, atol=1e-5)
    assert out["label"].shape == (4,)
    assert serve(text=tf.constant([], tf.string))["probabilities"].shape == (0, 2)


def test_windowed_export_refuses_the_custom_op(tmp_path):
    from keras_bert_ft.serving.export import export_for_serving

    with pytest.raises(ValueError, match="windowed model"):
        export_for_serving(tiny_classifier(window_stride=2), export_dir=tmp_path / "m",
                           tokenizer_ops="custom")


# -- the command line ------------------------------------------------------------
def test_cli_trains_and_evaluates_windows_and_head_tail(tmp_path, capsys):
    import keras
    from tiny import save_tiny_hf

    from keras_bert_ft import cli

    model_dir = save_tiny_hf(tmp_path / "bert")
    data = tmp_path / "long.csv"
    rows = [("a good movie , i loved it and the acting was great fun", "pos"),
            ("a bad movie , i hated it and the acting was very boring", "neg")] * 6
    data.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    common = ["train", "--train", str(data), "--model", str(model_dir), "--epochs", "1",
              "--batch-size", "8", "--max-length", "8"]
    out = tmp_path / "windows"
    assert cli.main([*common, "--window-stride", "2", "--window-pooling", "max",
                     "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    # Each text has 13 wordpieces: 3 windows of 6 (stride 2), so 3 rows per text.
    texts, steps = map(int, re.search(r"Training: (\d+) examples, (\d+) steps", printed).groups())
    assert steps == -(-3 * texts // 8)
    model = keras.saving.load_model(out / "model.keras")
    assert (model.window_stride, model.window_pooling) == (2, "max")
    assert cli.main(["evaluate", str(out), "--data", str(data),
                     "--output-dir", str(tmp_path / "rep")]) == 0
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["num_examples"] == 12

    out = tmp_path / "head_tail"
    assert cli.main([*common, "--truncation", "head_tail", "--head-tokens", "2",
                     "--output-dir", str(out)]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["truncation"], settings["head_tokens"]) == ("head_tail", 2)
    model = keras.saving.load_model(out / "model.keras")
    row = model.encode(rows[0][0])["input_word_ids"][0]
    assert model.tokenizer.decode(row) == "a good acting was great fun"
