"""SST-2 (GLUE): binary sentiment of movie-review sentences."""

from __future__ import annotations

from pathlib import Path

from keras_bert_ft.data.datasets._files import first_dir, rename_labels
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, read_tsv
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile

LABELS = ("negative", "positive")


def parse(root: Path) -> dict[str, TextDataset]:
    """train.tsv and dev.tsv (as "validation"); GLUE hides the test labels."""
    binary = LabelVocabulary(("0", "1"))
    out = {}
    for split, filename in (("train", "train.tsv"), ("validation", "dev.tsv")):
        ds = read_tsv(root / filename, "sentence", label_column="label", label_vocab=binary)
        out[split] = rename_labels(ds, LABELS)
    return out


SPEC = DatasetSpec(
    name="sst2",
    description="SST-2 binary sentiment (GLUE): train 67,349 / validation (dev) 872",
    homepage="https://nlp.stanford.edu/sentiment/",
    files=(RemoteFile("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2.zip", True),),
    label_names=LABELS,
    text_pair=False,
    layout="train.tsv and dev.tsv (GLUE: header 'sentence<TAB>label')",
    locate=lambda base: first_dir(base, ("SST-2",), ("train.tsv", "dev.tsv")),
    parse=parse,
)
