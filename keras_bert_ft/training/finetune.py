"""`finetune`: the whole recipe from labelled `TextDataset`s to a trained,
saved and evaluated `BertClassifier`. The CLI and the benchmarks use it; the
plain-Keras way (load_pretrained, BertClassifier, compile_classifier, fit) is
what it does inside."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_bert_ft.data.pipeline import dataset_from, make_window_dataset
from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.infra import atomic_write
from keras_bert_ft.lora import DEFAULT_TARGETS
from keras_bert_ft.reports import (
    ClassificationReport,
    MultiLabelReport,
    classification_report,
    multilabel_report,
)
from keras_bert_ft.training.runs import describe_run, finish_run, prepare_output_dir
from keras_bert_ft.training.strategies import (
    enable_determinism,
    get_strategy,
    is_chief,
    set_precision,
)
from keras_bert_ft.training.thresholds import tune_thresholds
from keras_bert_ft.training.trainer import (
    compile_classifier,
    evaluate_report,
    fit_with_resume,
    make_callbacks,
)


@dataclass
class FinetuneSettings:
    """Everything that decides a fine-tuning run (defaults: the BERT recipe)."""

    model: str = "all-minilm-l6-v2"
    num_layers: int | None = None
    pooling: str = "mean"
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.1
    binary_sigmoid: bool = False
    train_encoder_layers: int | None = None  # None all, 0 frozen encoder, N top N
    lora_rank: int | None = None  # LoRA adapters of this rank instead of the encoder
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
    layer_decay: float | None = None
    # None: `default_learning_rate(train_encoder_layers, lora_rank)`, set on creation.
    learning_rate: float | None = None
    batch_size: int = 32
    accumulate_steps: int = 1  # batches per applied update (gradient accumulation)
    epochs: int = 3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    clipnorm: float | None = 1.0
    max_length: int = 128
    truncation: str = "longest_first"
    head_tokens: int | None = None  # truncation "head_tail": wordpieces kept from the start
    window_stride: int | None = None  # long texts as overlapping windows (long_documents)
    window_pooling: str = "mean"
    class_weight: str | None = None
    precision: str = "float32"
    strategy: str = "auto"
    seed: int = 0
    tune_thresholds: bool = True  # multi-label: per-label thresholds chosen on validation
    deterministic: bool = False  # TF op determinism (with the seed): reruns give equal results
    early_stopping_patience: int | None = None
    monitor: str = "val_accuracy"
    output_dir: str | None = None
    resume: bool = True
    jit_compile: bool = False
    # Batches per call of the compiled step (Keras' setting): the same updates; 8 was no
    # faster end to end at batch 32 on the CPU (docs/speed.md, round 11). Under a
    # distribution strategy the run takes one (see `compile_classifier`).
    steps_per_execution: int = 1
    verbose: int | str = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lora_rank is not None and self.train_encoder_layers is not None:
            raise ValueError(
                f"lora_rank={self.lora_rank} freezes the encoder and trains adapters; it does "
                f"not go with train_encoder_layers={self.train_encoder_layers} (leave it unset)"
            )
        if self.learning_rate is None:
            self.learning_rate = default_learning_rate(self.train_encoder_layers, self.lora_rank)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        d["lora_targets"] = list(self.lora_targets)
        return d


DEFAULT_LEARNING_RATE = 5e-5  # the whole encoder trains
# Only a fresh head over a frozen encoder, or LoRA adapters, train: few new weights,
# which need a larger step than a pretrained encoder does.
FROZEN_LEARNING_RATE = 1e-3


def default_learning_rate(train_encoder_layers: int | None = None,
                          lora_rank: int | None = None) -> float:
    """The peak learning rate used when none is given: `FROZEN_LEARNING_RATE` when the
    encoder is frozen (`train_encoder_layers=0`) or LoRA adapters train, else
    `DEFAULT_LEARNING_RATE`."""
    if train_encoder_layers == 0 or lora_rank is not None:
        return FROZEN_LEARNING_RATE
    return DEFAULT_LEARNING_RATE


@dataclass
class FinetuneResult:
    model: keras.Model
    history: dict
    report: ClassificationReport | MultiLabelReport | None
    train_seconds: float
    train_examples_seen: int
    output_dir: Path | None
    # Multi-label: the same evaluation at a 0.5 threshold for every label, beside
    # `report` (which uses the tuned thresholds).
    report_at_half: MultiLabelReport | None = None


def training_splits(train: TextDataset, validation: TextDataset | None = None, *,
                    validation_split: float = 0.1, max_train_examples: int | None = None,
                    seed: int = 0) -> tuple[TextDataset, TextDataset | None]:
    """`(train, validation)` as `finetune` should get them.

    Without `validation` data, a stratified `validation_split` of `train` (a fraction in
    [0, 1); 0 keeps it all) is held out for validation. Then, with `max_train_examples`,
    training uses a stratified subset of that many rows. Both draws follow `seed`.
    """
    from keras_bert_ft.data.splits import split_indices, stratified_split

    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    if validation is None and validation_split > 0:
        parts = stratified_split(
            train, {"train": 1 - validation_split, "validation": validation_split}, seed=seed
        )
        train, validation = parts["train"], parts["validation"]
    if max_train_examples and max_train_examples < len(train):
        frac = max_train_examples / len(train)
        keep = split_indices(train.labels, len(train), {"keep": frac, "rest": 1 - frac},
                             seed=seed)["keep"]  # fmt: skip
        train = train.subset(keep)
    return train, validation


def build_classifier(settings: FinetuneSettings, label_names, strategy=None,
                     pairs: bool | None = None, multi_label: bool = False):
    """Load the pretrained encoder and wrap it in a compiled-ready `BertClassifier`.

    `pairs` records whether the model classifies sentence pairs.
    """
    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.models import BertClassifier

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        encoder, tokenizer, _ = load_pretrained(settings.model, num_layers=settings.num_layers)
        if tokenizer is None:
            raise ValueError(f"{settings.model} has no vocabulary; cannot tokenize texts")
        model = BertClassifier(
            encoder,
            len(label_names),
            pooling=settings.pooling,
            hidden_units=settings.hidden_units,
            dropout=settings.dropout,
            binary_sigmoid=settings.binary_sigmoid,
            multi_label=multi_label,
            train_encoder_layers=settings.train_encoder_layers,
            label_names=list(label_names),
            tokenizer=tokenizer,
            max_length=settings.max_length,
            truncation=settings.truncation,
            head_tokens=settings.head_tokens,
            window_stride=settings.window_stride,
            window_pooling=settings.window_pooling,
            pairs=pairs,
            lora_rank=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_targets=settings.lora_targets,
            lora_base_model=settings.model,
        )
    return model, tokenizer


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save `model` as a .keras file without its optimizer (state or compile settings).

    `keras.saving.load_model` returns it uncompiled, ready to predict; compile it
    again to train further. Written into a temporary folder, then renamed:
    never a half-written .keras file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _optimizer_hidden(model):
            model.save(tmp / target.name)
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _optimizer_hidden(model: keras.Model):
    # Keras 3.15 ignores `include_optimizer` for .keras files: it saves the state
    # of whatever `model.optimizer` is and the compile settings when `compiled`.
    # Hiding both for the duration of the save leaves the weights and config only.
    if not getattr(model, "compiled", False):
        yield
        return
    optimizer = model.optimizer
    model.optimizer, model.compiled = None, False
    try:
        yield
    finally:
        model.optimizer, model.compiled = optimizer, True


def _shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    # The pipeline reads in-memory arrays, not files: shard batches across workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def finetune(
    train: TextDataset,
    validation: TextDataset | None = None,
    test: TextDataset | None = None,
    settings: FinetuneSettings | None = None,
    log=print,
) -> FinetuneResult:
    """Fine-tune on `train`, validate each epoch on `validation`, report on `test`
    (or on `validation` when there is no test set).

    With `settings.output_dir`, writes `run.json` (what this run is, before
    training starts), `checkpoints/` (one per epoch, resumed from
    automatically), `logs/` (TensorBoard), `model.keras` (without optimizer),
    `labels.json`, `settings.json` and `report/` (metrics.json, report.txt,
    confusion_matrix.png); with `settings.lora_rank`, also `adapter.npz` (the
    LoRA factors and head alone, `keras_bert_ft.lora.load_adapter`).

    A rerun into the same output directory resumes only the same run: the same
    data, labels, model, tokenizer, packing, head and optimisation settings
    (epochs, early stopping, strategy and verbosity may change; see
    `keras_bert_ft.training.runs`). Another run there raises `RunMismatchError`
    naming the fields that differ, and touches nothing. With
    `settings.resume=False` the earlier run is moved to `previous-run/` before
    training and deleted when this run has finished. Damaged checkpoints are
    skipped with a warning; `CheckpointError` when none is usable.
    """
    s = settings or FinetuneSettings()
    if train.labels is None or train.label_vocab is None:
        raise ValueError("the training data has no labels")
    keras.utils.set_random_seed(s.seed)
    if s.deterministic:
        enable_determinism(s.seed)
    set_precision(s.precision)
    strategy = get_strategy(s.strategy)
    chief = is_chief()
    out = Path(s.output_dir) if s.output_dir else None
    label_names = train.label_vocab.names

    if train.is_multi_label and s.class_weight is not None:
        raise ValueError("class_weight is for single-label data; multi-label data has none")
    model, tokenizer = build_classifier(s, label_names, strategy, pairs=train.is_pair,
                                        multi_label=train.is_multi_label)  # fmt: skip
    if out is not None:
        # Before anything is written: refuse another run's directory untouched.
        identity = describe_run(s, train, validation, tokenizer)
        prepare_output_dir(out, identity, resume=s.resume, write=chief, log=log)
    log(
        f"Model: {s.model} ({model.encoder.count_params():,} encoder parameters, "
        f"{sum(int(np.prod(v.shape)) for v in model.trainable_weights):,} trainable), "
        f"pooling={s.pooling}, fine-tune={_mode(s.train_encoder_layers, s.lora_rank)}, "
        f"strategy={type(strategy).__name__} ({strategy.num_replicas_in_sync} replicas)"
    )
    kw = dict(max_length=s.max_length, truncation=s.truncation, batch_size=s.batch_size,
              head_tokens=s.head_tokens)
    train_rows = len(train)
    if s.window_stride is not None:  # every window is a row labelled with its text's label
        win = dict(max_length=s.max_length, stride=s.window_stride, batch_size=s.batch_size)
        train_ds, docs = make_window_dataset(train.texts, train.labels, tokenizer, shuffle=True,
                                             seed=s.seed, class_weight=s.class_weight, **win)
        train_rows = len(docs)
        val_ds = None if validation is None else make_window_dataset(
            validation.texts, validation.labels, tokenizer, **win)[0]
    else:
        train_ds = dataset_from(train, tokenizer, shuffle=True, seed=s.seed,
                                class_weight=s.class_weight, **kw)  # fmt: skip
        val_ds = dataset_from(validation, tokenizer, **kw) if validation is not None else None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        train_ds = _shard_by_data(train_ds)
        val_ds = _shard_by_data(val_ds) if val_ds is not None else None
    steps_per_epoch = math.ceil(train_rows / s.batch_size)
    with strategy.scope():
        steps_per_execution = s.steps_per_execution
        if steps_per_execution > 1 and tf.distribute.has_strategy():
            log(f"Note: steps_per_execution={steps_per_execution} asked, 1 used: Keras' "
                f"loop of several steps per call fails under {type(strategy).__name__}.")
            steps_per_execution = 1
        compile_classifier(
            model, total_steps=steps_per_epoch * s.epochs, learning_rate=s.learning_rate,
            warmup_ratio=s.warmup_ratio, weight_decay=s.weight_decay, clipnorm=s.clipnorm,
            layer_decay=s.layer_decay, jit_compile=s.jit_compile,
            accumulate_steps=s.accumulate_steps,
            steps_per_execution=steps_per_execution,
        )  # fmt: skip
    monitor = s.monitor if val_ds is not None else s.monitor.removeprefix("val_")
    # Saving can run collective ops under a multi-worker strategy, so every
    # worker saves; non-chief workers write into a throw-away folder.
    write_dir = out if (out is None or chief) else Path(tempfile.mkdtemp(prefix="kbf_worker_"))
    callbacks = make_callbacks(
        checkpoint_dir=write_dir / "checkpoints" if write_dir else None,
        tensorboard_dir=write_dir / "logs" if write_dir else None,
        early_stopping_patience=s.early_stopping_patience,
        monitor=monitor,
    )
    log(
        f"Training: {len(train):,} examples, {steps_per_epoch} steps/epoch x {s.epochs} "
        f"epochs, batch {s.batch_size}, lr {s.learning_rate:g}"
        + (f", {s.accumulate_steps} batches per update (effective batch "
           f"{s.accumulate_steps * s.batch_size})" if s.accumulate_steps > 1 else "")
        + (f", validation {len(validation):,}" if validation is not None else "")
    )
    start_iter = 0
    start = time.perf_counter()
    with strategy.scope():
        history = fit_with_resume(
            model, train_ds, epochs=s.epochs, validation_data=val_ds, callbacks=callbacks,
            checkpoint_dir=out / "checkpoints" if out else None, resume=s.resume,
            verbose=s.verbose,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    steps_run = len(history.epoch) * steps_per_epoch if history is not None else start_iter
    log(f"Trained in {seconds:.1f} s ({steps_run * s.batch_size / max(seconds, 1e-9):.1f} "
        "examples/s)")  # fmt: skip

    report = report_at_half = None
    eval_set = test if test is not None else validation
    if train.is_multi_label:
        report, report_at_half = evaluate_multilabel(
            model, tokenizer, validation if s.tune_thresholds else None, eval_set, kw, log=log
        )
    elif eval_set is not None and s.window_stride is not None:  # scores pooled per text
        report = classification_report(np.asarray(eval_set.labels),
                                       model.predict_texts(eval_set.texts), label_names)
    elif eval_set is not None:
        features = dataset_from(
            TextDataset(eval_set.texts, eval_set.pairs, None, None), tokenizer, **kw
        )
        report = evaluate_report(model, features, eval_set.labels, label_names)
    if write_dir is not None:
        save_model(model, write_dir / "model.keras")
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if out is not None and chief:
        train.label_vocab.save(out / "labels.json")
        if s.lora_rank is not None:
            from keras_bert_ft.lora import ADAPTER_FILE, save_adapter

            save_adapter(model, out / ADAPTER_FILE)
        atomic_write(out / "settings.json", json.dumps(s.to_dict(), indent=2) + "\n")
        if report is not None:
            report.save(out / "report", extra={"settings": s.to_dict(),
                                               "evaluated_on": eval_set.source})  # fmt: skip
        if report_at_half is not None:
            report_at_half.save(out / "report", prefix="threshold_0.5_",
                                extra={"evaluated_on": eval_set.source})  # fmt: skip
        finish_run(out, log=log)
    return FinetuneResult(
        model=model,
        history=history.history if history is not None else {},
        report=report,
        train_seconds=seconds,
        train_examples_seen=steps_run * s.batch_size,
        output_dir=out,
        report_at_half=report_at_half,
    )


def evaluate_multilabel(model, tokenizer, validation: TextDataset | None,
                        eval_set: TextDataset | None, encode_kw: dict, log=print):
    """Tune `model`'s per-label thresholds on `validation` (when given; they are set on
    the model), then report on `eval_set` with them and with 0.5 for every label."""
    def scores_of(data: TextDataset) -> np.ndarray:
        if getattr(model, "window_stride", None) is not None:  # windows pooled per text
            return np.asarray(model.predict_texts(data.texts))
        features = dataset_from(TextDataset(data.texts, data.pairs, None, None), tokenizer,
                                **encode_kw)  # fmt: skip
        return np.asarray(model.predict(features, verbose=0))

    if validation is not None:
        model.set_thresholds(tune_thresholds(scores_of(validation), validation.labels))
        log("Thresholds tuned on validation data (max F1 per label): "
            + ", ".join(f"{n} {t:.2f}" for n, t in zip(model.label_names,
                                                       model.thresholds, strict=True)))
    if eval_set is None:
        return None, None
    if eval_set is validation:
        log("Warning: reporting on the validation data the thresholds were tuned on "
            "(no test data): the tuned figures are optimistic")
    scores = scores_of(eval_set)
    names = model.label_names
    return (multilabel_report(eval_set.labels, scores, names, model.decision_thresholds()),
            multilabel_report(eval_set.labels, scores, names, 0.5))


def _mode(train_encoder_layers: int | None, lora_rank: int | None = None) -> str:
    if lora_rank is not None:
        return f"LoRA rank {lora_rank}"
    if train_encoder_layers is None:
        return "all layers"
    if train_encoder_layers == 0:
        return "frozen encoder"
    return f"top {train_encoder_layers} layers"
