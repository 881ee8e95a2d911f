"""`LabelVocabulary`: the mapping between label names and class indices.

It is saved with a trained model so that evaluation and serving use exactly
the class order the model was trained with.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_bert_ft.errors import DataError
from keras_bert_ft.infra import atomic_write


def label_to_str(value: object) -> str | None:
    """Normalise a raw label (str, int, float such as 1.0 from pandas) to a string.

    Returns None for a missing label (None, NaN or an empty string).
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, (np.integer, np.floating)):
        return label_to_str(value.item())
    text = str(value).strip()
    return text or None


def _sort_key(name: str) -> tuple:
    # Integer labels sort numerically ("2" before "10"); all others alphabetically.
    try:
        return (0, int(name), "")
    except ValueError:
        return (1, 0, name)


@dataclass(frozen=True)
class LabelVocabulary:
    """An ordered list of class names; index i is class i of the model."""

    names: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if not names:
            raise ValueError("a label vocabulary needs at least one label")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate label names in {names}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    @classmethod
    def from_values(cls, values: Iterable[object]) -> LabelVocabulary:
        """Build a vocabulary from the labels seen in training data.

        Integer-like labels keep their numeric order (so "0", "1" stay 0, 1);
        other labels are sorted alphabetically, which makes the order
        independent of the order of rows in the file.
        """
        seen = {s for s in (label_to_str(v) for v in values) if s is not None}
        return cls(tuple(sorted(seen, key=_sort_key)))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return label_to_str(name) in self._index

    def index(self, name: object) -> int:
        """The class index of one label; KeyError if unknown."""
        return self._index[label_to_str(name)]

    def encode(
        self,
        values: Sequence[object],
        *,
        source: str | None = None,
        lines: Sequence[int] | None = None,
        unit: str = "line",
    ) -> np.ndarray:
        """Map label names to int32 class indices.

        An unknown label raises `DataError` naming the source and line of the
        first offending row (pass `lines`, the line number of each value).
        """
        out = np.empty(len(values), dtype=np.int32)
        for i, value in enumerate(values):
            idx = self._index.get(label_to_str(value))
            if idx is None:
                raise DataError(
                    f"unknown label {value!r}; the model knows {len(self)} labels: "
                    f"{', '.join(self.names)}",
                    path=source,
                    line=None if lines is None else lines[i],
                    unit=unit,
                    hint="use one of the known labels, or retrain the model with this class",
                )
            out[i] = idx
        return out

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Map class indices back to label names."""
        return [self.names[int(i)] for i in indices]

    def to_json(self) -> str:
        return json.dumps({"labels": list(self.names)}, ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> LabelVocabulary:
        return cls(tuple(json.loads(text)["labels"]))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON, atomically."""
        return atomic_write(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelVocabulary:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- multi-label


def split_label_list(
    value: object,
    *,
    separator: str = "|",
    source: str | None = None,
    line: int | None = None,
    column: int | None = None,
    unit: str = "line",
) -> list[str]:
    """The label names of one multi-label cell.

    A list (from JSONL or a DataFrame) is taken as it is; a string is either a
    JSON list (it starts with "[") or names joined by `separator`. A missing
    value is an empty list. Each name is normalised with `label_to_str`;
    duplicates are dropped. A malformed JSON list or a list item that is not
    a scalar raises `DataError` naming where.
    """
    where = dict(path=source, line=line, column=column, unit=unit)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(
                f"the label list {value.strip()!r} is not a valid JSON list ({e.msg})",
                hint='write it like ["joy", "love"], or join the labels with '
                f"{separator!r}", **where,
            ) from None
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        for item in items:
            if isinstance(item, (list, tuple, dict)):
                raise DataError(
                    f"the label list holds {item!r}, not a label name",
                    hint="a label list holds names or numbers only", **where,
                )
    else:
        text = label_to_str(value)
        if text is None:
            return []
        items = text.split(separator) if separator else [text]
    names = [label_to_str(item) for item in items]
    return list(dict.fromkeys(n for n in names if n is not None))


def multi_hot(
    vocab: LabelVocabulary,
    label_lists: Sequence[Sequence[str]],
    *,
    source: str | None = None,
    lines: Sequence[int] | None = None,
    column: int | None = None,
    unit: str = "line",
    allow_empty: bool = False,
) -> np.ndarray:
    """Map each row's label names to a float32 0/1 row over `vocab` ([n, len(vocab)]).

    A name not in `vocab` raises `DataError` naming the row; so does a row
    with no labels unless `allow_empty`.
    """
    out = np.zeros((len(label_lists), len(vocab)), dtype=np.float32)
    for i, names in enumerate(label_lists):
        where = dict(path=source, line=None if lines is None else lines[i], column=column,
                     unit=unit)  # fmt: skip
        if not names and not allow_empty:
            raise DataError(
                "the row has no labels",
                hint="give every row at least one label, or allow rows without labels "
                "(allow_empty_labels=True, --allow-empty-labels)", **where,
            )
        for name in names:
            j = vocab._index.get(name)
            if j is None:
                raise DataError(
                    f"unknown label {name!r}; the model knows {len(vocab)} labels: "
                    f"{', '.join(vocab.names)}",
                    hint="use one of the known labels, or retrain the model with this label",
                    **where,
                )
            out[i, j] = 1.0
    return out


def decode_multi_hot(vocab: LabelVocabulary, rows: np.ndarray) -> list[list[str]]:
    """The label names of each 0/1 row."""
    return [[vocab.names[j] for j in np.flatnonzero(np.asarray(row) > 0.5)] for row in rows]
