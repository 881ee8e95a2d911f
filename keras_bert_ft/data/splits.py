"""Seeded, stratified train/validation/test splits."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_bert_ft.data.readers import TextDataset

DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def split_indices(
    labels: np.ndarray | None,
    n: int,
    fractions: Mapping[str, float],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Assign each of `n` rows to one split, keeping class proportions per split.

    Within each class the rows are shuffled with `seed` and cut at the
    cumulative fractions, so every split gets (to within one row) its share
    of every class. Returned indices are sorted, so each split keeps the
    original row order. With `labels=None` the split is random, unstratified.
    """
    names = list(fractions)
    f = np.array([fractions[k] for k in names], dtype=np.float64)
    if len(f) == 0 or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(
            f"split fractions must be non-negative and sum to 1, got {dict(fractions)}"
        )
    rng = np.random.default_rng(seed)
    if labels is not None and np.ndim(labels) == 2:
        labels = rarest_label(labels)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    cum = np.cumsum(f)
    for members in groups:
        members = rng.permutation(members)
        bounds = np.rint(cum * len(members)).astype(np.int64)
        bounds[-1] = len(members)
        start = 0
        for name, stop in zip(names, bounds, strict=True):
            parts[name].append(members[start:stop])
            start = stop
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def rarest_label(multi_hot: np.ndarray) -> np.ndarray:
    """Per row of a 0/1 label matrix, its rarest label (-1 for none): the stratum of a
    multi-label row, so that rare labels reach every split."""
    on = np.asarray(multi_hot) > 0.5
    counts = on.sum(axis=0)
    rank = np.where(on, counts[None, :], np.iinfo(np.int64).max)
    return np.where(on.any(axis=1), rank.argmin(axis=1), -1)


def stratified_split(
    dataset: TextDataset,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, TextDataset]:
    """Split a dataset into named parts, stratified by label, reproducibly.

    `fractions` maps split names to fractions summing to 1; the default is
    train 0.8 / validation 0.1 / test 0.1.
    """
    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    idx = split_indices(dataset.labels, len(dataset), fractions, seed)
    return {
        name: dataset.subset(rows, source=f"{dataset.source}[{name}]") for name, rows in idx.items()
    }
