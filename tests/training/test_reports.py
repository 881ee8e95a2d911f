"""Tests of keras_bert_ft.reports: metrics by hand, against sklearn when it is
installed, the text and PNG confusion matrix, and atomic JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_bert_ft.infra import atomic_path, atomic_write
from keras_bert_ft.reports import (
    classification_report,
    confusion_matrix,
    confusion_matrix_text,
    plot_confusion_matrix,
    predictions_to_classes,
)

Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]
NAMES = ["entailment", "neutral", "contradiction"]


def test_metrics_by_hand():
    r = classification_report(Y_TRUE, Y_PRED, NAMES)
    np.testing.assert_array_equal(r.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_allclose(r.precision, [1 / 2, 2 / 3, 1.0])
    np.testing.assert_allclose(r.recall, [1 / 2, 1.0, 1 / 2])
    np.testing.assert_allclose(r.f1, [1 / 2, 4 / 5, 2 / 3])
    assert r.support.tolist() == [2, 2, 2]
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.macro_f1 == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert r.weighted_f1 == pytest.approx(r.macro_f1)  # equal supports


def test_binary_spam_case_by_hand():
    # 8 ham, 2 spam; one spam missed, one ham flagged.
    y_true = [0] * 8 + [1] * 2
    y_pred = [0] * 7 + [1] + [1, 0]
    r = classification_report(y_true, y_pred, ["ham", "spam"])
    d = r.to_dict()
    assert d["per_class"]["spam"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert d["per_class"]["ham"]["precision"] == pytest.approx(7 / 8)
    assert d["accuracy"] == pytest.approx(0.8)
    assert d["confusion_matrix"] == [[7, 1], [1, 1]]


def test_never_predicted_and_absent_classes_give_zero_not_nan():
    r = classification_report([0, 0, 1], [0, 0, 0], ["a", "b", "c"])
    assert r.precision.tolist() == [pytest.approx(2 / 3), 0.0, 0.0]
    assert r.recall.tolist() == [1.0, 0.0, 0.0]
    assert r.support.tolist() == [2, 1, 0]
    assert np.isfinite(r.f1).all() and r.confusion.shape == (3, 3)
    empty = classification_report([], [], ["a", "b"])
    assert empty.accuracy == 0.0 and empty.total == 0


def test_scores_are_turned_into_classes():
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert predictions_to_classes(probs).tolist() == [1, 0, 1]
    assert predictions_to_classes(np.array([0.2, 0.6, 0.5])).tolist() == [0, 1, 1]
    assert predictions_to_classes(np.array([[0.2], [0.9]])).tolist() == [0, 1]
    assert classification_report([1, 0, 0], probs, ["n", "p"]).accuracy == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="num_classes=2"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=200))
def test_metric_identities(pairs):
    y_true, y_pred = (np.array(v) for v in zip(*pairs, strict=True))
    r = classification_report(y_true, y_pred, [str(i) for i in range(5)])
    assert r.total == len(pairs)
    assert r.accuracy == pytest.approx(np.mean(y_true == y_pred))
    assert ((r.f1 >= 0) & (r.f1 <= 1)).all()
    # F1 lies between precision and recall (the harmonic mean is bounded by them).
    lo, hi = np.minimum(r.precision, r.recall), np.maximum(r.precision, r.recall)
    assert ((r.f1 >= lo - 1e-12) & (r.f1 <= hi + 1e-12)).all()
    for c in range(5):
        assert r.confusion[c].sum() == (y_true == c).sum()
        assert r.confusion[:, c].sum() == (y_pred == c).sum()


def test_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 4, 500))
    r = classification_report(y_true, y_pred, list("abcd"))
    np.testing.assert_array_equal(r.confusion, metrics.confusion_matrix(y_true, y_pred))
    assert r.macro_f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    np.testing.assert_allclose(r.precision, metrics.precision_score(y_true, y_pred, average=None))
    np.testing.assert_allclose(r.recall, metrics.recall_score(y_true, y_pred, average=None))


def test_text_report():
    text = classification_report(Y_TRUE, Y_PRED, NAMES).to_text()
    assert "contradiction" in text and "accuracy" in text and "macro avg" in text
    assert "0.6667" in text  # accuracy 4/6 and contradiction F1
    assert "0.8000" in text  # neutral F1
    table = confusion_matrix_text(np.array([[7, 1], [1, 1]]), ["ham", "spam"])
    lines = table.splitlines()
    assert "rows: true" in lines[0]
    assert lines[2].split() == ["ham", "7", "1"] and lines[3].split() == ["spam", "1", "1"]


def test_json_png_and_text_files(tmp_path):
    r = classification_report(Y_TRUE, Y_PRED, NAMES)
    paths = r.save(tmp_path / "eval", extra={"dataset": "snli", "split": "test"})
    data = json.loads(paths["json"].read_text())
    assert data["dataset"] == "snli" and data["labels"] == NAMES
    assert data["accuracy"] == pytest.approx(4 / 6)
    assert data["per_class"]["neutral"]["f1"] == pytest.approx(0.8)
    assert data["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert paths["text"].read_text().startswith(" " * 10)
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    import matplotlib.image

    image = matplotlib.image.imread(paths["png"])
    assert image.shape[0] >= 300 and image.shape[1] >= 300
    # Only the three files: no temporary files left behind.
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "confusion_matrix.png",
        "metrics.json",
        "report.txt",
    ]
    normalized = plot_confusion_matrix(r.confusion, NAMES, tmp_path / "n.png", normalize=True)
    assert normalized.read_bytes()[:4] == b"\x89PNG"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = atomic_write(tmp_path / "metrics.json", '{"accuracy": 0.5}')
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as tmp:
            tmp.write_text('{"accura')  # half written, then the process "dies"
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    r = classification_report([0, 1], [0, 1], ["a", "b"])
    r.save_json(target)
    assert json.loads(target.read_text())["accuracy"] == 1.0
