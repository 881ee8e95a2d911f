"""Classification reports: accuracy, macro-F1, per-class precision/recall/F1,
a confusion matrix as text and as a PNG, and a JSON of all metrics.

The metrics are plain numpy. Conventions follow the usual definitions: a
class never predicted has precision 0, a class absent from the true labels
has recall 0 (and both are reported with their support, so a reader can tell).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bert_ft.infra import atomic_path, atomic_write


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts[i, j] = rows whose true class is i and predicted class is j."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("class indices must be non-negative")
    k = num_classes
    if k is None:
        k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    if len(y_true) and max(y_true.max(), y_pred.max()) >= k:
        raise ValueError(f"a class index is >= num_classes={k}")
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def predictions_to_classes(y_pred) -> np.ndarray:
    """Class indices from indices, probabilities/logits [n, k], or sigmoid scores [n] / [n, 1]."""
    y = np.asarray(y_pred)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 2:
        y = y[:, 0]
    if np.issubdtype(y.dtype, np.floating):
        return (y >= 0.5).astype(np.int64)  # a single sigmoid probability
    return y.astype(np.int64)



def per_class_metrics(report, thresholds=None) -> dict[str, dict]:
    """Precision, recall, F1 and support (and threshold) of each label, keyed by name."""
    out = {}
    for i, name in enumerate(report.label_names):
        out[name] = {
            "precision": float(report.precision[i]),
            "recall": float(report.recall[i]),
            "f1": float(report.f1[i]),
            "support": int(report.support[i]),
        }
        if thresholds is not None:
            out[name]["threshold"] = float(thresholds[i])
    return out


class ReportBase:
    """What the single- and multi-label reports share: macro averages over their
    `precision`, `recall` and `f1` arrays (one entry a class, or a label: each counts
    the same), printing and JSON (of the subclass's `to_text` and `to_dict`)."""

    @property
    def macro_precision(self) -> float:
        return float(self.precision.mean())

    @property
    def macro_recall(self) -> float:
        return float(self.recall.mean())

    @property
    def macro_f1(self) -> float:
        return float(self.f1.mean())

    def __str__(self) -> str:
        return self.to_text()

    def save_json(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write `to_dict()` (plus `extra`, e.g. run settings) as JSON, atomically."""
        payload = self.to_dict()
        if extra:
            payload = {**extra, **payload}
        return atomic_write(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


@dataclass
class ClassificationReport(ReportBase):
    """All metrics of one evaluation; build it with `classification_report`."""

    label_names: list[str]
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.total) if self.total else 0.0

    @property
    def weighted_f1(self) -> float:
        return float(np.average(self.f1, weights=self.support)) if self.total else 0.0

    def to_dict(self) -> dict:
        """Every metric as plain Python numbers, ready for JSON."""
        return {
            "num_examples": self.total,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "weighted_f1": self.weighted_f1,
            "per_class": per_class_metrics(self),
            "labels": list(self.label_names),
            "confusion_matrix": self.confusion.tolist(),
        }

    def to_text(self, digits: int = 4) -> str:
        """The per-class table, the summary lines and the confusion matrix."""
        w = max(12, *(len(n) for n in self.label_names))
        head = f"{'':>{w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}"
        rows = [head]
        for i, name in enumerate(self.label_names):
            rows.append(
                f"{name:>{w}}  {self.precision[i]:>9.{digits}f}  {self.recall[i]:>9.{digits}f}  "
                f"{self.f1[i]:>9.{digits}f}  {int(self.support[i]):>8}"
            )
        rows.append("")
        rows.append(
            f"{'accuracy':>{w}}  {'':>9}  {'':>9}  {self.accuracy:>9.{digits}f}  {self.total:>8}"
        )
        rows.append(
            f"{'macro avg':>{w}}  {self.macro_precision:>9.{digits}f}  "
            f"{self.macro_recall:>9.{digits}f}  {self.macro_f1:>9.{digits}f}  {self.total:>8}"
        )
        rows.append("")
        rows.append(confusion_matrix_text(self.confusion, self.label_names))
        return "\n".join(rows)

    def save_confusion_png(self, path: str | os.PathLike, title: str | None = None) -> Path:
        return plot_confusion_matrix(self.confusion, self.label_names, path, title=title)

    def save(
        self, directory: str | os.PathLike, prefix: str = "", extra: dict | None = None
    ) -> dict[str, Path]:
        """Write metrics.json, report.txt and confusion_matrix.png into `directory`."""
        d = Path(directory)
        return {
            "json": self.save_json(d / f"{prefix}metrics.json", extra=extra),
            "text": atomic_write(d / f"{prefix}report.txt", self.to_text() + "\n"),
            "png": self.save_confusion_png(d / f"{prefix}confusion_matrix.png"),
        }


def classification_report(
    y_true,
    y_pred,
    label_names: Sequence[str] | None = None,
) -> ClassificationReport:
    """Metrics for true class indices against predictions.

    `y_pred` may be class indices or scores (see `predictions_to_classes`).
    `label_names` fixes the number of classes; classes with no rows still
    appear, with support 0.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    pred = predictions_to_classes(y_pred)
    k = None if label_names is None else len(label_names)
    cm = confusion_matrix(y_true, pred, k)
    names = list(label_names) if label_names is not None else [str(i) for i in range(len(cm))]
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return ClassificationReport(names, cm, precision, recall, f1, support)


def confusion_matrix_text(cm: np.ndarray, label_names: Sequence[str]) -> str:
    """The confusion matrix as an aligned table: rows are true, columns predicted."""
    names = [str(n) for n in label_names]
    w = max(6, *(len(n) for n in names), len(str(int(cm.max(initial=0)))))
    lines = ["confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * w + "  " + "  ".join(f"{n:>{w}}" for n in names))
    for name, row in zip(names, cm, strict=True):
        lines.append(f"{name:>{w}}  " + "  ".join(f"{int(v):>{w}}" for v in row))
    return "\n".join(lines)


def plot_confusion_matrix(
    cm: np.ndarray,
    label_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    normalize: bool = False,
) -> Path:
    """Save the confusion matrix as a PNG heat map (counts in the cells), atomically."""
    # A bare Figure draws with the Agg canvas and touches no pyplot global
    # state, so it works headless and does not disturb a user's backend.
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    shown = _safe_div(cm, cm.sum(axis=1, keepdims=True)) if normalize else cm
    k = len(label_names)
    size = max(4.0, 0.6 * k + 2.5)
    fig = Figure(figsize=(size, size), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=label_names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(k):
        for j in range(k):
            text = f"{shown[i, j]:.2f}" if normalize else str(int(cm[i, j]))
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


# --------------------------------------------------------------------------- multi-label


@dataclass
class MultiLabelReport(ReportBase):
    """Metrics of one multi-label evaluation; build it with `multilabel_report`.

    Per label: precision, recall, F1 and support (rows with the label).
    Micro averages pool every (row, label) decision; macro averages are the
    mean over labels. Subset accuracy counts rows whose whole label set is
    right; Hamming loss is the fraction of wrong (row, label) decisions.
    """

    label_names: list[str]
    true_positives: np.ndarray
    predicted: np.ndarray
    support: np.ndarray
    num_examples: int
    exact_matches: int
    wrong_decisions: int
    thresholds: np.ndarray

    @property
    def precision(self) -> np.ndarray:
        return _safe_div(self.true_positives, self.predicted)

    @property
    def recall(self) -> np.ndarray:
        return _safe_div(self.true_positives, self.support)

    @property
    def f1(self) -> np.ndarray:
        return _safe_div(2 * self.true_positives, self.predicted + self.support)

    @property
    def micro_precision(self) -> float:
        return float(_safe_div(self.true_positives.sum(), self.predicted.sum()))

    @property
    def micro_recall(self) -> float:
        return float(_safe_div(self.true_positives.sum(), self.support.sum()))

    @property
    def micro_f1(self) -> float:
        return float(_safe_div(2 * self.true_positives.sum(),
                               self.predicted.sum() + self.support.sum()))  # fmt: skip

    @property
    def subset_accuracy(self) -> float:
        return self.exact_matches / self.num_examples if self.num_examples else 0.0

    @property
    def hamming_loss(self) -> float:
        cells = self.num_examples * len(self.label_names)
        return self.wrong_decisions / cells if cells else 0.0

    def to_dict(self) -> dict:
        """Every metric as plain Python numbers, ready for JSON."""
        return {
            "multi_label": True,
            "num_examples": self.num_examples,
            "micro_f1": self.micro_f1,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "macro_f1": self.macro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "subset_accuracy": self.subset_accuracy,
            "hamming_loss": self.hamming_loss,
            "per_class": per_class_metrics(self, thresholds=self.thresholds),
            "labels": list(self.label_names),
        }

    def to_text(self, digits: int = 4) -> str:
        """The per-label table (with each label's threshold) and the summary lines."""
        w = max(14, *(len(n) for n in self.label_names))
        rows = [f"{'':>{w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}  "
                f"{'threshold':>9}"]  # fmt: skip
        p, r, f = self.precision, self.recall, self.f1
        for i, name in enumerate(self.label_names):
            rows.append(
                f"{name:>{w}}  {p[i]:>9.{digits}f}  {r[i]:>9.{digits}f}  {f[i]:>9.{digits}f}  "
                f"{int(self.support[i]):>8}  {float(self.thresholds[i]):>9.{digits}f}"
            )
        total = int(self.support.sum())
        rows += [
            "",
            f"{'micro avg':>{w}}  {self.micro_precision:>9.{digits}f}  "
            f"{self.micro_recall:>9.{digits}f}  {self.micro_f1:>9.{digits}f}  {total:>8}",
            f"{'macro avg':>{w}}  {self.macro_precision:>9.{digits}f}  "
            f"{self.macro_recall:>9.{digits}f}  {self.macro_f1:>9.{digits}f}  {total:>8}",
            f"{'subset accuracy':>{w}}  {'':>9}  {'':>9}  {self.subset_accuracy:>9.{digits}f}  "
            f"{self.num_examples:>8}",
            f"{'hamming loss':>{w}}  {'':>9}  {'':>9}  {self.hamming_loss:>9.{digits}f}  "
            f"{self.num_examples:>8}",
        ]
        return "\n".join(rows)


    def save(
        self, directory: str | os.PathLike, prefix: str = "", extra: dict | None = None
    ) -> dict[str, Path]:
        """Write metrics.json and report.txt into `directory` (no confusion matrix:
        labels are not exclusive)."""
        d = Path(directory)
        return {
            "json": self.save_json(d / f"{prefix}metrics.json", extra=extra),
            "text": atomic_write(d / f"{prefix}report.txt", self.to_text() + "\n"),
        }


def multilabel_report(
    y_true,
    scores,
    label_names: Sequence[str] | None = None,
    thresholds: Sequence[float] | np.ndarray | float = 0.5,
) -> MultiLabelReport:
    """Metrics for 0/1 targets [n, k] against sigmoid scores [n, k].

    Label j is predicted where `scores[:, j] >= thresholds[j]` (one number
    applies to every label). Pass 0/1 predictions as `scores` to report them as
    they are.
    """
    y_true = np.asarray(y_true) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"targets {y_true.shape} and scores {scores.shape} must both be "
                         "[rows, labels]")  # fmt: skip
    k = y_true.shape[1]
    cut = np.broadcast_to(np.asarray(thresholds, dtype=np.float32), (k,)).astype(np.float32)
    pred = scores.astype(np.float32) >= cut
    names = list(label_names) if label_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} label names for {k} labels")
    return MultiLabelReport(
        label_names=names,
        true_positives=(pred & y_true).sum(axis=0).astype(np.float64),
        predicted=pred.sum(axis=0).astype(np.float64),
        support=y_true.sum(axis=0).astype(np.float64),
        num_examples=len(y_true),
        exact_matches=int((pred == y_true).all(axis=1).sum()),
        wrong_decisions=int((pred != y_true).sum()),
        thresholds=cut.copy(),
    )
