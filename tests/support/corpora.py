"""Plain readers of the real corpora's text, for tokenizer agreement tests.

They return raw text segments only; the package's own readers (with labels
and error reporting) live in keras_bert_ft.data.
"""

from __future__ import annotations

from pathlib import Path


def _tsv_rows(path: Path, skip_header: bool) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    if skip_header:
        lines = lines[1:]
    return [line.split("\t") for line in lines if line.strip()]


def sst2_sentences(data_dir: Path, split: str = "train") -> list[str]:
    """SST-2 sentences (GLUE train or dev)."""
    return [row[0] for row in _tsv_rows(data_dir / "sst2" / f"{split}.tsv", skip_header=True)]


def sms_messages(data_dir: Path) -> list[str]:
    """Every message of the SMS Spam Collection."""
    return [row[1] for row in _tsv_rows(data_dir / "sms_spam" / "SMSSpamCollection", False)]


def snli_pairs(data_dir: Path, split: str = "dev") -> tuple[list[str], list[str]]:
    """SNLI premises and hypotheses, line-aligned."""
    read = lambda name: (data_dir / "snli" / f"{name}.{split}").read_text("utf-8").split("\n")  # noqa: E731
    premises, hypotheses = read("s1"), read("s2")
    n = min(len(premises), len(hypotheses))
    pairs = [(a, b) for a, b in zip(premises[:n], hypotheses[:n], strict=True) if a or b]
    return [a for a, _ in pairs], [b for _, b in pairs]


def mrpc_pairs(data_dir: Path, split: str = "train") -> tuple[list[str], list[str]]:
    """MRPC sentence pairs from the GLUE TSV."""
    rows = _tsv_rows(data_dir / "mrpc" / f"{split}.tsv", skip_header=True)
    return [row[3] for row in rows], [row[4] for row in rows]
