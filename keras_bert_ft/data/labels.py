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

from keras_bert_ft.atomic import atomic_write
from keras_bert_ft.data.errors import DataError


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
