"""The training subcommands of `keras-bert-ft`: train, evaluate, tune, run and distill.

Each is one function registered with `@subcommand`; its options are checked before any
work starts: values when they are parsed, the pretrained model's config and vocabulary
before its weights load. What is trained or evaluated is decided by the library
(`keras_bert_ft.training`); this module turns options into its arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from keras_bert_ft.cli.common import (
    FRACTION,
    MIN_LENGTH_PAIR,
    MIN_LENGTH_SINGLE,
    POSITIVE,
    CLIError,
    add_data_options,
    check_data_options,
    check_fits_model,
    integer,
    integers,
    load_trained_model,
    number,
    numbers,
    read_data,
    registered_dataset,
    setting_default,
    subcommand,
)

# --------------------------------------------------------------------------- options


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The pretrained encoder, the head, what trains, and how texts become tokens."""
    d = setting_default
    g = p.add_argument_group("model")
    g.add_argument("--model", "--from", dest="model", default=d("model"),
                   help="pretrained encoder: packaged name, HF/Google/TF-Hub/keras-hub "
                   "directory (e.g. the --output-dir of pretrain), or Hugging Face Hub name "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--num-layers", type=integer(1), default=d("num_layers"),
                   help="keep only the first N encoder layers (default: all)")
    g.add_argument("--pooling", choices=("mean", "pooled", "cls"), default=d("pooling"),
                   help="sentence vector: mean of tokens (suits sentence-transformer "
                   "weights), the BERT pooler, or the raw [CLS] vector (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--hidden-units", type=integers(1), default=d("hidden_units"),
                   help="hidden MLP sizes, e.g. 256 or 256,128 (default: none)")  # fmt: skip
    g.add_argument("--dropout", type=FRACTION, default=d("dropout"),
                   help="dropout of the head, in [0, 1) (default %(default)s)")
    g.add_argument("--fine-tune", choices=("all", "top", "frozen"), default="all",
                   help="train everything, only the top --train-layers layers, or only the "
                   "head over a frozen encoder (default %(default)s)")  # fmt: skip
    g.add_argument("--train-layers", type=integer(1), default=2,
                   help="with --fine-tune top: how many top layers train (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--max-length", type=integer(MIN_LENGTH_SINGLE), default=d("max_length"),
                   help="tokens per example, [CLS] and [SEP] included; at most the model's "
                   "max_position_embeddings (default %(default)s)")  # fmt: skip
    from keras_bert_ft.tokenizers.options import TRUNCATION_STRATEGIES

    g.add_argument("--truncation", choices=TRUNCATION_STRATEGIES, default=d("truncation"),
                   help="how over-long examples are cut: for pairs longest_first, only_first, "
                   "only_second or ratio; head_tail (single texts) keeps the start and the end; "
                   "otherwise a single text is cut at the end (default %(default)s)")
    g.add_argument("--head-tokens", type=integer(0), default=d("head_tokens"),
                   help="with --truncation head_tail: wordpieces kept from the start (default "
                   "a quarter of max-length - 2)")
    g.add_argument("--window-stride", type=integer(0), default=d("window_stride"),
                   help="single texts: cut each text into overlapping windows of max-length - 2 "
                   "wordpieces sharing this many, train on every window (its text's label) "
                   "and pool the windows' scores per text (default: no windows)")
    g.add_argument("--window-pooling", choices=("mean", "max"), default=d("window_pooling"),
                   help="with --window-stride: mean or max of the windows' probabilities "
                   "(default %(default)s)")


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Optimisation, precision, strategy, early stopping, seed and output folder."""
    d = setting_default
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=integer(1), default=d("epochs"),
                   help="passes over the training data (default %(default)s)")
    g.add_argument("--batch-size", type=integer(1), default=d("batch_size"),
                   help="examples per step (default %(default)s)")
    g.add_argument("--accumulate-steps", type=integer(1), default=d("accumulate_steps"),
                   metavar="N", help="gradient accumulation: one update per N batches, with "
                   "their mean gradient (an effective batch of N x --batch-size in the "
                   "memory of one; default %(default)s)")  # fmt: skip
    g.add_argument("--steps-per-execution", type=integer(1),
                   default=d("steps_per_execution"), metavar="N",
                   help="batches per call of the compiled training step (Keras' "
                   "steps_per_execution): the same updates, less Python per batch; the "
                   "progress bar moves every N batches (default %(default)s)")  # fmt: skip
    from keras_bert_ft.training.finetune import DEFAULT_LEARNING_RATE, FROZEN_LEARNING_RATE

    g.add_argument("--learning-rate", type=POSITIVE, default=d("learning_rate"),
                   help=f"peak learning rate (default {DEFAULT_LEARNING_RATE:g}; "
                   f"{FROZEN_LEARNING_RATE:g} with --fine-tune frozen or --lora-rank)")  # fmt: skip
    g.add_argument("--warmup-ratio", type=number(0, 1), default=d("warmup_ratio"),
                   help="fraction of the steps that warm the learning rate up, in [0, 1] "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--weight-decay", type=number(0), default=d("weight_decay"),
                   help="AdamW weight decay (default %(default)s)")
    g.add_argument("--clipnorm", type=POSITIVE, default=d("clipnorm"),
                   help="global gradient norm clip (default %(default)s)")
    g.add_argument("--layer-decay", type=number(0, 1, low_open=True), default=d("layer_decay"),
                   help="layer-wise learning-rate decay in (0, 1], e.g. 0.9 (default: off)")
    g.add_argument("--class-weight", choices=("balanced",), default=d("class_weight"),
                   help="weight classes by 1/frequency (default: off)")
    g.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   default=d("precision"),
                   help="float type of the computations; mixed_* keeps float32 weights "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--strategy", choices=("auto", "default", "mirrored", "multi_worker"),
                   default=d("strategy"),
                   help="tf.distribute strategy; multi_worker reads TF_CONFIG (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--early-stopping", type=integer(1), metavar="PATIENCE",
                   default=d("early_stopping_patience"),
                   help="stop after PATIENCE epochs without improvement; keep the best "
                   "weights (default: off)")  # fmt: skip
    g.add_argument("--monitor", default=d("monitor"),
                   help="metric for early stopping (default %(default)s)")
    g.add_argument("--seed", type=integer(0), default=d("seed"),
                   help="random seed (default %(default)s)")
    g.add_argument("--deterministic", action="store_true", default=d("deterministic"),
                   help="TensorFlow op determinism and fixed seeds: a rerun with the same "
                   "options gives the same weights and report (slower)")  # fmt: skip
    g.add_argument("--output-dir", default="runs/latest",
                   help="checkpoints, TensorBoard logs, model.keras, report (default "
                   "%(default)s)")  # fmt: skip
    g.add_argument("--no-tune-thresholds", action="store_true",
                   default=not d("tune_thresholds"),
                   help="multi-label: keep 0.5 for every label instead of choosing each "
                   "label's threshold on the validation data (max F1) (default: tune)")
    g.add_argument("--no-resume", action="store_true", default=not d("resume"),
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
    """LoRA adapters instead of training the encoder."""
    d = setting_default
    g = p.add_argument_group("low-rank adaptation (LoRA)")
    g.add_argument("--lora-rank", type=integer(1), default=d("lora_rank"),
                   help="train rank-R low-rank adapters of the encoder's projections and the "
                   "head, with the encoder frozen; writes adapter.npz (default: off)")
    g.add_argument("--lora-alpha", type=POSITIVE, default=d("lora_alpha"),
                   help="LoRA scale numerator: updates are scaled by alpha / rank "
                   "(default %(default)s)")  # fmt: skip
    g.add_argument("--lora-targets", type=lora_targets, default=d("lora_targets"),
                   help="comma-separated projections to adapt, from query, key, value, "
                   "attention_output, intermediate, output (default "
                   f"{','.join(d('lora_targets'))})")  # fmt: skip


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
    """Sentence pairs need room for [CLS] a [SEP] b [SEP]."""
    if data.is_pair and max_length < MIN_LENGTH_PAIR:
        raise CLIError(f"--max-length {max_length} leaves no room for sentence pairs "
                       f"([CLS] a [SEP] b [SEP]); use at least {MIN_LENGTH_PAIR}")  # fmt: skip


def load_training_data(args) -> tuple:
    """(train, validation, test) TextDatasets from --dataset or --train/--validation/--test."""
    from keras_bert_ft.training.finetune import training_splits

    if args.dataset:
        splits = registered_dataset(args.dataset)
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
        train = read_data(args.train, args)
        val = read_data(args.validation, args, train.label_vocab) if args.validation else None
        test = read_data(args.test, args, train.label_vocab) if args.test else None
    train, val = training_splits(train, val, validation_split=args.validation_split,
                                 max_train_examples=args.max_train_examples, seed=args.seed)
    return train, val, test


def settings_from_args(args):
    """The `FinetuneSettings` that train and tune options describe; what the options leave
    out (the learning rate, say) the library decides."""
    from keras_bert_ft.training.finetune import FinetuneSettings

    layers = {"all": None, "frozen": 0, "top": args.train_layers}[args.fine_tune]
    lora = {}
    if getattr(args, "lora_rank", None) is not None and args.fine_tune != "all":
        # FinetuneSettings refuses it too; this says it in the options' words.
        raise CLIError(f"--lora-rank freezes the encoder and trains adapters; it does not go "
                       f"with --fine-tune {args.fine_tune}")  # fmt: skip
    if getattr(args, "lora_rank", None) is not None:  # tune has no LoRA options
        lora = dict(lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                    lora_targets=args.lora_targets)
    return FinetuneSettings(
        model=args.model, num_layers=args.num_layers, pooling=args.pooling,
        hidden_units=tuple(args.hidden_units), dropout=args.dropout,
        train_encoder_layers=layers, layer_decay=args.layer_decay,
        learning_rate=args.learning_rate, batch_size=args.batch_size,
        accumulate_steps=args.accumulate_steps, steps_per_execution=args.steps_per_execution,
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


@subcommand("evaluate", "report a trained model's metrics on labelled data", _configure_evaluate)
def evaluate_command(args) -> int:
    from keras_bert_ft.data import LabelVocabulary
    from keras_bert_ft.training.evaluation import evaluate_model

    check_data_options(args)
    model = load_trained_model(args.model_path, labelled=True)
    if args.data:
        check_fits_model(model, args.pair_column is not None, args.data, args.model_path)
        data = read_data(args.data, args, LabelVocabulary(model.label_names),
                         multi_label=model.head_type == "multi_label")  # fmt: skip
    else:
        splits = registered_dataset(args.dataset)
        if args.split not in splits:
            raise CLIError(f"{args.dataset} has no split {args.split!r}: {', '.join(splits)}")
        data = splits[args.split]
        check_fits_model(model, data.is_pair, f"{args.dataset} ({args.split})", args.model_path)
    print(_describe("evaluate", data))
    report = evaluate_model(model, data, batch_size=args.batch_size)
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
            f"{args.dataset}/. Trying to download it instead...",
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
    from keras_bert_ft.training.evaluation import evaluate_model, in_label_order
    from keras_bert_ft.training.finetune import save_model

    check_data_options(args)
    teacher = load_trained_model(args.teacher, labelled=True)
    teacher_layers = getattr(getattr(teacher.encoder, "config", None), "num_layers", None)
    if teacher_layers is not None and args.student_layers > teacher_layers:
        raise CLIError(f"--student-layers {args.student_layers}: the teacher has only "
                       f"{teacher_layers} layers")  # fmt: skip
    train, val, test = load_training_data(args)
    check_fits_model(teacher, train.is_pair, train.source, args.teacher)
    train, val, test = (in_label_order(d, teacher.label_names) for d in (train, val, test))
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
        report = evaluate_model(student, report_on)
        print(report.to_text())
        report.save(out / "report", extra={"teacher": str(args.teacher), "data": report_on.source,
                                           "student_layers": args.student_layers,
                                           "student_intermediate_size":
                                               args.student_intermediate_size})  # fmt: skip
    print(f"Saved: {out}/model.keras")
    return 0
