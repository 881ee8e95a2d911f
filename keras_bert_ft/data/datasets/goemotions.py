"""GoEmotions: Reddit comments with one or more of 28 labels (27 emotions and neutral)."""

from __future__ import annotations

from pathlib import Path

from keras_bert_ft.data.datasets._files import first_dir, read_lines, rename_labels
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, read_tsv
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile
from keras_bert_ft.errors import DataError

_SPLITS = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))

LABELS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip


def parse(root: Path) -> dict[str, TextDataset]:
    """train.tsv, dev.tsv (as "validation") and test.tsv, multi-label."""
    # Rows are "text<TAB>comma-separated label ids<TAB>comment id", no header;
    # id i is the i-th name (labels.txt or emotions.txt, when present, must agree).
    # Every row has at least one label.
    for listing in ("labels.txt", "emotions.txt"):
        if (root / listing).exists():
            found = tuple(n.strip() for n in read_lines(root / listing) if n.strip())
            if found != LABELS:
                raise DataError(
                    f"the label names differ from GoEmotions' 28 ({found[:3]}...)",
                    path=root / listing,
                    hint="use the original label list",
                )
    ids = LabelVocabulary(tuple(str(i) for i in range(len(LABELS))))
    out = {}
    for split, filename in _SPLITS:
        ds = read_tsv(root / filename, 0, label_column=1, header=False, label_vocab=ids,
                      multi_label=True, label_separator=",")  # fmt: skip
        out[split] = rename_labels(ds, LABELS)
    return out


SPEC = DatasetSpec(
    name="goemotions",
    description="GoEmotions (Demszky et al. 2020): Reddit comments, 28 labels (27 emotions + "
    "neutral), multi-label; train 43,410 / validation (dev) 5,426 / test 5,427",
    homepage="https://github.com/google-research/google-research/tree/master/goemotions",
    files=tuple(
        RemoteFile("https://raw.githubusercontent.com/google-research/google-research/master/"
                   f"goemotions/data/{f}", f)
        for f in ("train.tsv", "dev.tsv", "test.tsv", "emotions.txt")
    ),
    label_names=LABELS,
    text_pair=False,
    layout="train.tsv, dev.tsv, test.tsv ('text<TAB>label ids<TAB>id', no header)",
    locate=lambda base: first_dir(base, ("data",), ("train.tsv", "dev.tsv", "test.tsv")),
    parse=parse,
)  # fmt: skip
