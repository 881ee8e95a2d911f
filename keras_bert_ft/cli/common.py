"""What the `keras-bert-ft` subcommands share: the registry of subcommands, argparse
types that check values as they are parsed, the data options, reading data, loading a
trained model, and `CLIError`, the error a subcommand raises for input it cannot use.

Modules of `keras_bert_ft.cli` import this one, never `keras_bert_ft.cli.app`. It must
not import TensorFlow when it is imported (see `keras_bert_ft.cli.app`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keras_bert_ft.errors import (
    DataError,  # noqa: F401  (re-exported for callers)
    KerasBertFtError,
)

EXIT_USAGE = 2  # the input was wrong: a bad option, file, model or data
EXIT_BUG = 1  # an unexpected exception


class CLIError(KerasBertFtError):
    """A user-facing error: printed without a traceback."""


@dataclass
class Subcommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# Filled by the decorated functions of keras_bert_ft.cli.train, .serving, .model and
# .pretrain when they are imported; `keras_bert_ft.cli.app` builds its parser from it.
SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated `run(args) -> exit status` as subcommand `name`."""

    def register(run: Callable[[argparse.Namespace], int]):
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run

    return register


# --------------------------------------------------------------------------- option values


def column(value: str) -> str | int:
    """An argparse type: a column name, or digits for a 0-based index (no header row)."""
    return int(value) if value.isdigit() else value


def integer(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def number(low: float, high: float = math.inf, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:  # fmt: skip
    """An argparse type: a finite float in the interval from `low` to `high`
    (each end excluded when `*_open`)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    if high == math.inf:
        wanted = f"> {low:g}" if low_open else f">= {low:g}"
    else:
        wanted = f"in {left}{low:g}, {high:g}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse


def integers(low: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: comma-separated integers of at least `low`, e.g. 256,128."""
    one = integer(low)

    def parse(text: str) -> tuple[int, ...]:
        return tuple(one(v.strip()) for v in text.split(",") if v.strip())

    return parse


def numbers(low: float, **bounds) -> Callable[[str], list[float]]:
    """An argparse type: comma-separated numbers, each as `number(low, ...)` allows."""
    one = number(low, **bounds)

    def parse(text: str) -> list[float]:
        values = [one(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected at least one number")
        return values

    return parse


POSITIVE = number(0, low_open=True)
FRACTION = number(0, 1, high_open=True)  # [0, 1)
# [CLS] + at least one token + [SEP]; sentence pairs need 5, checked once the data is read.
MIN_LENGTH_SINGLE, MIN_LENGTH_PAIR = 3, 5


def setting_default(name: str):
    """The default of `FinetuneSettings`' field `name`: train and tune options show it
    rather than a copy of it.

    Importing `FinetuneSettings` imports TensorFlow; `main` has quieted TensorFlow by then.
    """
    from keras_bert_ft.training.finetune import FinetuneSettings

    for f in dataclasses.fields(FinetuneSettings):
        if f.name == name:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
    raise KeyError(f"FinetuneSettings has no field {name!r}")


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    return (str(err).strip() or type(err).__name__).splitlines()[0]


# --------------------------------------------------------------------------- data options


def add_data_options(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    """Where the data comes from: a registered data set or files with a column mapping."""
    g = p.add_argument_group("data")
    files = "--train" if training else "--data"
    g.add_argument("--dataset", help="a registered data set (sst2, sms_spam, snli, mrpc, imdb, "
                   f"goemotions), read from $KBF_DATA_DIR, the cache, or downloaded; or give "
                   f"{files}")
    if training:
        g.add_argument("--train", help="training file (.csv, .tsv or .jsonl); or give --dataset")
        g.add_argument("--train-split", default="train",
                       help="split of --dataset to train on (default %(default)s); the "
                       "validation and test splits are used for validation and the report "
                       "unless one of them is the one trained on")  # fmt: skip
        g.add_argument("--validation", help="validation file (default: split from --train)")
        g.add_argument("--test", help="test file for the final report (default: report on the "
                       "validation data)")  # fmt: skip
        g.add_argument("--validation-split", type=FRACTION, default=0.1,
                       help="fraction of the training data held out (stratified) when there "
                       "is no validation data, in [0, 1) (default %(default)s)")  # fmt: skip
        g.add_argument("--max-train-examples", type=integer(2),
                       help="train on a stratified subset of this many examples "
                       "(default: all)")  # fmt: skip
    else:
        g.add_argument("--data", help="file to evaluate (.csv, .tsv or .jsonl); or give --dataset")
        g.add_argument("--split", default="test",
                       help="split of --dataset to evaluate (default %(default)s)")  # fmt: skip
    g.add_argument("--text-column", type=column, default="text",
                   help="text column name, or 0-based index without header (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--pair-column", type=column,
                   help="second text column, for sentence pairs (default: none)")
    g.add_argument("--label-column", type=column, default="label",
                   help="label column name or index (default %(default)s)")
    g.add_argument("--no-header", action="store_true",
                   help="CSV/TSV files have no header row (use column indices)")  # fmt: skip
    add_multi_label_options(g, training=training)


def add_multi_label_options(g, *, training: bool) -> None:
    """Multi-label data: several labels per row, in one column or one 0/1 column each."""
    if training:
        g.add_argument("--multi-label", action="store_true",
                       help="each row may have several labels: the label column holds them "
                       "joined by --label-separator, or as a JSON list (JSONL: a list); trains "
                       "one sigmoid per label (default: one label per row)")  # fmt: skip
    g.add_argument("--label-separator", default="|",
                   help="separator of the labels in a multi-label CSV/TSV cell (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--label-columns", type=lambda v: [c.strip() for c in v.split(",")],
                   help="multi-label CSV/TSV data with one 0/1 column per label: the columns, "
                   "comma-separated; each column's name is its label (default: none)")
    g.add_argument("--allow-empty-labels", action="store_true",
                   help="multi-label rows may have no label at all (default: such a row is an "
                   "error)")  # fmt: skip


# --------------------------------------------------------------------------- checks


def check_data_options(args) -> None:
    """Options that contradict each other, checked before anything is read."""
    training = hasattr(args, "train")
    files = args.train if training else args.data
    file_option = "--train" if training else "--data"
    if args.dataset and files:
        raise CLIError(f"give --dataset NAME or {file_option} FILE, not both")
    if not args.dataset and not files:
        raise CLIError(f"give --dataset NAME or {file_option} FILE")
    if training and args.dataset and (args.validation or args.test):
        raise CLIError("--validation and --test go with --train FILE; --dataset brings its "
                       "own splits")  # fmt: skip
    if args.dataset and args.pair_column is not None:
        raise CLIError(f"--pair-column goes with {file_option} FILE; --dataset "
                       f"{args.dataset} knows its own columns")  # fmt: skip


def check_fits_model(model, is_pair: bool, source: str, model_path: str) -> None:
    """Refuse data of the other kind (pairs vs single texts) than the model was trained on."""
    pairs = getattr(model, "pairs", None)
    if pairs is None or pairs == is_pair:  # None: an older model that did not record it
        return
    if pairs:
        raise CLIError(
            f"{model_path} classifies sentence pairs, but {source} gives single texts: "
            "add --pair-column with the second text's column"
        )
    raise CLIError(
        f"{model_path} classifies single texts, but {source} gives sentence pairs: "
        "remove --pair-column (or use a data set of single texts)"
    )


# --------------------------------------------------------------------------- reading


def read_data(path: str, args, label_vocab=None, multi_label: bool | None = None):
    """The `TextDataset` in the file `path`, read with the data options in `args`."""
    from keras_bert_ft.data import read_file

    kwargs = {"label_vocab": label_vocab}
    delimited = Path(path).suffix.lower() in (".csv", ".tsv")
    if delimited and args.no_header:
        kwargs["header"] = False
    multi = getattr(args, "multi_label", False) if multi_label is None else multi_label
    if args.label_columns:
        if not delimited:
            raise CLIError(f"--label-columns goes with CSV/TSV files, not {path}")
        kwargs["label_columns"] = [column(c) for c in args.label_columns]
    elif multi:
        kwargs.update(multi_label=True)
    if multi or args.label_columns:
        kwargs.update(label_separator=args.label_separator,
                      allow_empty_labels=args.allow_empty_labels)
    return read_file(path, args.text_column, args.pair_column, args.label_column, **kwargs)


def registered_dataset(name: str) -> dict:
    """The splits of the registered data set `name`; an unknown name is a `CLIError`."""
    from keras_bert_ft.data import load_dataset

    try:
        return load_dataset(name)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from None


def load_trained_model(path: str, *, labelled: bool = False):
    """A `BertClassifier` from a .keras file or a train output folder; with `labelled`,
    one that kept its label names and tokenizer (to read labelled data)."""
    from keras_bert_ft.saving import load_model

    p = Path(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.is_file():
        raise CLIError(f"{p}: no trained model here; pass the model.keras written by train")
    try:
        model = load_model(p)
    except (OSError, ValueError, KeyError, TypeError) as e:  # not a Keras archive, or a foreign one
        raise CLIError(f"{p}: cannot load the model ({type(e).__name__}: {e})") from e
    if labelled and (not model.label_names or model.tokenizer is None):
        raise CLIError(f"{path}: the model has no label names or tokenizer saved")
    return model
