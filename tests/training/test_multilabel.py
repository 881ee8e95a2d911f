"""Multi-label classification end to end: readers, thresholds, report, model config,
export and the CLI (train, evaluate, export, predict) on a tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tiny import save_tiny_hf, tiny_encoder, tiny_tokenizer  # noqa: E402

from keras_bert_ft.data import DataError, LabelVocabulary, read_csv, read_jsonl, read_tsv
from keras_bert_ft.reports import multilabel_report
from keras_bert_ft.training.thresholds import apply_thresholds, best_f1_threshold, tune_thresholds

# --------------------------------------------------------------------------- thresholds


def test_threshold_maximises_f1_and_sits_between_scores():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    targets = np.array([1, 0, 1, 0, 0])
    # Cuts: after 0.9 -> F1 2/3; after 0.3 -> 2*2/(3+2) = 0.8; after 0.1 -> 2*2/(5+2).
    t, f1 = best_f1_threshold(scores, targets)
    assert f1 == pytest.approx(0.8)
    assert t == pytest.approx(0.25)  # midway between 0.3 (last positive) and 0.2
    assert apply_thresholds(scores[:, None], [t])[:, 0].tolist() == [1, 1, 1, 0, 0]


def test_threshold_ties_go_to_the_higher_cut_and_equal_scores_share_a_side():
    # Cutting after 0.9 (F1 2/3) ties with cutting after 0.5 (F1 2*2/(4+2) = 2/3).
    t, f1 = best_f1_threshold([0.9, 0.7, 0.6, 0.5, 0.1], [1, 0, 0, 1, 0])
    assert f1 == pytest.approx(2 / 3) and t == pytest.approx(0.8)
    # Two rows share the score 0.7: no cut between them.
    t, _ = best_f1_threshold([0.7, 0.7, 0.2], [1, 0, 0])
    assert t == pytest.approx(0.45)


def test_a_label_without_positives_keeps_the_default():
    assert best_f1_threshold([0.9, 0.1], [0, 0]) == (0.5, 0.0)
    scores = np.array([[0.9, 0.2], [0.1, 0.8]])
    cuts = tune_thresholds(scores, np.array([[1, 0], [0, 0]]))
    assert cuts.dtype == np.float32 and cuts[1] == 0.5
    # All rows positive: the cut goes below the lowest score.
    assert best_f1_threshold([0.4, 0.2], [1, 1])[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="rows, labels"):
        tune_thresholds(scores, np.array([1, 0]))


# --------------------------------------------------------------------------- report


def test_report_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    s = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.8, 0.3, 0.1], [0.2, 0.1, 0.9]])
    r = multilabel_report(y, s, ["a", "b", "c"], thresholds=[0.5, 0.5, 0.3])
    # Predictions: [1,0,1], [0,1,1], [1,0,0], [0,0,1] -> tp a2 b1 c2, predicted 2/1/3, support 2/2/2
    assert r.f1.tolist() == pytest.approx([1.0, 2 / 3, 0.8])
    assert r.macro_f1 == pytest.approx((1 + 2 / 3 + 0.8) / 3)
    assert r.micro_f1 == pytest.approx(2 * 5 / (6 + 6))
    assert r.subset_accuracy == pytest.approx(2 / 4)
    assert r.hamming_loss == pytest.approx(2 / 12)
    d = r.to_dict()
    assert d["per_class"]["c"]["threshold"] == pytest.approx(0.3)
    assert d["per_class"]["b"]["recall"] == pytest.approx(0.5)
    text = r.to_text()
    assert "micro avg" in text and "hamming loss" in text and "subset accuracy" in text
    # One threshold for all labels: at 0.5, c is on for rows 1 and 3 (tp 1 of 2): F1 0.5.
    assert multilabel_report(y, s, thresholds=0.5).f1[2] == pytest.approx(0.5)


# --------------------------------------------------------------------------- readers


def test_csv_with_a_separator_jsonl_with_lists_and_0_1_columns(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nhi,joy|love\nno,anger\nboth,love|anger\n")
    a = read_csv(tmp_path / "a.csv", multi_label=True)
    assert a.is_multi_label and a.label_vocab.names == ("anger", "joy", "love")
    assert a.labels.tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 1]]
    assert a.class_counts() == {"anger": 2, "joy": 1, "love": 2}

    (tmp_path / "b.jsonl").write_text('{"text": "hi", "label": ["joy", "love"]}\n'
                                      '{"text": "no", "label": ["anger"]}\n')
    b = read_jsonl(tmp_path / "b.jsonl", multi_label=True, label_vocab=a.label_vocab)
    assert b.labels.tolist() == [[0, 1, 1], [1, 0, 0]]

    # A JSON list inside a CSV cell works too.
    (tmp_path / "c.csv").write_text('text,label\nhi,"[""joy""]"\nno,"[""anger"", ""love""]"\n')
    c = read_csv(tmp_path / "c.csv", multi_label=True, label_vocab=a.label_vocab)
    assert c.labels.tolist() == [[0, 1, 0], [1, 0, 1]]

    (tmp_path / "d.tsv").write_text("text\tjoy\tanger\nhi\t1\t0\nno\t0\t1\nboth\t1\t1\n")
    d = read_tsv(tmp_path / "d.tsv", label_columns=["joy", "anger"])
    assert d.label_vocab.names == ("joy", "anger")
    assert d.labels.tolist() == [[1, 0], [0, 1], [1, 1]]
    # With the model's vocabulary the columns land in the model's order.
    e = read_tsv(tmp_path / "d.tsv", label_columns=["joy", "anger"], label_vocab=a.label_vocab)
    assert e.labels.tolist() == [[0, 1, 0], [1, 0, 0], [1, 1, 0]]  # anger, joy, love


@pytest.mark.parametrize("name,content,kwargs,where,what", [
    ("unknown.csv", "text,label\nhi,joy\nno,joy|sad\n", {"label_vocab": "vocab"},
     (3, 2), "unknown label 'sad'"),
    ("empty.csv", "text,label\nhi,joy\nno,\n", {}, (3, 2), "no labels"),
    ("json.csv", 'text,label\nhi,joy\nno,"[""joy"", love]"\n', {}, (3, 2), "not a valid JSON"),
    ("flags.csv", "text,joy,love\nhi,1,0\nno,0,2\n", {"label_columns": ["joy", "love"]},
     (3, 3), "holds '2'"),
    ("nested.jsonl", '{"text": "a", "label": ["joy", ["x"]]}\n', {}, (1, "'label'"), "not a label"),
])  # fmt: skip
def test_bad_multi_label_input_names_file_line_and_column(tmp_path, name, content, kwargs,
                                                          where, what):
    path = tmp_path / name
    path.write_text(content)
    if kwargs.get("label_vocab") == "vocab":
        kwargs["label_vocab"] = LabelVocabulary(("joy", "love"))
    reader = read_jsonl if name.endswith(".jsonl") else read_csv
    if "label_columns" not in kwargs:
        kwargs["multi_label"] = True
    with pytest.raises(DataError, match=what) as info:
        reader(path, **kwargs)
    assert (info.value.line, info.value.column) == where
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_empty_label_rows_are_allowed_when_asked(tmp_path):
    (tmp_path / "e.csv").write_text("text,label\nhi,joy\nno,\nyes,love\n")
    data = read_csv(tmp_path / "e.csv", multi_label=True, allow_empty_labels=True)
    assert data.labels.tolist() == [[1, 0], [0, 0], [0, 1]]


def test_multi_label_data_splits_by_each_rows_rarest_label():
    from keras_bert_ft.data import TextDataset, stratified_split
    from keras_bert_ft.data.splits import rarest_label

    labels = np.array([[1, 0, 0]] * 16 + [[1, 1, 0]] * 4 + [[0, 0, 0]] * 4, dtype=np.float32)
    assert rarest_label(labels[[0, 16, 20]]).tolist() == [0, 1, -1]
    data = TextDataset([f"t{i}" for i in range(24)], None, labels, LabelVocabulary(("a", "b", "c")))
    parts = stratified_split(data, {"train": 0.75, "validation": 0.25}, seed=0)
    assert len(parts["train"]) + len(parts["validation"]) == 24
    # Each stratum (a only, a+b, none) is cut 3:1.
    assert parts["validation"].labels[:, 1].sum() == 1
    assert (parts["validation"].labels.sum(axis=1) == 0).sum() == 1


def test_goemotions_registry_entry():
    import os

    from keras_bert_ft.data import load_dataset

    root = Path(os.environ.get("KBF_DATA_DIR", "")) / "goemotions"
    if not (root / "train.tsv").is_file():
        pytest.skip("GoEmotions is not in $KBF_DATA_DIR")
    dev = load_dataset("goemotions", "validation", download=False)
    assert len(dev) == 5426 and dev.labels.shape == (5426, 28)
    assert dev.label_vocab.names[0] == "admiration" and dev.label_vocab.names[27] == "neutral"
    assert dev.labels.sum(axis=1).min() >= 1


# --------------------------------------------------------------------------- model and export


@pytest.fixture(scope="module")
def model():
    from keras_bert_ft.models import BertClassifier

    m = BertClassifier(tiny_encoder(), 3, multi_label=True, label_names=["joy", "love", "anger"],
                       tokenizer=tiny_tokenizer(), max_length=32, pooling="mean", pairs=False)
    return m


TEXTS = ["i love this", "so angry right now", "what a joyful day", "meh", ""]


def between_scores(scores: np.ndarray) -> np.ndarray:
    """Per label, a cut midway between the 2nd and 3rd highest score: two rows on, and no
    score near the cut (scores move by ~1e-7 with the batch's padding)."""
    top = -np.sort(-scores, axis=0)
    return (top[1] + top[2]) / 2


def test_thresholds_are_kept_in_the_config_and_used_by_predict(model, tmp_path):
    import keras

    scores = model.predict_texts(TEXTS)
    cuts = between_scores(scores)
    model.set_thresholds(cuts)
    expected = [[n for j, n in enumerate(model.label_names) if row[j] >= cuts[j]]
                for row in scores]
    assert model.predict_labels(TEXTS) == expected
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.decision_thresholds(), cuts.astype(np.float32))
    assert loaded.predict_labels(TEXTS) == expected
    with pytest.raises(ValueError, match="2 thresholds for 3 labels"):
        model.set_thresholds([0.5, 0.5])


def test_export_returns_scores_and_labels_above_threshold(model, tmp_path):
    import tensorflow as tf

    from keras_bert_ft.serving.export import export_for_serving
    from keras_bert_ft.serving.predict import ExportedClassifier

    scores = model.predict_texts(TEXTS)
    model.set_thresholds(between_scores(scores))
    path = export_for_serving(model, export_dir=tmp_path / "ml")
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(out["probabilities"].numpy(), scores, atol=1e-5)
    cuts = model.decision_thresholds()
    np.testing.assert_array_equal(out["label_mask"].numpy(), (scores >= cuts).astype(np.int64))
    assert out["labels"].shape == (len(TEXTS), 3)
    # The id signature agrees with the text signature.
    enc = model.encode(TEXTS)
    by_ids = loaded.signatures["serve_ids"](**{k: tf.constant(v, tf.int32)
                                              for k, v in enc.items()})  # fmt: skip
    np.testing.assert_allclose(by_ids["probabilities"].numpy(), out["probabilities"].numpy(),
                               atol=1e-6)  # fmt: skip
    served = ExportedClassifier(path)
    assert served.multi_label
    result = served.predict(TEXTS, batch_size=2)
    assert [list(r) for r in result["labels"]] == model.predict_labels(TEXTS)
    lines = (path / "assets" / "thresholds.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["joy", "love", "anger"]
    np.testing.assert_allclose([float(line.split("\t")[1]) for line in lines], cuts)


# --------------------------------------------------------------------------- CLI


def _write_multi_csv(path: Path, repeat: int) -> Path:
    rows = [("what a happy day", "joy"), ("i adore you", "love"), ("i am so mad", "anger"),
            ("happy and in love", "joy|love"), ("mad at my love", "anger|love")] * repeat
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def test_cli_train_evaluate_export_predict(tmp_path, capsys):
    from keras_bert_ft.cli import main

    bert = save_tiny_hf(tmp_path / "bert")
    train = _write_multi_csv(tmp_path / "train.csv", 8)
    dev = _write_multi_csv(tmp_path / "dev.csv", 2)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), "--validation", str(dev), "--test", str(dev),
                 "--multi-label", "--model", str(bert), "--epochs", "2", "--batch-size", "8",
                 "--learning-rate", "1e-3", "--max-length", "16", "--output-dir",
                 str(run)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "micro avg" in out and "Thresholds tuned on validation data" in out
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["multi_label"] and set(metrics["per_class"]) == {"anger", "joy", "love"}
    assert (run / "report" / "threshold_0.5_metrics.json").is_file()

    assert main(["evaluate", str(run), "--data", str(dev), "--output-dir",
                 str(tmp_path / "rep")]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    # evaluate reads the model's tuned thresholds: the same figures as train's report.
    assert evaluated["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-6)

    # An unknown label in evaluation data: one error line, exit status 2.
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhi,joy\nyo,joy|fear\n")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 3" in err and "'fear'" in err

    base = tmp_path / "export"
    assert main(["export", str(run), "--export-dir", str(base)]) == 0
    capsys.readouterr()
    assert main(["predict", str(base), "i am so mad", "happy and in love"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    import keras

    trained = keras.saving.load_model(run / "model.keras")
    assert [line["labels"] for line in lines] == trained.predict_labels(
        ["i am so mad", "happy and in love"])
    assert set(lines[0]["probabilities"]) == {"anger", "joy", "love"}
