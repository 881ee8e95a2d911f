"""IMDB movie reviews (Maas et al. 2011): the aclImdb tree or its JSON Lines conversion."""

from __future__ import annotations

import json
import re
from pathlib import Path

from keras_bert_ft.data.datasets._files import first_dir
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, from_columns, read_text
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile
from keras_bert_ft.data.splits import split_indices
from keras_bert_ft.errors import DataError

IMDB_VALIDATION_FRACTION = 0.1
IMDB_SPLIT_SEED = 2011
LABELS = LabelVocabulary(("neg", "pos"))
_HTML_BREAKS = re.compile(r"(?:\s*<br\s*/?>\s*)+", re.IGNORECASE)
_TREE = ("train/pos", "train/neg", "test/pos")
_JSONL = ("train.jsonl", "test.jsonl")


def _review(text: str) -> str:
    # The reviews keep their HTML line breaks; a space reads the same.
    return _HTML_BREAKS.sub(" ", text)


def locate(base: Path) -> Path | None:
    """The aclImdb tree (in `base` or `base/aclImdb`), else train.jsonl and test.jsonl."""
    return first_dir(base, ("aclImdb",), _TREE) or first_dir(base, (), _JSONL)


def parse(root: Path) -> dict[str, TextDataset]:
    """train (less a fixed 10% held out as "validation") and test."""
    read = _read_tree if all((root / r).is_dir() for r in _TREE) else _read_jsonl
    full, test = read(root, "train"), read(root, "test")
    # IMDB has no validation split: hold out a fixed, stratified part of train.
    fractions = {"train": 1 - IMDB_VALIDATION_FRACTION, "validation": IMDB_VALIDATION_FRACTION}
    idx = split_indices(full.labels, len(full), fractions, seed=IMDB_SPLIT_SEED)
    return {
        "train": full.subset(idx["train"]),
        "validation": full.subset(idx["validation"]),
        "test": test,
    }


def _read_tree(root: Path, split: str) -> TextDataset:
    """aclImdb/<split>/{neg,pos}/*.txt, one review a file."""
    texts, labels, files = [], [], []
    for label in LABELS.names:
        for f in sorted((root / split / label).glob("*.txt")):
            texts.append(_review(read_text(f)))
            labels.append(label)
            files.append(f"{label}/{f.name}")
    values = {"text": texts, "label": labels}
    roles = {"text": "review", "pair": None, "label": "folder"}
    return from_columns(
        values, files, roles, path=str(root / split), label_vocab=LABELS, unit="file"
    )


def _read_jsonl(root: Path, split: str) -> TextDataset:
    """<split>.jsonl: one {"text", "label" (1 = pos, 0 = neg), ...} object a line."""
    path = root / f"{split}.jsonl"
    texts, labels, lines = [], [], []
    # Split at "\n" only: reviews hold U+2028 and the like, which are not line ends here.
    for line, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            label = LABELS.names[int(record["label"])]
            text = record["text"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise DataError(
                f"not an IMDB review record ({type(e).__name__}: {e})",
                path=path,
                line=line,
                hint='each line must be {"text": ..., "label": 0 or 1}',
            ) from e
        texts.append(_review(text))
        labels.append(label)
        lines.append(line)
    values = {"text": texts, "label": labels}
    roles = {"text": "text", "pair": None, "label": "label"}
    return from_columns(values, lines, roles, path=str(path), label_vocab=LABELS)


SPEC = DatasetSpec(
    name="imdb",
    description="IMDB movie reviews (Maas et al. 2011): train 25,000 (10% held out for "
    "validation) / test 25,000",
    homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
    files=(RemoteFile(
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        "aclImdb_v1.tar.gz",
        True,
    ),),
    label_names=LABELS.names,
    text_pair=False,
    layout="aclImdb/{train,test}/{pos,neg}/*.txt, or train.jsonl and test.jsonl "
    "(one {\"text\", \"label\": 0 or 1} object a line)",
    locate=locate,
    parse=parse,
)  # fmt: skip
