"""The `keras-bert-ft` command: train, evaluate, tune, run, distill.

Each subcommand is one function registered in `SUBCOMMANDS` with the
`@subcommand` decorator, which names it, documents it and adds its options.
A new subcommand (export, predict, distill, ...) is one more decorated
function; nothing else changes. Data errors are printed as one clean message
(file, line, what to fix) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keras_bert_ft.data.errors import DataError

EXIT_USAGE = 2


class CLIError(Exception):
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


# --------------------------------------------------------------------------- options


def _column(value: str) -> str | int:
    # Digits select a column by 0-based index (files without a header row).
    return int(value) if value.isdigit() else value


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split(",") if v.strip())


def _floats(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


def add_data_options(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    """Where the data comes from: a registered data set or files with a column mapping."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="a registered data set (sst2, sms_spam, snli, mrpc, imdb); "
                   "read from $KBF_DATA_DIR, the cache, or downloaded")  # fmt: skip
    if training:
        g.add_argument("--train", help="training file (.csv, .tsv or .jsonl)")
        g.add_argument("--validation", help="validation file (default: split from --train)")
        g.add_argument("--test", help="test file for the final report")
        g.add_argument("--validation-split", type=float, default=0.1,
                       help="fraction of --train held out (stratified) when there is no "
                       "--validation file (default 0.1)")  # fmt: skip
        g.add_argument("--max-train-examples", type=int,
                       help="train on a stratified subset of this many examples")  # fmt: skip
    else:
        g.add_argument("--data", help="file to evaluate (.csv, .tsv or .jsonl)")
        g.add_argument("--split", default="test",
                       help="split of --dataset to evaluate (default test)")  # fmt: skip
    g.add_argument("--text-column", type=_column, default="text",
                   help="text column name, or 0-based index without header (default text)")
    g.add_argument("--pair-column", type=_column, help="second text column, for sentence pairs")
    g.add_argument("--label-column", type=_column, default="label", help="default label")
    g.add_argument("--no-header", action="store_true",
                   help="CSV/TSV files have no header row (use column indices)")  # fmt: skip


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="all-minilm-l6-v2",
                   help="pretrained encoder: packaged name, HF/Google/TF-Hub/keras-hub "
                   "directory, or hub name (default all-minilm-l6-v2)")  # fmt: skip
    g.add_argument("--num-layers", type=int, help="keep only the first N encoder layers")
    g.add_argument("--pooling", choices=("mean", "pooled", "cls"), default="mean",
                   help="sentence vector: mean of tokens (default; suits sentence-transformer "
                   "weights), the BERT pooler, or the raw [CLS] vector")  # fmt: skip
    g.add_argument("--hidden-units", type=_ints, default=(),
                   help="hidden MLP sizes, e.g. 256 or 256,128 (default none)")  # fmt: skip
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument("--fine-tune", choices=("all", "top", "frozen"), default="all",
                   help="train everything, only the top --train-layers layers, or only the "
                   "head over a frozen encoder")  # fmt: skip
    g.add_argument("--train-layers", type=int, default=2,
                   help="with --fine-tune top: how many top layers train (default 2)")
    g.add_argument("--max-length", type=int, default=128, help="tokens per example (default 128)")


def add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=3)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--learning-rate", type=float,
                   help="peak learning rate (default 5e-5; 1e-3 with --fine-tune frozen)")
    g.add_argument("--warmup-ratio", type=float, default=0.1)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--clipnorm", type=float, default=1.0, help="global gradient norm clip")
    g.add_argument("--layer-decay", type=float,
                   help="layer-wise learning-rate decay, e.g. 0.9 (default off)")
    g.add_argument("--class-weight", choices=("balanced",), help="weight classes by 1/frequency")
    g.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   default="float32")
    g.add_argument("--strategy", choices=("auto", "default", "mirrored", "multi_worker"),
                   default="auto", help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement; keep the best weights")
    g.add_argument("--monitor", default="val_accuracy", help="metric for early stopping")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--output-dir", default="runs/latest",
                   help="checkpoints, TensorBoard logs, model.keras, report (default runs/latest)")
    g.add_argument("--no-resume", action="store_true",
                   help="start over even if --output-dir holds checkpoints")


def _configure_train(p: argparse.ArgumentParser) -> None:
    add_data_options(p)
    add_model_options(p)
    add_training_options(p)


# --------------------------------------------------------------------------- data


def _read(path: str, args, label_vocab=None):
    from keras_bert_ft.data import read_file

    kwargs = {"label_vocab": label_vocab}
    if Path(path).suffix.lower() in (".csv", ".tsv") and args.no_header:
        kwargs["header"] = False
    return read_file(path, args.text_column, args.pair_column, args.label_column, **kwargs)


def _registry(name: str) -> dict:
    from keras_bert_ft.data import DatasetUnavailableError, load_dataset

    try:
        return load_dataset(name)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from None
    except DatasetUnavailableError as e:
        raise CLIError(str(e)) from None


def load_training_data(args) -> tuple:
    """(train, validation, test) TextDatasets from --dataset or --train/--validation/--test."""
    from keras_bert_ft.data import stratified_split

    if args.dataset:
        splits = _registry(args.dataset)
        train, val, test = splits["train"], splits.get("validation"), splits.get("test")
    elif args.train:
        train = _read(args.train, args)
        val = _read(args.validation, args, train.label_vocab) if args.validation else None
        test = _read(args.test, args, train.label_vocab) if args.test else None
    else:
        raise CLIError("give --dataset NAME or --train FILE")
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
    lr = args.learning_rate
    if lr is None:
        lr = 1e-3 if args.fine_tune == "frozen" else 5e-5
    return FinetuneSettings(
        model=args.model, num_layers=args.num_layers, pooling=args.pooling,
        hidden_units=tuple(args.hidden_units), dropout=args.dropout,
        train_encoder_layers=layers, layer_decay=args.layer_decay, learning_rate=lr,
        batch_size=args.batch_size, epochs=args.epochs, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, clipnorm=args.clipnorm, max_length=args.max_length,
        class_weight=args.class_weight, precision=args.precision, strategy=args.strategy,
        seed=args.seed, early_stopping_patience=args.early_stopping, monitor=args.monitor,
        output_dir=args.output_dir, resume=not args.no_resume,
    )  # fmt: skip


def _describe(name: str, ds) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in ds.class_counts().items())
    kind = "pairs" if ds.is_pair else "texts"
    return f"  {name:<10} {len(ds):>7,} {kind} ({counts})  from {ds.source}"


# --------------------------------------------------------------------------- subcommands


@subcommand("train", "fine-tune a classifier on a data set or files", _configure_train)
def train_command(args) -> int:
    from keras_bert_ft.training.finetune import finetune

    train, val, test = load_training_data(args)
    print("Data:")
    for name, ds in (("train", train), ("validation", val), ("test", test)):
        if ds is not None:
            print(_describe(name, ds))
    result = finetune(train, val, test, settings_from_args(args))
    if result.report is not None:
        print(f"\nReport on the {'test' if test is not None else 'validation'} set:")
        print(result.report.to_text())
    if result.output_dir is not None:
        print(f"\nSaved: {result.output_dir}/model.keras, report/ (metrics.json, report.txt, "
              "confusion_matrix.png), logs/ (TensorBoard), checkpoints/")  # fmt: skip
    return 0


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_path", help="a trained model: model.keras or the --output-dir of train")
    add_data_options(p, training=False)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output-dir", help="write metrics.json, report.txt, confusion_matrix.png here")


def load_trained_model(path: str):
    """A `BertClassifier` from a .keras file or a train output folder."""
    import keras

    import keras_bert_ft.models  # noqa: F401  (registers the classes for loading)

    p = Path(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.is_file():
        raise CLIError(f"{p}: no trained model here; pass the model.keras written by train")
    return keras.saving.load_model(p)


@subcommand("evaluate", "report a trained model's metrics on labelled data", _configure_evaluate)
def evaluate_command(args) -> int:
    from keras_bert_ft.data import LabelVocabulary, TextDataset, dataset_from
    from keras_bert_ft.training import evaluate_report

    model = load_trained_model(args.model_path)
    if not model.label_names or model.tokenizer is None:
        raise CLIError(f"{args.model_path}: the model has no label names or tokenizer saved")
    vocab = LabelVocabulary(model.label_names)
    if args.data:
        data = _read(args.data, args, vocab)
    elif args.dataset:
        splits = _registry(args.dataset)
        if args.split not in splits:
            raise CLIError(f"{args.dataset} has no split {args.split!r}: {', '.join(splits)}")
        data = splits[args.split]
        data = TextDataset(data.texts, data.pairs,
                           vocab.encode(data.label_vocab.decode(data.labels), source=data.source),
                           vocab, data.source)  # fmt: skip
    else:
        raise CLIError("give --data FILE or --dataset NAME")
    print(_describe("evaluate", data))
    features = dataset_from(
        TextDataset(data.texts, data.pairs, None, None), model.tokenizer,
        max_length=model.max_length, truncation=model.truncation, batch_size=args.batch_size,
    )  # fmt: skip
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
    g.add_argument("--learning-rates", type=_floats, default=[2e-5, 5e-5, 1e-4])
    g.add_argument("--batch-sizes", type=_ints, default=(16, 32))
    g.add_argument("--epoch-choices", type=_ints, default=(1, 2))
    g.add_argument("--max-trials", type=int, default=4)


@subcommand("tune", "search learning rate, batch size and epochs with KerasTuner", _configure_tune)
def tune_command(args) -> int:
    from keras_bert_ft.training.tuning import tune

    train, val, _ = load_training_data(args)
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


@subcommand("run", "fine-tune all-MiniLM-L6-v2 on SMS Spam (1 epoch) and print the report",
            _configure_run)  # fmt: skip
def run_command(args) -> int:
    from keras_bert_ft.data.registry import dataset_dir

    if not os.environ.get("KBF_DATA_DIR"):
        shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        if shared.is_dir():
            os.environ["KBF_DATA_DIR"] = str(shared)
    try:
        where = dataset_dir(args.dataset, download=False)
    except Exception:
        where = None
        print(
            f"No local copy of {args.dataset!r}: set KBF_DATA_DIR to the folder that holds "
            f"{args.dataset}/ (on this project's machines: KBF_DATA_DIR=../shared/data). "
            "Trying to download it instead...",
            file=sys.stderr,
        )
    print(
        f"keras-bert-ft run: fine-tune {args.model} on {args.dataset}"
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
    g.add_argument("--student-layers", type=int, default=3,
                   help="the student keeps the teacher's first N layers (default 3)")
    g.add_argument("--student-intermediate-size", type=int,
                   help="prune each kept layer's feed-forward units to this many "
                        "(default: keep all)")
    g.add_argument("--temperature", type=float, default=2.0, help="softmax temperature (default 2)")
    g.add_argument("--alpha", type=float, default=0.5,
                   help="weight of the hard-label loss; 1 - alpha goes to the soft targets")
    g.add_argument("--epochs", type=int, default=3)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--learning-rate", type=float, default=1e-4)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--output-dir", default="runs/distilled",
                   help="where the student's model.keras and report go (default runs/distilled)")


@subcommand("distill", "distil a trained classifier into a shallower student", _configure_distill)
def distill_command(args) -> int:
    from keras_bert_ft.compression.distillation import distill
    from keras_bert_ft.data import LabelVocabulary, TextDataset, dataset_from
    from keras_bert_ft.training import evaluate_report
    from keras_bert_ft.training.finetune import save_model

    teacher = load_trained_model(args.teacher)
    if not teacher.label_names or teacher.tokenizer is None:
        raise CLIError(f"{args.teacher}: the model has no label names or tokenizer saved")
    vocab = LabelVocabulary(teacher.label_names)

    def relabel(ds):
        # Class indices in the teacher's order, whatever order the data listed them in.
        if ds is None:
            return None
        labels = vocab.encode(ds.label_vocab.decode(ds.labels), source=ds.source)
        return TextDataset(ds.texts, ds.pairs, labels, vocab, ds.source)

    train, val, test = (relabel(d) for d in load_training_data(args))
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


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-bert-ft", description="Fine-tune BERT encoders for text classification."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `keras-bert-ft` and `python -m keras_bert_ft.cli`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (DataError, CLIError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
