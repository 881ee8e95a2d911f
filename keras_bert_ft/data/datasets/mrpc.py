"""MRPC: Microsoft Research paraphrase pairs, in GLUE's train/dev split."""

from __future__ import annotations

from pathlib import Path

from keras_bert_ft.data.datasets._files import first_dir, read_lines, rename_labels
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, iter_delimited, read_tsv
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile

LABELS = ("not_equivalent", "equivalent")
_COLUMNS = ("#1 String", "#2 String", "Quality")


def locate(base: Path) -> Path | None:
    """The folder with GLUE's files, else the one with the MSR files and dev_ids.tsv."""
    return first_dir(base, ("MRPC",), ("train.tsv", "dev.tsv")) or first_dir(
        base, ("MRPC",), ("msr_paraphrase_train.txt", "dev_ids.tsv")
    )


def _read(path: Path) -> TextDataset:
    ds = read_tsv(path, *_COLUMNS, label_vocab=LabelVocabulary(("0", "1")))
    return rename_labels(ds, LABELS)


def parse(root: Path) -> dict[str, TextDataset]:
    """train and validation (GLUE's split), and test when msr_paraphrase_test.txt is there."""
    if (root / "train.tsv").is_file() and (root / "dev.tsv").is_file():
        # The GLUE files, as prepared by GLUE's download script.
        out = {"train": _read(root / "train.tsv"), "validation": _read(root / "dev.tsv")}
    else:
        out = _split_train(root)
    if (root / "msr_paraphrase_test.txt").is_file():
        out["test"] = _read(root / "msr_paraphrase_test.txt")
    return out


def _split_train(root: Path) -> dict[str, TextDataset]:
    """GLUE's split of the MSR training file: pairs listed in dev_ids.tsv are dev."""
    dev_ids = set()
    for line in read_lines(root / "dev_ids.tsv"):
        if line.strip():
            a, b = line.split("\t")[:2]
            dev_ids.add((a.strip(), b.strip()))
    full = _read(root / "msr_paraphrase_train.txt")
    columns, rows = iter_delimited(
        root / "msr_paraphrase_train.txt", delimiter="\t", quoting="none"
    )
    i1, i2 = columns.index("#1 ID"), columns.index("#2 ID")
    is_dev = [(f[i1], f[i2]) in dev_ids for _, f in rows]
    dev = [i for i, d in enumerate(is_dev) if d]
    train = [i for i, d in enumerate(is_dev) if not d]
    return {"train": full.subset(train), "validation": full.subset(dev)}


SPEC = DatasetSpec(
    name="mrpc",
    description="MRPC paraphrase pairs (GLUE split): train / validation (dev) 408 / test 1,725",
    homepage="https://www.microsoft.com/en-us/download/details.aspx?id=52398",
    files=(
        RemoteFile(
            "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt",
            "msr_paraphrase_train.txt",
        ),
        RemoteFile(
            "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt",
            "msr_paraphrase_test.txt",
        ),
        RemoteFile(
            "https://firebasestorage.googleapis.com/v0/b/mtl-sentence-representations.appspot.com"
            "/o/data%2Fmrpc_dev_ids.tsv?alt=media&token=ec5c0836-31d5-48f4-b431-7480817f1adc",
            "dev_ids.tsv",
        ),
    ),
    label_names=LABELS,
    text_pair=True,
    layout="train.tsv and dev.tsv (GLUE), or msr_paraphrase_train.txt and dev_ids.tsv; "
    "optionally msr_paraphrase_test.txt",
    locate=locate,
    parse=parse,
)
