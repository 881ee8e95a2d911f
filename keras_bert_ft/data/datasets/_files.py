"""Small helpers the data set parsers share: where the files are, label names, lines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, read_text, split_lines


def first_dir(base: Path, subdirs: tuple[str, ...], required: tuple[str, ...]) -> Path | None:
    """`base` or the first of `base/<subdir>` that holds every `required` path, else None."""
    for sub in ("", *subdirs):
        d = base / sub if sub else base
        if all((d / r).exists() for r in required):
            return d
    return None


def rename_labels(ds: TextDataset, names: tuple[str, ...]) -> TextDataset:
    """`ds` with its label ids named `names` (files store 0/1; reports read better with names)."""
    return replace(ds, label_vocab=LabelVocabulary(names))


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, split at line ends only."""
    return split_lines(read_text(path))
