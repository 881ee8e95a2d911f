"""The dataset registry: sst2, sms_spam, snli, mrpc, imdb and goemotions.

`load_dataset(name)` looks for the files in this order, like
`tensorflow_datasets` and `keras.datasets` do:

1. `$KBF_DATA_DIR/<name>/` (or the `data_dir` argument), a local copy;
2. the cache, `$KBF_CACHE_DIR/<name>/` (default
   `~/.cache/keras_bert_ft/datasets/<name>/`);
3. the data set's canonical public URL, downloaded into the cache
   atomically (fetched into a temporary folder, renamed when complete).

Each entry knows its files and how to parse them into named splits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from keras_bert_ft import infra
from keras_bert_ft.data.download import extract
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import (
    TextDataset,
    from_columns,
    iter_delimited,
    read_text,
    read_tsv,
    split_lines,
)
from keras_bert_ft.data.splits import split_indices, stratified_split
from keras_bert_ft.errors import DataError, DownloadError
from keras_bert_ft.infra import DEFAULT_TIMEOUT_S


class DatasetUnavailableError(DownloadError):
    """A registered data set is neither on disk nor downloadable right now."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set at its canonical URL; archives are unpacked."""

    url: str
    filename: str
    extract: bool = False
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, fetch and parse one data set."""

    name: str
    description: str
    homepage: str
    files: tuple[RemoteFile, ...]
    label_names: tuple[str, ...]
    text_pair: bool
    layout: str  # the local files, for error messages
    locate: Callable[[Path], Path | None]  # the data root inside a folder, or None
    parse: Callable[[Path], dict[str, TextDataset]]


def default_cache_dir() -> Path:
    """The data set cache: `infra.cache_dir("datasets")` ($KBF_CACHE_DIR/datasets, ...)."""
    return infra.cache_dir("datasets")


def _first_dir(base: Path, subdirs: tuple[str, ...], required: tuple[str, ...]) -> Path | None:
    for sub in ("", *subdirs):
        d = base / sub if sub else base
        if all((d / r).exists() for r in required):
            return d
    return None


def _rename_labels(ds: TextDataset, names: tuple[str, ...]) -> TextDataset:
    # Files store 0/1; reports read better with names. Order is unchanged.
    return replace(ds, label_vocab=LabelVocabulary(names))


def _read_lines(path: Path) -> list[str]:
    return split_lines(read_text(path))


# --------------------------------------------------------------------------- SST-2

_SST2_LABELS = ("negative", "positive")


def _parse_sst2(root: Path) -> dict[str, TextDataset]:
    binary = LabelVocabulary(("0", "1"))
    out = {}
    # GLUE hides the test labels, so only train and dev (as validation) are labelled.
    for split, filename in (("train", "train.tsv"), ("validation", "dev.tsv")):
        ds = read_tsv(root / filename, "sentence", label_column="label", label_vocab=binary)
        out[split] = _rename_labels(ds, _SST2_LABELS)
    return out


# --------------------------------------------------------------------------- SMS Spam

# The collection has no official split: a fixed, stratified 70/10/20 one.
SMS_SPLIT = {"train": 0.7, "validation": 0.1, "test": 0.2}
SMS_SPLIT_SEED = 2011


def _parse_sms(root: Path) -> dict[str, TextDataset]:
    ds = read_tsv(
        root / "SMSSpamCollection", 1, label_column=0, header=False,
        label_vocab=LabelVocabulary(("ham", "spam")),
    )  # fmt: skip
    return stratified_split(ds, SMS_SPLIT, seed=SMS_SPLIT_SEED)


# --------------------------------------------------------------------------- SNLI

_SNLI_LABELS = LabelVocabulary(("entailment", "neutral", "contradiction"))
_SNLI_SPLITS = (("train", "train"), ("validation", "dev"), ("test", "test"))


def _locate_snli(base: Path) -> Path | None:
    for d in (base, base / "snli_1.0"):
        if (d / "s1.test").is_file() or (d / "snli_1.0_test.jsonl").is_file():
            return d
    return None


def _parse_snli(root: Path) -> dict[str, TextDataset]:
    out = {}
    for split, suffix in _SNLI_SPLITS:
        if (root / f"s1.{suffix}").is_file():
            out[split] = _parse_snli_aligned(root, suffix)
        elif (root / f"snli_1.0_{suffix}.jsonl").is_file():
            out[split] = _parse_snli_jsonl(root / f"snli_1.0_{suffix}.jsonl")
    return out


def _parse_snli_aligned(root: Path, suffix: str) -> TextDataset:
    """e-SNLI / InferSent layout: s1.x, s2.x and labels.x, aligned by line."""
    paths = [root / f"{p}.{suffix}" for p in ("s1", "s2", "labels")]
    s1, s2, labels = (_read_lines(p) for p in paths)
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
    return from_columns(values, lines, roles, path=str(paths[2]), label_vocab=_SNLI_LABELS)


def _parse_snli_jsonl(path: Path) -> TextDataset:
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
    return from_columns(values, lines, roles, path=str(path), label_vocab=_SNLI_LABELS)


# --------------------------------------------------------------------------- MRPC

_MRPC_LABELS = ("not_equivalent", "equivalent")
_MRPC_COLUMNS = ("#1 String", "#2 String", "Quality")


def _locate_mrpc(base: Path) -> Path | None:
    return _first_dir(base, ("MRPC",), ("train.tsv", "dev.tsv")) or _first_dir(
        base, ("MRPC",), ("msr_paraphrase_train.txt", "dev_ids.tsv")
    )


def _read_mrpc(path: Path) -> TextDataset:
    ds = read_tsv(path, *_MRPC_COLUMNS, label_vocab=LabelVocabulary(("0", "1")))
    return _rename_labels(ds, _MRPC_LABELS)


def _parse_mrpc(root: Path) -> dict[str, TextDataset]:
    if (root / "train.tsv").is_file() and (root / "dev.tsv").is_file():
        # The GLUE files, as prepared by GLUE's download script.
        out = {"train": _read_mrpc(root / "train.tsv"), "validation": _read_mrpc(root / "dev.tsv")}
    else:
        out = _split_mrpc_train(root)
    if (root / "msr_paraphrase_test.txt").is_file():
        out["test"] = _read_mrpc(root / "msr_paraphrase_test.txt")
    return out


def _split_mrpc_train(root: Path) -> dict[str, TextDataset]:
    """GLUE's split of the MSR training file: pairs listed in dev_ids.tsv are dev."""
    dev_ids = set()
    for line in _read_lines(root / "dev_ids.tsv"):
        if line.strip():
            a, b = line.split("\t")[:2]
            dev_ids.add((a.strip(), b.strip()))
    full = _read_mrpc(root / "msr_paraphrase_train.txt")
    columns, rows = iter_delimited(
        root / "msr_paraphrase_train.txt", delimiter="\t", quoting="none"
    )
    i1, i2 = columns.index("#1 ID"), columns.index("#2 ID")
    is_dev = [(f[i1], f[i2]) in dev_ids for _, f in rows]
    dev = [i for i, d in enumerate(is_dev) if d]
    train = [i for i, d in enumerate(is_dev) if not d]
    return {"train": full.subset(train), "validation": full.subset(dev)}


# --------------------------------------------------------------------------- IMDB

IMDB_VALIDATION_FRACTION = 0.1
IMDB_SPLIT_SEED = 2011
_HTML_BREAKS = re.compile(r"(?:\s*<br\s*/?>\s*)+", re.IGNORECASE)


def _parse_imdb(root: Path) -> dict[str, TextDataset]:
    vocab = LabelVocabulary(("neg", "pos"))
    out = {}
    for split in ("train", "test"):
        texts, labels, lines = [], [], []
        for label in vocab.names:
            for f in sorted((root / split / label).glob("*.txt")):
                # The reviews keep their HTML line breaks; a space reads the same.
                texts.append(_HTML_BREAKS.sub(" ", read_text(f)))
                labels.append(label)
                lines.append(f"{label}/{f.name}")
        values = {"text": texts, "label": labels}
        roles = {"text": "review", "pair": None, "label": "folder"}
        out[split] = from_columns(
            values, lines, roles, path=str(root / split), label_vocab=vocab, unit="file"
        )
    # IMDB has no validation split: hold out a fixed, stratified part of train.
    full = out.pop("train")
    fractions = {"train": 1 - IMDB_VALIDATION_FRACTION, "validation": IMDB_VALIDATION_FRACTION}
    idx = split_indices(full.labels, len(full), fractions, seed=IMDB_SPLIT_SEED)
    return {
        "train": full.subset(idx["train"]),
        "validation": full.subset(idx["validation"]),
        "test": out["test"],
    }


# --------------------------------------------------------------------------- GoEmotions

_GOEMOTIONS_SPLITS = (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv"))


_GOEMOTIONS_LABELS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip


def _parse_goemotions(root: Path) -> dict[str, TextDataset]:
    # Rows are "text<TAB>comma-separated label ids<TAB>comment id", no header;
    # id i is the i-th name (labels.txt or emotions.txt, when present, must agree).
    # Every row has at least one label.
    names = _GOEMOTIONS_LABELS
    for listing in ("labels.txt", "emotions.txt"):
        if (root / listing).exists():
            found = tuple(n.strip() for n in _read_lines(root / listing) if n.strip())
            if found != names:
                raise DataError(f"the label names differ from GoEmotions' 28 ({found[:3]}...)",
                                path=root / listing, hint="use the original label list")
    ids = LabelVocabulary(tuple(str(i) for i in range(len(names))))
    out = {}
    for split, filename in _GOEMOTIONS_SPLITS:
        ds = read_tsv(root / filename, 0, label_column=1, header=False, label_vocab=ids,
                      multi_label=True, label_separator=",")  # fmt: skip
        out[split] = _rename_labels(ds, names)
    return out


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) a registry entry."""
    DATASETS[spec.name] = spec
    return spec


register_dataset(DatasetSpec(
    name="sst2",
    description="SST-2 binary sentiment (GLUE): train 67,349 / validation (dev) 872",
    homepage="https://nlp.stanford.edu/sentiment/",
    files=(RemoteFile("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2.zip", True),),
    label_names=_SST2_LABELS,
    text_pair=False,
    layout="train.tsv and dev.tsv (GLUE: header 'sentence<TAB>label')",
    locate=lambda base: _first_dir(base, ("SST-2",), ("train.tsv", "dev.tsv")),
    parse=_parse_sst2,
))  # fmt: skip

register_dataset(DatasetSpec(
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
    locate=lambda base: _first_dir(base, ("smsspamcollection",), ("SMSSpamCollection",)),
    parse=_parse_sms,
))  # fmt: skip

register_dataset(DatasetSpec(
    name="snli",
    description="SNLI 1.0 premise/hypothesis pairs: entailment / neutral / contradiction",
    homepage="https://nlp.stanford.edu/projects/snli/",
    files=(
        RemoteFile("https://nlp.stanford.edu/projects/snli/snli_1.0.zip", "snli_1.0.zip", True),
    ),
    label_names=_SNLI_LABELS.names,
    text_pair=True,
    layout="s1.{dev,test}, s2.{dev,test}, labels.{dev,test} (line-aligned), "
    "or snli_1.0_{train,dev,test}.jsonl",
    locate=_locate_snli,
    parse=_parse_snli,
))  # fmt: skip

register_dataset(DatasetSpec(
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
    label_names=_MRPC_LABELS,
    text_pair=True,
    layout="train.tsv and dev.tsv (GLUE), or msr_paraphrase_train.txt and dev_ids.tsv; "
    "optionally msr_paraphrase_test.txt",
    locate=_locate_mrpc,
    parse=_parse_mrpc,
))  # fmt: skip

register_dataset(DatasetSpec(
    name="imdb",
    description="IMDB movie reviews (Maas et al. 2011): train 25,000 (10% held out for "
    "validation) / test 25,000",
    homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
    files=(RemoteFile(
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        "aclImdb_v1.tar.gz",
        True,
    ),),
    label_names=("neg", "pos"),
    text_pair=False,
    layout="aclImdb/{train,test}/{pos,neg}/*.txt",
    locate=lambda base: _first_dir(base, ("aclImdb",), ("train/pos", "train/neg", "test/pos")),
    parse=_parse_imdb,
))  # fmt: skip

register_dataset(DatasetSpec(
    name="goemotions",
    description="GoEmotions (Demszky et al. 2020): Reddit comments, 28 labels (27 emotions + "
    "neutral), multi-label; train 43,410 / validation (dev) 5,426 / test 5,427",
    homepage="https://github.com/google-research/google-research/tree/master/goemotions",
    files=tuple(
        RemoteFile("https://raw.githubusercontent.com/google-research/google-research/master/"
                   f"goemotions/data/{f}", f)
        for f in ("train.tsv", "dev.tsv", "test.tsv", "emotions.txt")
    ),
    label_names=_GOEMOTIONS_LABELS,
    text_pair=False,
    layout="train.tsv, dev.tsv, test.tsv ('text<TAB>label ids<TAB>id', no header)",
    locate=lambda base: _first_dir(base, ("data",), ("train.tsv", "dev.tsv", "test.tsv")),
    parse=_parse_goemotions,
))  # fmt: skip


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def fetch(
    spec: DatasetSpec, cache_dir: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Path:
    """Download and unpack `spec`'s files into `cache_dir/<name>/`, atomically.

    Everything goes into a temporary folder first, which is renamed into
    place only once the expected files are there.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / spec.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".partial", dir=cache_dir))
    try:
        for f in spec.files:
            path = infra.download(f.url, tmp / f.filename, sha256=f.sha256, timeout=timeout)
            if f.extract:
                extract(path, tmp)
                path.unlink()
        if spec.locate(tmp) is None:
            raise DownloadError(f"the downloaded files do not contain {spec.layout}")
        if final.exists():
            shutil.rmtree(final)  # an incomplete copy left by hand
        try:
            os.replace(tmp, final)
        except OSError:
            # Another process finished the same download first; use its copy.
            if spec.locate(final) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    root = spec.locate(final)
    assert root is not None
    return root


def dataset_dir(
    name: str | DatasetSpec,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """The folder holding a data set's files: local dir, then cache, then download."""
    spec = get_spec(name) if isinstance(name, str) else name
    base = data_dir if data_dir is not None else os.environ.get("KBF_DATA_DIR")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    looked = []
    for candidate in ([Path(base) / spec.name] if base else []) + [cache / spec.name]:
        looked.append(str(candidate))
        if candidate.is_dir() and (root := spec.locate(candidate)) is not None:
            return root
    urls = ", ".join(f.url for f in spec.files)
    advice = (
        f"set KBF_DATA_DIR to a folder that holds {spec.name}/ with {spec.layout}, "
        f"or put those files in {cache / spec.name}/ (they come from {urls})"
    )
    if not download:
        raise DatasetUnavailableError(
            f"data set {spec.name!r} not found (looked in {', '.join(looked)}); {advice}"
        )
    try:
        return fetch(spec, cache, timeout=timeout)
    except DownloadError as e:
        raise DatasetUnavailableError(
            f"data set {spec.name!r} not found locally (looked in {', '.join(looked)}) and the "
            f"download failed: {e}. If this machine is offline, {advice}"
        ) from e


def load_dataset(
    name: str | DatasetSpec,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, TextDataset] | TextDataset:
    """Load a registered data set: all splits as a dict, or one `split`.

    Splits are named "train", "validation" and "test" (where the data set
    has labels for them).
    """
    spec = get_spec(name) if isinstance(name, str) else name
    root = dataset_dir(spec, data_dir=data_dir, cache_dir=cache_dir, download=download)
    splits = spec.parse(root)
    if split is None:
        return splits
    if split not in splits:
        raise KeyError(f"{spec.name} has no split {split!r}; it has: {', '.join(splits)}")
    return splits[split]
