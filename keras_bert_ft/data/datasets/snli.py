"""SNLI 1.0: premise/hypothesis pairs labelled entailment, neutral or contradiction."""

from __future__ import annotations

import json
from pathlib import Path

from keras_bert_ft.data.datasets._files import read_lines
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, from_columns, read_text
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile
from keras_bert_ft.errors import DataError

LABELS = LabelVocabulary(("entailment", "neutral", "contradiction"))
_SPLITS = (("train", "train"), ("validation", "dev"), ("test", "test"))


def locate(base: Path) -> Path | None:
    """The folder with either layout: `base` or `base/snli_1.0`."""
    for d in (base, base / "snli_1.0"):
        if (d / "s1.test").is_file() or (d / "snli_1.0_test.jsonl").is_file():
            return d
    return None


def parse(root: Path) -> dict[str, TextDataset]:
    """Every split present in either layout (the aligned files win)."""
    out = {}
    for split, suffix in _SPLITS:
        if (root / f"s1.{suffix}").is_file():
            out[split] = _parse_aligned(root, suffix)
        elif (root / f"snli_1.0_{suffix}.jsonl").is_file():
            out[split] = _parse_jsonl(root / f"snli_1.0_{suffix}.jsonl")
    return out


def _parse_aligned(root: Path, suffix: str) -> TextDataset:
    """e-SNLI / InferSent layout: s1.x, s2.x and labels.x, aligned by line."""
    paths = [root / f"{p}.{suffix}" for p in ("s1", "s2", "labels")]
    s1, s2, labels = (read_lines(p) for p in paths)
    if not len(s1) == len(s2) == len(labels):
        raise DataError(
            f"line counts differ: {paths[0].name} {len(s1)}, {paths[1].name} {len(s2)}, "
            f"{paths[2].name} {len(labels)}",
            path=root,
            hint="the three files must be aligned line by line; re-copy them",
        )
    values = {"text": s1, "pair": s2, "label": labels}
    roles = {"text": "s1", "pair": "s2", "label": "labels"}
    lines = list(range(1, len(s1) + 1))
    return from_columns(values, lines, roles, path=str(paths[2]), label_vocab=LABELS)


def _parse_jsonl(path: Path) -> TextDataset:
    """The official snli_1.0_*.jsonl; pairs without a gold label ("-") are dropped."""
    values: dict[str, list] = {"text": [], "pair": [], "label": []}
    lines = []
    for line, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        record = json.loads(raw)
        if record["gold_label"] == "-":
            continue
        values["text"].append(record["sentence1"])
        values["pair"].append(record["sentence2"])
        values["label"].append(record["gold_label"])
        lines.append(line)
    roles = {"text": "sentence1", "pair": "sentence2", "label": "gold_label"}
    return from_columns(values, lines, roles, path=str(path), label_vocab=LABELS)


SPEC = DatasetSpec(
    name="snli",
    description="SNLI 1.0 premise/hypothesis pairs: entailment / neutral / contradiction",
    homepage="https://nlp.stanford.edu/projects/snli/",
    files=(
        RemoteFile("https://nlp.stanford.edu/projects/snli/snli_1.0.zip", "snli_1.0.zip", True),
    ),
    label_names=LABELS.names,
    text_pair=True,
    layout="s1.{dev,test}, s2.{dev,test}, labels.{dev,test} (line-aligned), "
    "or snli_1.0_{train,dev,test}.jsonl",
    locate=locate,
    parse=parse,
)
