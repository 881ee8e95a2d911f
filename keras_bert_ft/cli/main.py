"""The `keras-bert-ft` command: train, evaluate, tune, run, distill.

Each subcommand is one function registered in `SUBCOMMANDS` with the
`@subcommand` decorator, which names it, documents it and adds its options.
A new subcommand (export, predict, distill, ...) is one more decorated
function; nothing else changes.

Every option is checked before any work starts: values when they are parsed,
the pretrained model's config and vocabulary before its weights load. Errors
caused by the input (the package's `KerasBertFtError`s, and ValueError /
OSError raised by the package's own code) are printed as one line,
`error: ...`, with exit status 2; anything else is a bug: one line with a hint,
exit status 1. `--debug` prints the traceback as well.

TensorFlow prints start-up log lines from C++ before it reads any setting (see
`quiet_tensorflow`); the CLI keeps them off the terminal unless `--verbose-tf`
or `--debug` is given. This module must therefore not import TensorFlow when it
is imported.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
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


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated `run(args) -> exit status` as subcommand `name`."""

    def register(run: Callable[[argparse.Namespace], int]):
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run

    return register


# --------------------------------------------------------------------------- option values


def _column(value: str) -> str | int:
    # Digits select a column by 0-based index (files without a header row).
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
# The learning rate when only the head trains (a fresh head over a frozen encoder).
FROZEN_LEARNING_RATE = 1e-3


def finetune_defaults():
    """`FinetuneSettings()`: the defaults of train and tune options come from it.

    Importing it imports TensorFlow; `main` has quieted TensorFlow by then.
    """
    from keras_bert_ft.training.finetune import FinetuneSettings

    return FinetuneSettings()


# --------------------------------------------------------------------------- options


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
    g.add_argument("--text-column", type=_column, default="text",
                   help="text column name, or 0-based index without header (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--pair-column", type=_column,
                   help="second text column, for sentence pairs (default: none)")
    g.add_argument("--label-column", type=_column, default="label",
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


def add_model_options(p: argparse.ArgumentParser) -> None:
    s = finetune_defaults()
    g = p.add_argument_group("model")
    g.add_argument("--model", "--from", dest="model", default=s.model,
                   help="pretrained encoder: packaged name, HF/Google/TF-Hub/keras-hub "
                   "directory (e.g. the --output-dir of pretrain), or Hugging Face Hub name "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--num-layers", type=integer(1), default=s.num_layers,
                   help="keep only the first N encoder layers (default: all)")
    g.add_argument("--pooling", choices=("mean", "pooled", "cls"), default=s.pooling,
                   help="sentence vector: mean of tokens (suits sentence-transformer "
                   "weights), the BERT pooler, or the raw [CLS] vector (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--hidden-units", type=integers(1), default=s.hidden_units,
                   help="hidden MLP sizes, e.g. 256 or 256,128 (default: none)")  # fmt: skip
    g.add_argument("--dropout", type=FRACTION, default=s.dropout,
                   help="dropout of the head, in [0, 1) (default %(default)s)")
    g.add_argument("--fine-tune", choices=("all", "top", "frozen"), default="all",
                   help="train everything, only the top --train-layers layers, or only the "
                   "head over a frozen encoder (default %(default)s)")  # fmt: skip
    g.add_argument("--train-layers", type=integer(1), default=2,
                   help="with --fine-tune top: how many top layers train (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--max-length", type=integer(MIN_LENGTH_SINGLE), default=s.max_length,
                   help="tokens per example, [CLS] and [SEP] included; at most the model's "
                   "max_position_embeddings (default %(default)s)")  # fmt: skip
    from keras_bert_ft.tokenization import TRUNCATION_STRATEGIES

    g.add_argument("--truncation", choices=TRUNCATION_STRATEGIES, default=s.truncation,
                   help="how over-long examples are cut: for pairs longest_first, only_first, "
                   "only_second or ratio; head_tail (single texts) keeps the start and the end; "
                   "otherwise a single text is cut at the end (default %(default)s)")
    g.add_argument("--head-tokens", type=integer(0), default=None,
                   help="with --truncation head_tail: wordpieces kept from the start (default "
                   "a quarter of max-length - 2)")
    g.add_argument("--window-stride", type=integer(0), default=None,
                   help="single texts: cut each text into overlapping windows of max-length - 2 "
                   "wordpieces sharing this many, train on every window (its text's label) "
                   "and pool the windows' scores per text (default: no windows)")
    g.add_argument("--window-pooling", choices=("mean", "max"), default=s.window_pooling,
                   help="with --window-stride: mean or max of the windows' probabilities "
                   "(default %(default)s)")


def add_training_options(p: argparse.ArgumentParser) -> None:
    s = finetune_defaults()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=integer(1), default=s.epochs,
                   help="passes over the training data (default %(default)s)")
    g.add_argument("--batch-size", type=integer(1), default=s.batch_size,
                   help="examples per step (default %(default)s)")
    g.add_argument("--accumulate-steps", type=integer(1), default=s.accumulate_steps,
                   metavar="N", help="gradient accumulation: one update per N batches, with "
                   "their mean gradient (an effective batch of N x --batch-size in the "
                   "memory of one; default %(default)s)")  # fmt: skip
    g.add_argument("--learning-rate", type=POSITIVE,
                   help=f"peak learning rate (default {s.learning_rate:g}; "
                   f"{FROZEN_LEARNING_RATE:g} with --fine-tune frozen or --lora-rank)")  # fmt: skip
    g.add_argument("--warmup-ratio", type=number(0, 1), default=s.warmup_ratio,
                   help="fraction of the steps that warm the learning rate up, in [0, 1] "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--weight-decay", type=number(0), default=s.weight_decay,
                   help="AdamW weight decay (default %(default)s)")
    g.add_argument("--clipnorm", type=POSITIVE, default=s.clipnorm,
                   help="global gradient norm clip (default %(default)s)")
    g.add_argument("--layer-decay", type=number(0, 1, low_open=True), default=s.layer_decay,
                   help="layer-wise learning-rate decay in (0, 1], e.g. 0.9 (default: off)")
    g.add_argument("--class-weight", choices=("balanced",), default=s.class_weight,
                   help="weight classes by 1/frequency (default: off)")
    g.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   default=s.precision,
                   help="float type of the computations; mixed_* keeps float32 weights "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--strategy", choices=("auto", "default", "mirrored", "multi_worker"),
                   default=s.strategy,
                   help="tf.distribute strategy; multi_worker reads TF_CONFIG (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--early-stopping", type=integer(1), metavar="PATIENCE",
                   default=s.early_stopping_patience,
                   help="stop after PATIENCE epochs without improvement; keep the best "
                   "weights (default: off)")  # fmt: skip
    g.add_argument("--monitor", default=s.monitor,
                   help="metric for early stopping (default %(default)s)")
    g.add_argument("--seed", type=integer(0), default=s.seed,
                   help="random seed (default %(default)s)")
    g.add_argument("--deterministic", action="store_true", default=s.deterministic,
                   help="TensorFlow op determinism and fixed seeds: a rerun with the same "
                   "options gives the same weights and report (slower)")  # fmt: skip
    g.add_argument("--output-dir", default="runs/latest",
                   help="checkpoints, TensorBoard logs, model.keras, report (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--no-tune-thresholds", action="store_true", default=not s.tune_thresholds,
                   help="multi-label: keep 0.5 for every label instead of choosing each "
                   "label's threshold on the validation data (max F1) (default: tune)")
    g.add_argument("--no-resume", action="store_true", default=not s.resume,
                   help="start over even if --output-dir holds checkpoints")


def _configure_train(p: argparse.ArgumentParser) -> None:
    add_data_options(p)
    add_model_options(p)
    add_training_options(p)
    add_lora_options(p)


def lora_targets(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated LoRA target projections."""
    from keras_bert_ft.lora import check_targets

    try:
        return check_targets(v.strip() for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_lora_options(p: argparse.ArgumentParser) -> None:
    s = finetune_defaults()
    g = p.add_argument_group("low-rank adaptation (LoRA)")
    g.add_argument("--lora-rank", type=integer(1), default=s.lora_rank,
                   help="train rank-R low-rank adapters of the encoder's projections and the "
                   "head, with the encoder frozen; writes adapter.npz (default: off)")
    g.add_argument("--lora-alpha", type=POSITIVE, default=s.lora_alpha,
                   help="LoRA scale numerator: updates are scaled by alpha / rank "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--lora-targets", type=lora_targets, default=s.lora_targets,
                   help="comma-separated projections to adapt, from query, key, value, "
                   "attention_output, intermediate, output (default "
                   f"{','.join(s.lora_targets)})")  # fmt: skip


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


def check_pretrained(args) -> None:
    """Check --model and the options that depend on it, from its config and vocabulary
    alone (no weights are loaded): it exists, it has a vocabulary that fits its
    embeddings, and --max-length / --num-layers / --train-layers fit its shape."""
    from keras_bert_ft.checkpoints import inspect_pretrained

    info = inspect_pretrained(args.model)
    if info.vocab_size is None:
        raise CLIError(
            f"--model {args.model}: {info.path} has no vocabulary (vocab.txt, or tokenizer.json "
            "for Hugging Face directories), so texts cannot be tokenized; copy the model's "
            "vocabulary file into the directory"
        )
    config = info.config
    if config is None:  # a TF-Hub SavedModel without a config: known only once loaded
        return
    if args.max_length > config.max_position_embeddings:
        raise CLIError(
            f"--max-length {args.max_length} is more than the {config.max_position_embeddings} "
            f"positions the model {args.model} has (max_position_embeddings); use "
            f"--max-length {config.max_position_embeddings} or less"
        )
    if args.num_layers is not None and args.num_layers > config.num_layers:
        raise CLIError(f"--num-layers {args.num_layers}: the model {args.model} has only "
                       f"{config.num_layers} layers")  # fmt: skip
    layers = args.num_layers or config.num_layers
    if args.fine_tune == "top" and args.train_layers > layers:
        raise CLIError(f"--train-layers {args.train_layers} with --fine-tune top: the encoder "
                       f"has {layers} layers")  # fmt: skip


def check_max_length_fits(data, max_length: int) -> None:
    if data.is_pair and max_length < MIN_LENGTH_PAIR:
        raise CLIError(f"--max-length {max_length} leaves no room for sentence pairs "
                       f"([CLS] a [SEP] b [SEP]); use at least {MIN_LENGTH_PAIR}")  # fmt: skip


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


# --------------------------------------------------------------------------- data


def _read(path: str, args, label_vocab=None, multi_label: bool | None = None):
    from keras_bert_ft.data import read_file

    kwargs = {"label_vocab": label_vocab}
    delimited = Path(path).suffix.lower() in (".csv", ".tsv")
    if delimited and args.no_header:
        kwargs["header"] = False
    multi = getattr(args, "multi_label", False) if multi_label is None else multi_label
    if args.label_columns:
        if not delimited:
            raise CLIError(f"--label-columns goes with CSV/TSV files, not {path}")
        kwargs["label_columns"] = [_column(c) for c in args.label_columns]
    elif multi:
        kwargs.update(multi_label=True)
    if multi or args.label_columns:
        kwargs.update(label_separator=args.label_separator,
                      allow_empty_labels=args.allow_empty_labels)
    return read_file(path, args.text_column, args.pair_column, args.label_column, **kwargs)


def _registry(name: str) -> dict:
    from keras_bert_ft.data import load_dataset

    try:
        return load_dataset(name)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from None


def load_training_data(args) -> tuple:
    """(train, validation, test) TextDatasets from --dataset or --train/--validation/--test."""
    from keras_bert_ft.data import stratified_split

    if args.dataset:
        splits = _registry(args.dataset)
        if args.train_split not in splits:
            others = [s for s in splits if s != "test"] or list(splits)
            raise CLIError(
                f"data set {args.dataset!r} has no {args.train_split!r} split here (it has: "
                f"{', '.join(splits) or 'none'}); train on another with --train-split "
                f"{others[0] if others else 'NAME'}, or give --train FILE"
            )
        train = splits[args.train_split]
        val = splits.get("validation") if args.train_split != "validation" else None
        test = splits.get("test") if args.train_split != "test" else None
    else:
        train = _read(args.train, args)
        val = _read(args.validation, args, train.label_vocab) if args.validation else None
        test = _read(args.test, args, train.label_vocab) if args.test else None
    if val is None and args.validation_split > 0:
        parts = stratified_split(
            train, {"train": 1 - args.validation_split, "validation": args.validation_split},
            seed=args.seed,
        )  # fmt: skip
        train, val = parts["train"], parts["validation"]
    if args.max_train_examples and args.max_train_examples < len(train):
        from keras_bert_ft.data.splits import split_indices

        frac = args.max_train_examples / len(train)
        idx = split_indices(train.labels, len(train), {"keep": frac, "rest": 1 - frac},
                            seed=args.seed)["keep"]  # fmt: skip
        train = train.subset(idx)
    return train, val, test


def settings_from_args(args):
    from keras_bert_ft.training.finetune import FinetuneSettings

    layers = {"all": None, "frozen": 0, "top": args.train_layers}[args.fine_tune]
    lora_rank = getattr(args, "lora_rank", None)
    if lora_rank is not None and args.fine_tune != "all":
        raise CLIError(f"--lora-rank freezes the encoder and trains adapters; it does not go "
                       f"with --fine-tune {args.fine_tune}")
    lr = args.learning_rate
    if lr is None:
        small_trained = args.fine_tune == "frozen" or lora_rank is not None
        lr = FROZEN_LEARNING_RATE if small_trained else FinetuneSettings.learning_rate
    lora = {}
    if lora_rank is not None:
        lora = dict(lora_rank=lora_rank, lora_alpha=args.lora_alpha,
                    lora_targets=args.lora_targets)
    return FinetuneSettings(
        model=args.model, num_layers=args.num_layers, pooling=args.pooling,
        hidden_units=tuple(args.hidden_units), dropout=args.dropout,
        train_encoder_layers=layers, layer_decay=args.layer_decay, learning_rate=lr,
        batch_size=args.batch_size, accumulate_steps=args.accumulate_steps,
        deterministic=args.deterministic, epochs=args.epochs, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, clipnorm=args.clipnorm, max_length=args.max_length,
        truncation=args.truncation, head_tokens=args.head_tokens,
        window_stride=args.window_stride, window_pooling=args.window_pooling,
        class_weight=args.class_weight, precision=args.precision, strategy=args.strategy,
        seed=args.seed, early_stopping_patience=args.early_stopping, monitor=args.monitor,
        output_dir=args.output_dir, resume=not args.no_resume, **lora,
        tune_thresholds=not args.no_tune_thresholds,
    )  # fmt: skip


def _describe(name: str, ds) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in ds.class_counts().items())
    kind = "pairs" if ds.is_pair else "texts"
    return f"  {name:<10} {len(ds):>7,} {kind} ({counts})  from {ds.source}"


def prepare_training(args) -> tuple:
    """Check every option, then read the data: (train, validation, test)."""
    check_data_options(args)
    check_pretrained(args)
    train, val, test = load_training_data(args)
    check_max_length_fits(train, args.max_length)
    return train, val, test


# --------------------------------------------------------------------------- subcommands


@subcommand("train", "fine-tune a classifier on a data set or files", _configure_train)
def train_command(args) -> int:
    from keras_bert_ft.training.finetune import finetune

    train, val, test = prepare_training(args)
    print("Data:")
    for name, ds in (("train", train), ("validation", val), ("test", test)):
        if ds is not None:
            print(_describe(name, ds))
    result = finetune(train, val, test, settings_from_args(args))
    if result.report is not None:
        print(f"\nReport on the {'test' if test is not None else 'validation'} set:")
        print(result.report.to_text())
    if result.output_dir is not None:
        report_files = ("metrics.json, report.txt, threshold_0.5_*" if train.is_multi_label
                        else "metrics.json, report.txt, confusion_matrix.png")
        print(f"\nSaved: {result.output_dir}/model.keras, report/ ({report_files}), "
              "logs/ (TensorBoard), checkpoints/")  # fmt: skip
    return 0


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_path", help="a trained model: model.keras or the --output-dir of train")
    add_data_options(p, training=False)
    p.add_argument("--batch-size", type=integer(1), default=64,
                   help="examples per step (default %(default)s)")
    p.add_argument("--output-dir", help="write metrics.json, report.txt, confusion_matrix.png "
                   "here (default: only print the report)")


def load_trained_model(path: str):
    """A `BertClassifier` from a .keras file or a train output folder."""
    import keras

    import keras_bert_ft.models  # noqa: F401  (registers the classes for loading)

    p = Path(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.is_file():
        raise CLIError(f"{p}: no trained model here; pass the model.keras written by train")
    try:
        return keras.saving.load_model(p)
    except (OSError, ValueError, KeyError, TypeError) as e:  # not a Keras archive, or a foreign one
        raise CLIError(f"{p}: cannot load the model ({type(e).__name__}: {e})") from e


def _relabel(ds, vocab):
    """`ds` with class indices in the model's label order; unknown labels are DataErrors."""
    from keras_bert_ft.data import TextDataset

    if ds is None:
        return None
    if ds.is_multi_label:
        from keras_bert_ft.data.labels import decode_multi_hot, multi_hot

        labels = multi_hot(vocab, decode_multi_hot(ds.label_vocab, ds.labels), source=ds.source,
                           allow_empty=True)  # fmt: skip
    else:
        labels = vocab.encode(ds.label_vocab.decode(ds.labels), source=ds.source)
    return TextDataset(ds.texts, ds.pairs, labels, vocab, ds.source)


@subcommand("evaluate", "report a trained model's metrics on labelled data", _configure_evaluate)
def evaluate_command(args) -> int:
    from keras_bert_ft.data import LabelVocabulary, TextDataset, dataset_from
    from keras_bert_ft.training import evaluate_report

    check_data_options(args)
    model = load_trained_model(args.model_path)
    if not model.label_names or model.tokenizer is None:
        raise CLIError(f"{args.model_path}: the model has no label names or tokenizer saved")
    vocab = LabelVocabulary(model.label_names)
    if args.data:
        check_fits_model(model, args.pair_column is not None, args.data, args.model_path)
        data = _read(args.data, args, vocab, multi_label=model.head_type == "multi_label")
    else:
        splits = _registry(args.dataset)
        if args.split not in splits:
            raise CLIError(f"{args.dataset} has no split {args.split!r}: {', '.join(splits)}")
        data = splits[args.split]
        check_fits_model(model, data.is_pair, f"{args.dataset} ({args.split})", args.model_path)
        data = _relabel(data, vocab)
    if data.is_multi_label != (model.head_type == "multi_label"):
        kind = "several labels per row" if model.head_type == "multi_label" else "one label per row"
        raise CLIError(f"{args.model_path} predicts {kind}, but {data.source} has "
                       f"{'several labels' if data.is_multi_label else 'one label'} per row")
    print(_describe("evaluate", data))
    windowed = getattr(model, "window_stride", None) is not None  # windows pooled per text
    if windowed:
        scores = model.predict_texts(data.texts, batch_size=args.batch_size)
    else:
        features = dataset_from(
            TextDataset(data.texts, data.pairs, None, None), model.tokenizer,
            max_length=model.max_length, truncation=model.truncation,
            batch_size=args.batch_size, head_tokens=getattr(model, "head_tokens", None),
        )  # fmt: skip
    if model.head_type == "multi_label":
        from keras_bert_ft.reports import multilabel_report

        if not windowed:
            scores = model.predict(features, verbose=0)
        report = multilabel_report(data.labels, scores, model.label_names,
                                   model.decision_thresholds())  # fmt: skip
    elif windowed:
        import numpy as np

        from keras_bert_ft.reports import classification_report

        report = classification_report(np.asarray(data.labels), scores, model.label_names)
    else:
        report = evaluate_report(model, features, data.labels, model.label_names)
    print(report.to_text())
    if args.output_dir:
        report.save(args.output_dir, extra={"model": str(args.model_path), "data": data.source})
        print(f"Saved the report in {args.output_dir}")
    return 0


def _configure_tune(p: argparse.ArgumentParser) -> None:
    add_data_options(p)
    add_model_options(p)
    add_training_options(p)
    g = p.add_argument_group("search")
    g.add_argument("--learning-rates", type=numbers(0, low_open=True), default=[2e-5, 5e-5, 1e-4],
                   help="comma-separated learning rates to try (default 2e-5,5e-5,1e-4)")
    g.add_argument("--batch-sizes", type=integers(1), default=(16, 32),
                   help="comma-separated batch sizes to try (default 16,32)")
    g.add_argument("--epoch-choices", type=integers(1), default=(1, 2),
                   help="comma-separated epoch counts to try (default 1,2)")
    g.add_argument("--max-trials", type=integer(1), default=4,
                   help="settings to try (default %(default)s)")


@subcommand("tune", "search learning rate, batch size and epochs with KerasTuner", _configure_tune)
def tune_command(args) -> int:
    from keras_bert_ft.training.tuning import tune

    train, val, _ = prepare_training(args)
    if val is None:
        raise CLIError("tuning needs validation data: give --validation or --validation-split")
    print("Data:")
    print(_describe("train", train))
    print(_describe("validation", val))
    best, summary = tune(
        train, val, settings_from_args(args),
        learning_rates=args.learning_rates, batch_sizes=args.batch_sizes,
        epochs=args.epoch_choices, max_trials=args.max_trials,
        directory=Path(args.output_dir) / "tuning",
    )  # fmt: skip
    print(summary)
    print("Best: " + ", ".join(f"{k}={v}" for k, v in best.items()))
    return 0


# `make run`: the main job on embedded defaults.
RUN_DEFAULTS = {
    "dataset": "sms_spam",
    "epochs": 1,
    "batch_size": 32,
    "max_length": 128,
    "output_dir": "runs/sms_spam",
    "validation_split": 0.0,
}


def _configure_run(p: argparse.ArgumentParser) -> None:
    _configure_train(p)
    p.set_defaults(**RUN_DEFAULTS)
    for action in p._actions:  # train's --dataset has no default to show; run's has one
        if action.dest == "dataset":
            action.help += " (default %(default)s)"


@subcommand("run", "fine-tune all-MiniLM-L6-v2 on SMS Spam (1 epoch) and print the report",
            _configure_run)  # fmt: skip
def run_command(args) -> int:
    from keras_bert_ft.data.registry import dataset_dir

    # The data folder comes from KBF_DATA_DIR (the Makefile sets it); installed code
    # does not guess at a repository layout.
    if args.train:  # --train FILE replaces the embedded data set
        args.dataset = None
    try:
        where = dataset_dir(args.dataset, download=False) if args.dataset else None
    except Exception:
        where = None
        print(
            f"No local copy of {args.dataset!r}: set KBF_DATA_DIR to the folder that holds "
            f"{args.dataset}/ (on this project's machines: KBF_DATA_DIR=../shared/data). "
            "Trying to download it instead...",
            file=sys.stderr,
        )
    print(
        f"keras-bert-ft run: fine-tune {args.model} on {args.dataset or args.train}"
        + (f" ({where})" if where else "")
        + f", {args.epochs} epoch(s), all layers, mean pooling, batch {args.batch_size}; "
        "report on the stratified held-out 20% test split. Output in "
        f"{args.output_dir}. (Any train option overrides these; see --help.)"
    )
    start = time.perf_counter()
    status = train_command(args)
    print(f"Done in {time.perf_counter() - start:.0f} s.")
    return status


def _configure_distill(p: argparse.ArgumentParser) -> None:
    p.add_argument("teacher", help="the trained teacher: model.keras or the --output-dir of train")
    add_data_options(p)
    g = p.add_argument_group("distillation")
    g.add_argument("--student-layers", type=integer(1), default=3,
                   help="the student keeps the teacher's first N layers (default %(default)s)")
    g.add_argument("--student-intermediate-size", type=integer(1),
                   help="prune each kept layer's feed-forward units to this many "
                        "(default: keep all)")
    g.add_argument("--temperature", type=POSITIVE, default=2.0,
                   help="softmax temperature (default %(default)s)")
    g.add_argument("--alpha", type=number(0, 1), default=0.5,
                   help="weight of the hard-label loss in [0, 1]; 1 - alpha goes to the soft "
                   "targets (default %(default)s)")  # fmt: skip
    g.add_argument("--epochs", type=integer(1), default=3, help="(default %(default)s)")
    g.add_argument("--batch-size", type=integer(1), default=32, help="(default %(default)s)")
    g.add_argument("--learning-rate", type=POSITIVE, default=1e-4, help="(default %(default)s)")
    g.add_argument("--seed", type=integer(0), default=0, help="(default %(default)s)")
    g.add_argument("--output-dir", default="runs/distilled",
                   help="where the student's model.keras and report go (default %(default)s)")


@subcommand("distill", "distil a trained classifier into a shallower student", _configure_distill)
def distill_command(args) -> int:
    from keras_bert_ft.compression.distillation import distill
    from keras_bert_ft.data import LabelVocabulary, TextDataset, dataset_from
    from keras_bert_ft.training import evaluate_report
    from keras_bert_ft.training.finetune import save_model

    check_data_options(args)
    teacher = load_trained_model(args.teacher)
    if not teacher.label_names or teacher.tokenizer is None:
        raise CLIError(f"{args.teacher}: the model has no label names or tokenizer saved")
    teacher_layers = getattr(getattr(teacher.encoder, "config", None), "num_layers", None)
    if teacher_layers is not None and args.student_layers > teacher_layers:
        raise CLIError(f"--student-layers {args.student_layers}: the teacher has only "
                       f"{teacher_layers} layers")  # fmt: skip
    train, val, test = load_training_data(args)
    check_fits_model(teacher, train.is_pair, train.source, args.teacher)
    vocab = LabelVocabulary(teacher.label_names)
    train, val, test = (_relabel(d, vocab) for d in (train, val, test))
    print("Data:")
    for name, ds in (("train", train), ("validation", val), ("test", test)):
        if ds is not None:
            print(_describe(name, ds))
    student, _ = distill(
        teacher, train, val, num_layers=args.student_layers,
        intermediate_size=args.student_intermediate_size, temperature=args.temperature,
        alpha=args.alpha, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed,
    )  # fmt: skip
    out = Path(args.output_dir)
    save_model(student, out / "model.keras")
    report_on = test if test is not None else val
    if report_on is not None:
        features = dataset_from(
            TextDataset(report_on.texts, report_on.pairs, None, None), student.tokenizer,
            max_length=student.max_length, truncation=student.truncation,
        )  # fmt: skip
        report = evaluate_report(student, features, report_on.labels, student.label_names)
        print(report.to_text())
        report.save(out / "report", extra={"teacher": str(args.teacher), "data": report_on.source,
                                           "student_layers": args.student_layers,
                                           "student_intermediate_size":
                                               args.student_intermediate_size})  # fmt: skip
    print(f"Saved: {out}/model.keras")
    return 0


# export and predict (TF Serving) live in keras_bert_ft/serving_cli.py.
from keras_bert_ft.serving_cli import register_serving_commands  # noqa: E402

register_serving_commands(subcommand, CLIError)

# explain (HTML page of word attributions) and export-hf live in keras_bert_ft/model_cli.py.
from keras_bert_ft.model_cli import register_model_commands  # noqa: E402

register_model_commands(subcommand, CLIError)
# pretrain (continued masked-LM pretraining) lives in keras_bert_ft/pretraining/cli.py.
from keras_bert_ft.pretraining.cli import register_pretrain_command  # noqa: E402

register_pretrain_command(subcommand, CLIError)


# --------------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`error: ...`), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def _add_global_options(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--debug", action="store_true", default=default,
                   help="on an error, print the Python traceback too; show TensorFlow's logs")
    p.add_argument("--verbose-tf", action="store_true", default=default,
                   help="show TensorFlow's start-up log lines (hidden by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keras-bert-ft", description="Fine-tune BERT encoders for text classification."
    )
    _add_global_options(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        # Also accepted after the command; SUPPRESS keeps a value given before it.
        _add_global_options(p, argparse.SUPPRESS)
        p.set_defaults(_run=cmd.run)
    return parser


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up log lines on the terminal.

    TensorFlow's C++ code logs through absl before `absl::InitializeLog()` is
    called, and absl writes such early messages to stderr whatever the
    threshold, so TF_CPP_MIN_LOG_LEVEL cannot hide them (oneDNN, CUDA driver
    and CPU feature notices). They are all written while the library loads,
    so stderr (file descriptor 2) points to /dev/null for the import only.
    TF_CPP_MIN_LOG_LEVEL=3 (unless already set) quiets what C++ logs later.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _raised_by_package(error: BaseException) -> bool:
    # Where the exception was raised: the innermost frame of its traceback.
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    package = Path(__file__).resolve().parent
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(package)


def exit_status(error: BaseException) -> int:
    """2 for errors in the input (the package's own errors; ValueError and OSError raised
    by the package's code), 1 for anything else: a bug."""
    if isinstance(error, KerasBertFtError):
        return EXIT_USAGE
    if isinstance(error, (ValueError, OSError)) and _raised_by_package(error):
        return EXIT_USAGE
    return EXIT_BUG


def one_line(text: str) -> str:
    """`text` with its lines joined, so an error is always one line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `keras-bert-ft` and `python -m keras_bert_ft.cli`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" not in argv and "--verbose-tf" not in argv:
        quiet_tensorflow()
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)  # fmt: skip
        return 130
    except Exception as e:
        status = exit_status(e)
        if args.debug:
            traceback.print_exc()
        message = one_line(e) or type(e).__name__
        if status == EXIT_BUG:
            message = (f"unexpected {type(e).__name__}: {message} (this is a bug; rerun with "
                       "--debug for the traceback)")  # fmt: skip
        print(f"error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
