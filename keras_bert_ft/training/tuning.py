"""A small hyperparameter search (learning rate, batch size, epochs) with KerasTuner."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import keras_tuner as kt

from keras_bert_ft.data.pipeline import dataset_from
from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.training.finetune import FinetuneSettings, build_classifier
from keras_bert_ft.training.trainer import compile_classifier


class BertHyperModel(kt.HyperModel):
    """Builds a fresh classifier from the pretrained weights for each trial."""

    def __init__(self, train: TextDataset, validation: TextDataset, settings: FinetuneSettings,
                 learning_rates, batch_sizes, epochs):  # fmt: skip
        super().__init__()
        self.train, self.validation, self.settings = train, validation, settings
        self.learning_rates = [float(x) for x in learning_rates]
        self.batch_sizes = [int(x) for x in batch_sizes]
        self.epochs = [int(x) for x in epochs]
        self._tokenizer = None

    def build(self, hp):
        lr = hp.Choice("learning_rate", self.learning_rates)
        batch = hp.Choice("batch_size", self.batch_sizes)
        epochs = hp.Choice("epochs", self.epochs)
        s = self.settings
        model, self._tokenizer = build_classifier(s, self.train.label_vocab.names)
        compile_classifier(
            model, total_steps=math.ceil(len(self.train) / batch) * epochs, learning_rate=lr,
            warmup_ratio=s.warmup_ratio, weight_decay=s.weight_decay, clipnorm=s.clipnorm,
            layer_decay=s.layer_decay, steps_per_execution=s.steps_per_execution,
        )  # fmt: skip
        return model

    def fit(self, hp, model, *args, **kwargs):
        s = self.settings
        kw = dict(max_length=s.max_length, truncation=s.truncation,
                  batch_size=hp.get("batch_size"))  # fmt: skip
        train_ds = dataset_from(self.train, self._tokenizer, shuffle=True, seed=s.seed, **kw)
        val_ds = dataset_from(self.validation, self._tokenizer, **kw)
        kwargs.pop("epochs", None)
        return model.fit(train_ds, validation_data=val_ds, epochs=hp.get("epochs"),
                         shuffle=False, verbose=s.verbose, **kwargs)  # fmt: skip


def tune(
    train: TextDataset,
    validation: TextDataset,
    settings: FinetuneSettings,
    *,
    learning_rates: Sequence[float] = (2e-5, 5e-5, 1e-4),
    batch_sizes: Sequence[int] = (16, 32),
    epochs: Sequence[int] = (1, 2),
    max_trials: int = 4,
    directory: str | os.PathLike = "runs/tuning",
    objective: str = "val_accuracy",
) -> tuple[dict, str]:
    """Random search over the grid; returns (best values, a text summary of all trials)."""
    hypermodel = BertHyperModel(train, validation, dataclasses.replace(settings),
                                learning_rates, batch_sizes, epochs)  # fmt: skip
    tuner = kt.RandomSearch(
        hypermodel,
        objective=kt.Objective(objective, direction="min" if "loss" in objective else "max"),
        max_trials=max_trials,
        seed=settings.seed,
        directory=str(directory),
        project_name="search",
        overwrite=not settings.resume,
    )
    tuner.search()
    best = tuner.get_best_hyperparameters(1)[0].values
    lines = [f"{'trial':<8}{'learning_rate':>14}{'batch_size':>12}{'epochs':>8}{objective:>16}"]
    for t in tuner.oracle.get_best_trials(max_trials):
        v = t.hyperparameters.values
        score = t.score if t.score is not None else float("nan")
        lines.append(f"{t.trial_id:<8}{v['learning_rate']:>14g}{v['batch_size']:>12}"
                     f"{v['epochs']:>8}{score:>16.4f}")  # fmt: skip
    return best, "\n".join(lines)
