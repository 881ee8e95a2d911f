"""`pretrain`: continue masked-LM (+ NSP) pretraining of an encoder on raw text, with
checkpoints and resume, TensorBoard logs, held-out MLM loss and accuracy, and the
adapted encoder written as a Hugging Face directory (with its heads) and as
`encoder.keras`. Optionally the heads train alone first (`head_warmup_steps`), and
every checkpoint's model is kept as a Hugging Face directory (`snapshots`) so that
the step count can be chosen on a downstream validation score.

The output directory is itself a Hugging Face directory once the run ends, so
`keras-bert-ft train --from DIR` fine-tunes the adapted encoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from keras_bert_ft.pretraining.data import (
    PackedExamples,
    PretrainingDataError,
    masked_dataset,
    pack_sentence_pairs,
    pack_sequences,
    read_documents,
)
from keras_bert_ft.pretraining.masking import MaskingOptions, MaskingVocab


@dataclass
class PretrainSettings:
    """What a pretraining run does; the defaults are the CLI's."""

    text_files: list[str] = field(default_factory=list)
    model: str = "all-minilm-l6-v2"
    steps: int = 1000
    batch_size: int = 32
    max_length: int = 128
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    nsp: bool = False
    whole_word: bool = False
    select_rate: float = 0.15
    max_predictions: int = 20
    validation_fraction: float = 0.05
    max_documents: int | None = None
    steps_per_checkpoint: int = 200
    head_warmup_steps: int = 0
    head_warmup_learning_rate: float = 1e-3
    snapshots: bool = False
    seed: int = 0
    output_dir: str = "runs/pretrain"
    resume: bool = True
    verbose: int = 1


@dataclass
class PretrainResult:
    output_dir: str
    validation_before: dict
    validation_after: dict
    heads_loaded: dict
    validation_after_head_warmup: dict = field(default_factory=dict)


def read_corpus(settings: PretrainSettings) -> list[list[str]]:
    """All documents of the text files (at most `max_documents`)."""
    if not settings.text_files:
        raise PretrainingDataError("no text files given (--text FILE ...)")
    documents = []
    for path in settings.text_files:
        documents += read_documents(path)
    if settings.max_documents is not None:
        documents = documents[:settings.max_documents]
    return documents


def split_documents(documents, fraction: float, seed: int):
    """Documents split into (train, held-out) at random, by document."""
    order = np.random.default_rng(seed).permutation(len(documents))
    held = int(round(fraction * len(documents)))
    if fraction > 0 and held == 0 and len(documents) > 1:
        held = 1
    if held >= len(documents):
        raise PretrainingDataError(
            f"{len(documents)} document(s) cannot be split into training and held-out text; "
            "give more text or --validation-fraction 0")
    return [documents[i] for i in order[held:]], [documents[i] for i in order[:held]]


def pack(documents, tokenizer, settings: PretrainSettings, seed: int) -> PackedExamples:
    if settings.nsp:
        return pack_sentence_pairs(documents, tokenizer, settings.max_length, seed)
    return pack_sequences(documents, tokenizer, settings.max_length)


def _identity(settings: PretrainSettings, train: PackedExamples) -> dict:
    digest = hashlib.sha256(train.input_word_ids.tobytes()).hexdigest()[:16]
    keep = {k: v for k, v in asdict(settings).items()
            if k not in ("steps", "output_dir", "resume", "verbose", "text_files")}
    return {"kind": "pretrain", "data_sha256": digest, "rows": len(train), **keep}


def evaluate_mlm(model, dataset, steps: int) -> dict:
    """Held-out MLM loss and accuracy (fixed masks) of `model`."""
    logs = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items() if k in ("mlm_loss", "mlm_accuracy",
                                                          "nsp_accuracy")}


def load_encoder(settings: PretrainSettings):
    """The encoder and tokenizer of `settings.model`, checked for pretraining."""
    from keras_bert_ft.checkpoints import load_pretrained

    encoder, tokenizer, config = load_pretrained(settings.model)
    if tokenizer is None:
        raise PretrainingDataError(f"{settings.model} has no vocabulary; pretraining needs one")
    if settings.max_length > config.max_position_embeddings:
        raise PretrainingDataError(
            f"--max-length {settings.max_length} exceeds the model's max_position_embeddings "
            f"({config.max_position_embeddings})")
    return encoder, tokenizer


def attach_heads(encoder, settings: PretrainSettings):
    """A `BertPretrainer` over `encoder`, with the source's heads when it has them.
    Returns (pretrainer, which heads loaded)."""
    from keras_bert_ft.checkpoints import locate_pretrained
    from keras_bert_ft.checkpoints.pretraining_heads import load_head_weights
    from keras_bert_ft.pretraining.model import BertPretrainer

    pretrainer = BertPretrainer(encoder, nsp=settings.nsp)
    loaded = load_head_weights(pretrainer, locate_pretrained(settings.model))
    return pretrainer, loaded


def warm_heads(pretrainer, dataset, settings: PretrainSettings) -> None:
    """Train the heads alone for `settings.head_warmup_steps` steps.

    The encoder, and with it the word-embedding table the MLM projection shares,
    stays frozen: a freshly started head's first gradients would otherwise push the
    encoder in random directions. The trainable flags are put back afterwards (the
    pooler, for one, stays frozen without NSP); compile the model again before `fit`.
    """
    from keras_bert_ft.training.optimizers import create_optimizer

    # Parents come before their children, so restoring in this order is exact.
    layers = list(pretrainer.encoder._flatten_layers(include_self=True))
    flags = [layer.trainable for layer in layers]
    pretrainer.encoder.trainable = False
    try:
        pretrainer.compile(optimizer=create_optimizer(
            settings.head_warmup_learning_rate, settings.head_warmup_steps,
            warmup_ratio=0.1, weight_decay=settings.weight_decay))
        pretrainer.fit(dataset, epochs=1, steps_per_epoch=settings.head_warmup_steps,
                       verbose=settings.verbose)
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            layer.trainable = flag


def write_snapshot(pretrainer, tokenizer, out: Path, step: int) -> Path:
    """The model after `step` steps as a HF directory, `out/snapshots/step-NNNNNN`
    (written to a temporary folder, then renamed)."""
    from keras_bert_ft.checkpoints.pretraining_heads import save_hf_pretraining

    final = out / "snapshots" / f"step-{step:06d}"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        save_hf_pretraining(pretrainer, str(tmp), _vocab_file(tokenizer))
        if final.exists():  # the same step again (a resumed run): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _vocab_file(tokenizer) -> str:
    if tokenizer.vocab_file is not None:
        return tokenizer.vocab_file
    from keras_bert_ft.tokenizers.op import materialize_vocab

    return materialize_vocab(tokenizer.get_vocab())


def pretrain(settings: PretrainSettings) -> PretrainResult:
    """Run continued pretraining as `settings` say; see the module docstring."""
    import keras

    from keras_bert_ft.training.checkpointing import (
        EpochCheckpoint,
        find_resume_checkpoint,
        restore_checkpoint,
    )
    from keras_bert_ft.training.optimizers import create_optimizer
    from keras_bert_ft.training.runs import finish_run, prepare_output_dir

    # Everything that can fail on the input fails before anything is written.
    documents = read_corpus(settings)
    keras.utils.set_random_seed(settings.seed)
    encoder, tokenizer = load_encoder(settings)
    vocab = MaskingVocab.from_tokenizer(tokenizer)
    train_docs, held_docs = split_documents(documents, settings.validation_fraction,
                                            settings.seed)
    train = pack(train_docs, tokenizer, settings, settings.seed)
    held = pack(held_docs, tokenizer, settings, settings.seed + 1) if held_docs else None
    options = MaskingOptions(select_rate=settings.select_rate,
                             max_predictions=settings.max_predictions,
                             whole_word=settings.whole_word)
    if len(train) < settings.batch_size:
        raise PretrainingDataError(f"{len(train)} packed training rows, fewer than one batch "
                                   f"of {settings.batch_size}; give more text or a smaller "
                                   "--batch-size")
    pretrainer, loaded = attach_heads(encoder, settings)

    out = Path(settings.output_dir)
    resumable = prepare_output_dir(out, _identity(settings, train), resume=settings.resume)
    # Checkpoints split the steps evenly; the total is rounded up to whole checkpoints.
    epochs = math.ceil(settings.steps / min(settings.steps_per_checkpoint, settings.steps))
    per_epoch = math.ceil(settings.steps / epochs)
    if epochs * per_epoch != settings.steps:
        print(f"Training {epochs * per_epoch} steps: {epochs} checkpoints of {per_epoch}")

    def compile_for_training():
        pretrainer.compile(optimizer=create_optimizer(
            settings.learning_rate, epochs * per_epoch, warmup_ratio=settings.warmup_ratio,
            weight_decay=settings.weight_decay))

    compile_for_training()
    initial_epoch = 0
    checkpoint = find_resume_checkpoint(out / "checkpoints") if resumable else None
    if checkpoint is not None:
        pretrainer.build_with_zeros()
        initial_epoch = int(restore_checkpoint(pretrainer, checkpoint)["epoch"])
        print(f"Resuming from {checkpoint} (step {initial_epoch * per_epoch})")

    held_ds = held_steps = None
    if held is not None:
        held_ds = masked_dataset(held, vocab, settings.batch_size, options,
                                 seed=settings.seed + 7, shuffle=False, repeat=False)
        held_steps = math.ceil(len(held) / settings.batch_size)
    before_file = out / "validation_before.json"
    before = {}
    if held_ds is not None:
        if before_file.exists():
            before = json.loads(before_file.read_text())
        else:
            before = evaluate_mlm(pretrainer, held_ds, held_steps)
            _write_json(before_file, before)
        print(f"Held-out MLM before: loss {before['mlm_loss']:.4f}, "
              f"accuracy {before['mlm_accuracy']:.4f}")

    warmed, warmed_file = {}, out / "validation_after_head_warmup.json"
    if checkpoint is None and settings.head_warmup_steps > 0:
        # A resumed run's checkpoint already holds the warmed heads.
        print(f"Training the heads alone for {settings.head_warmup_steps} steps "
              f"(encoder frozen, lr {settings.head_warmup_learning_rate:g})")
        warm_heads(pretrainer, masked_dataset(train, vocab, settings.batch_size, options,
                                              seed=settings.seed + 3), settings)
        compile_for_training()
        if held_ds is not None:
            warmed = evaluate_mlm(pretrainer, held_ds, held_steps)
            _write_json(warmed_file, warmed)
            print(f"Held-out MLM after the head warm-up: loss {warmed['mlm_loss']:.4f}, "
                  f"accuracy {warmed['mlm_accuracy']:.4f}")
    elif warmed_file.exists():
        warmed = json.loads(warmed_file.read_text())

    train_ds = masked_dataset(train, vocab, settings.batch_size, options, seed=settings.seed)
    # On resume, the step counter (and so the masks) continues where it stopped.
    train_ds = train_ds.skip(initial_epoch * per_epoch)
    callbacks = [EpochCheckpoint(out / "checkpoints"),
                 keras.callbacks.TensorBoard(str(out / "logs"), update_freq=50)]
    if settings.snapshots:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: write_snapshot(
                pretrainer, tokenizer, out, (epoch + 1) * per_epoch)))
    if initial_epoch < epochs:
        pretrainer.fit(train_ds, epochs=epochs, steps_per_epoch=per_epoch,
                       initial_epoch=initial_epoch, validation_data=held_ds,
                       validation_steps=held_steps, callbacks=callbacks,
                       verbose=settings.verbose)
    after = evaluate_mlm(pretrainer, held_ds, held_steps) if held_ds is not None else {}
    if after:
        print(f"Held-out MLM after:  loss {after['mlm_loss']:.4f}, "
              f"accuracy {after['mlm_accuracy']:.4f}")
        _write_json(out / "validation_after.json", after)
    write_outputs(pretrainer, tokenizer, out)
    finish_run(out)
    return PretrainResult(str(out), before, after, loaded, warmed)


def write_outputs(pretrainer, tokenizer, out: Path) -> None:
    """The adapted model: a HF directory in `out` (encoder and heads) and `encoder.keras`."""
    from keras_bert_ft.checkpoints.pretraining_heads import save_hf_pretraining

    save_hf_pretraining(pretrainer, str(out), _vocab_file(tokenizer))
    tmp = out / ".encoder.partial.keras"  # Keras insists on the .keras suffix
    try:
        pretrainer.encoder.save(str(tmp))
        os.replace(tmp, out / "encoder.keras")
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, obj) -> None:
    from keras_bert_ft.infra import atomic_write

    atomic_write(path, json.dumps(obj, indent=2) + "\n")
