"""SMS Spam Collection v.1: ham/spam text messages, with a fixed split of our own."""

from __future__ import annotations

from pathlib import Path

from keras_bert_ft.data.datasets._files import first_dir
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import TextDataset, read_tsv
from keras_bert_ft.data.registry import DatasetSpec, RemoteFile
from keras_bert_ft.data.splits import stratified_split

# The collection has no official split: a fixed, stratified 70/10/20 one.
SMS_SPLIT = {"train": 0.7, "validation": 0.1, "test": 0.2}
SMS_SPLIT_SEED = 2011


def parse(root: Path) -> dict[str, TextDataset]:
    """SMSSpamCollection ('<ham|spam><TAB><message>'), split by SMS_SPLIT."""
    ds = read_tsv(
        root / "SMSSpamCollection", 1, label_column=0, header=False,
        label_vocab=LabelVocabulary(("ham", "spam")),
    )  # fmt: skip
    return stratified_split(ds, SMS_SPLIT, seed=SMS_SPLIT_SEED)


SPEC = DatasetSpec(
    name="sms_spam",
    description="SMS Spam Collection v.1: 5,574 messages, ham/spam; "
    "a fixed stratified 70/10/20 split",
    homepage="https://archive.ics.uci.edu/dataset/228/sms+spam+collection",
    files=(RemoteFile(
        "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        "sms_spam_collection.zip",
        True,
    ),),
    label_names=("ham", "spam"),
    text_pair=False,
    layout="SMSSpamCollection ('<ham|spam><TAB><message>', no header)",
    locate=lambda base: first_dir(base, ("smsspamcollection",), ("SMSSpamCollection",)),
    parse=parse,
)  # fmt: skip
