"""`fit` helpers: compile a classifier for fine-tuning, build the callbacks,
train with resume, and evaluate into a `ClassificationReport`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_bert_ft.reports import ClassificationReport, classification_report
from keras_bert_ft.training.checkpointing import (
    EpochCheckpoint,
    find_resume_checkpoint,
    print_warning,
    restore_checkpoint,
)
from keras_bert_ft.training.custom_loop import fit_custom_loop
from keras_bert_ft.training.optimizers import create_optimizer


def compile_classifier(
    model,
    *,
    total_steps: int,
    learning_rate: float = 5e-5,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    clipnorm: float | None = 1.0,
    layer_decay: float | None = None,
    loss=None,
    metrics: Sequence | None = None,
    jit_compile: bool = False,
    accumulate_steps: int = 1,
    steps_per_execution: int = 1,
) -> None:
    """Compile `model` (a `BertClassifier`) with AdamW and the warm-up/decay schedule.

    `total_steps` is the number of training batches (fit steps) the run will take.
    `layer_decay` (e.g. 0.9) gives lower encoder layers smaller learning
    rates. `accumulate_steps` N > 1 applies one update per N batches with their
    mean gradient (N batches of B train like one of N * B, in the memory of B);
    the schedule counts applied updates. Remainder batches at an epoch's end
    carry over into the next epoch's first update. `steps_per_execution` runs
    that many batches in one call of the compiled step (Keras' own setting): the
    same updates with less Python per batch, but batch-level callbacks see only
    every Nth batch; under a `tf.distribute` strategy it must stay 1 (Keras 3's
    multi-step loop fails there, keras-team/keras#19246). The loss and metrics
    default to the ones matching the head. Call it inside `strategy.scope()` when
    training with a strategy, and after choosing what is frozen.
    """
    if steps_per_execution > 1 and tf.distribute.has_strategy():
        raise ValueError(
            f"steps_per_execution={steps_per_execution} under "
            f"{type(tf.distribute.get_strategy()).__name__}: Keras' loop of several steps "
            "per call fails under a distribution strategy (keras-team/keras#19246); use 1"
        )
    multipliers = model.layerwise_lr_multipliers(layer_decay) if layer_decay else None
    optimizer = create_optimizer(
        learning_rate, total_steps, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
        clipnorm=clipnorm, lr_multipliers=multipliers, accumulate_steps=accumulate_steps,
    )  # fmt: skip
    model.compile(
        optimizer=optimizer,
        loss=loss if loss is not None else model.default_loss(),
        metrics=list(metrics) if metrics is not None else model.default_metrics(),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )


def make_callbacks(
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    early_stopping_patience: int | None = None,
    monitor: str = "val_accuracy",
    restore_best_weights: bool = True,
    save: bool = True,
    keep_checkpoints: int = 2,
) -> list[keras.callbacks.Callback]:
    """Epoch checkpoints, TensorBoard logs and early stopping, as asked.

    Early stopping watches `monitor` ("val_loss" is minimised, anything else
    maximised) and, with `restore_best_weights`, ends with the best epoch's weights.
    """
    callbacks: list[keras.callbacks.Callback] = []
    if checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(checkpoint_dir, keep=keep_checkpoints, save=save))
    if tensorboard_dir is not None and save:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard_dir), update_freq="epoch"))
    if early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode="min" if monitor.endswith("loss") else "max",
                patience=early_stopping_patience,
                restore_best_weights=restore_best_weights,
                verbose=1,
            )
        )
    return callbacks


def fit_with_resume(
    model,
    train_data,
    *,
    epochs: int,
    validation_data=None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    verbose: int | str = "auto",
    warn: Callable[[str], None] = print_warning,
    **fit_kwargs,
) -> keras.callbacks.History | None:
    """`model.fit`, first restoring the newest intact checkpoint in `checkpoint_dir`.

    Training continues at the epoch after the checkpoint with the saved
    optimizer state (so the step count and learning rate carry on). Damaged
    newer checkpoints are reported through `warn` and skipped; when every
    checkpoint is damaged, or the newest intact one does not fit the model,
    `CheckpointError` is raised. Returns None when the checkpoint already
    covers all `epochs`.
    """
    initial_epoch = 0
    if resume and checkpoint_dir is not None:
        latest = find_resume_checkpoint(checkpoint_dir, warn=warn)
        if latest is not None:
            state = restore_checkpoint(model, latest)
            initial_epoch = int(state["epoch"])
            if verbose:
                print(
                    f"Resuming from {latest} (epoch {initial_epoch}, "
                    f"step {state['iterations']})",
                    flush=True,
                )
    if initial_epoch >= epochs:
        return None
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3's fit cannot run this strategy with dict inputs; see custom_loop.
        return fit_custom_loop(model, train_data, epochs=epochs, strategy=strategy,
                               initial_epoch=initial_epoch, callbacks=callbacks,
                               verbose=1 if verbose else 0)  # fmt: skip
    # A tf.data pipeline shuffles itself; Keras only warns about its own flag.
    fit_kwargs.setdefault("shuffle", False)
    return model.fit(
        train_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=validation_data,
        callbacks=list(callbacks),
        verbose=verbose,
        **fit_kwargs,
    )


def evaluate_report(
    model, features, labels: np.ndarray, label_names: Sequence[str] | None = None
) -> ClassificationReport:
    """Predict on `features` (a dataset without labels, in row order) and report
    against `labels`. `label_names` defaults to the model's."""
    scores = model.predict(features, verbose=0)
    names = label_names if label_names is not None else getattr(model, "label_names", None)
    return classification_report(np.asarray(labels), scores, names)


def save_report(report: ClassificationReport, directory: str | os.PathLike, extra=None) -> dict:
    """Write metrics.json, report.txt and confusion_matrix.png into `directory`."""
    return report.save(Path(directory), extra=extra)
