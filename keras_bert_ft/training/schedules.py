"""Learning-rate schedule: linear warm-up, then linear decay (the BERT recipe)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly to `peak_learning_rate` over `warmup_steps`, then falls
    linearly to `end_learning_rate` at `total_steps` and stays there.

    Step `s` (0-based, the optimizer's `iterations`) of the warm-up uses
    `peak * (s + 1) / warmup_steps`, so the first update is not wasted on a
    zero learning rate.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        end_learning_rate: float = 0.0,
        name: str = "warmup_linear_decay",
    ):
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, end = self.peak_learning_rate, self.end_learning_rate
        warm = peak * (step + 1.0) / float(max(self.warmup_steps, 1))
        frac = (step - self.warmup_steps) / float(max(self.total_steps - self.warmup_steps, 1))
        decay = peak + (end - peak) * ops.minimum(ops.maximum(frac, 0.0), 1.0)
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }
