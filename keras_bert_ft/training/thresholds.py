"""Per-label decision thresholds for multi-label heads, tuned on validation data.

A sigmoid score of 0.5 is rarely the best cut for a rare label: the model
sees few positives and scores them low. `tune_thresholds` picks, for each
label separately, the threshold that maximises that label's F1 on the
validation scores; the model and its export then predict label j when
`score_j >= threshold_j`.

Rules:
- Candidates are the cuts between neighbouring distinct scores; the chosen
  threshold is the midpoint between the lowest score predicted positive and
  the next lower score (half the lowest score when every row is predicted
  positive). A midpoint, not the score itself, so that scores which move by
  float rounding (an exported graph, another batch size) fall on the same side.
- Ties in F1 go to the higher threshold (fewer rows predicted positive).
- A label with no positive row in the validation data keeps `default`
  (0.5): there is nothing to tune it on.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5


def best_f1_threshold(
    scores: np.ndarray, targets: np.ndarray, default: float = DEFAULT_THRESHOLD
) -> tuple[float, float]:
    """The threshold maximising F1 for one label, and that F1.

    `scores` and `targets` (0/1) are 1-D, one value per validation row. Returns
    `(default, 0.0)` when `targets` has no positive row.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel() > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"{len(scores)} scores but {len(targets)} targets")
    positives = int(targets.sum())
    if positives == 0:
        return float(default), 0.0
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order]
    tp = np.cumsum(t)
    predicted = np.arange(1, len(s) + 1)
    # Only cut after the last of a run of equal scores: rows with one score share a side.
    last_of_run = np.append(s[1:] != s[:-1], True)
    f1 = np.where(last_of_run, 2 * tp / (predicted + positives), -1.0)
    # argmax returns the first maximum, i.e. the highest threshold among ties.
    k = int(np.argmax(f1))
    lower = s[k + 1] if k + 1 < len(s) else 0.0
    return float((s[k] + lower) / 2), float(f1[k])


def tune_thresholds(
    scores: np.ndarray, targets: np.ndarray, default: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Per-label thresholds ([k] float32) maximising each label's F1 on `scores` [n, k]
    against the 0/1 `targets` [n, k]; see the module docstring for ties and empty labels."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores {scores.shape} and targets {targets.shape} must both be [rows, labels]"
        )
    return np.array(
        [best_f1_threshold(scores[:, j], targets[:, j], default)[0]
         for j in range(scores.shape[1])],
        dtype=np.float32,
    )  # fmt: skip


def apply_thresholds(scores: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """0/1 predictions [n, k]: label j is on where `scores[:, j] >= thresholds[j]`."""
    return (np.asarray(scores) >= np.asarray(thresholds, dtype=np.float32)).astype(np.int8)
