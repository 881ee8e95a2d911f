"""AdamW for BERT fine-tuning: warm-up/decay schedule, no weight decay on
LayerNorm and bias, gradient clipping, and layer-wise learning-rate decay."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras

from keras_bert_ft.training.schedules import WarmupLinearDecay

# Variable names (regex searches) that get no weight decay: LayerNorm scale and
# shift, and every bias, as in the original BERT optimizer.
NO_DECAY_NAMES = ("gamma", "beta", "bias")


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class AdamW(keras.optimizers.AdamW):
    """Keras AdamW plus per-variable learning-rate factors (layer-wise decay).

    `lr_multipliers` is a list of `(variable, factor)` pairs, e.g. from
    `BertClassifier.layerwise_lr_multipliers(0.9)`; each variable's update uses
    `learning_rate * factor`, and so does its decoupled weight decay (AdamW
    decays by `weight_decay * learning_rate`). The factors refer to live
    variables, so they are not part of `get_config`: set them again
    (`set_lr_multipliers`) after reloading. `no_decay_names` are given to
    `exclude_from_weight_decay`.
    """

    def __init__(
        self,
        *args,
        lr_multipliers: Iterable[tuple[keras.Variable, float]] | None = None,
        no_decay_names: Sequence[str] = NO_DECAY_NAMES,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.no_decay_names = tuple(no_decay_names)
        if self.no_decay_names:
            self.exclude_from_weight_decay(var_names=list(self.no_decay_names))
        self._lr_factors: dict = {}
        if lr_multipliers is not None:
            self.set_lr_multipliers(lr_multipliers)

    def set_lr_multipliers(self, pairs: Iterable[tuple[keras.Variable, float]]) -> None:
        """Set the per-variable learning-rate factors (1.0 for variables not listed)."""
        self._lr_factors = {self._var_key(v): float(f) for v, f in pairs if float(f) != 1.0}

    def _apply_weight_decay(self, variables):
        # Variables with a factor decay in `update_step`, at their own rate.
        super()._apply_weight_decay(
            [v for v in variables if self._var_key(v) not in self._lr_factors]
        )

    def update_step(self, gradient, variable, learning_rate):
        factor = self._lr_factors.get(self._var_key(variable))
        if factor is not None:
            learning_rate = learning_rate * factor
            if self.weight_decay is not None and self._use_weight_decay(variable):
                # Decoupled decay, before the Adam step as Keras does it: var *= 1 - wd * lr.
                rate = keras.ops.cast(self.weight_decay * learning_rate, variable.dtype)
                variable.assign_sub(variable * rate)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "no_decay_names": list(self.no_decay_names)}


def create_optimizer(
    learning_rate: float,
    total_steps: int,
    *,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    clipnorm: float | None = 1.0,
    end_learning_rate: float = 0.0,
    lr_multipliers: Iterable[tuple[keras.Variable, float]] | None = None,
    epsilon: float = 1e-6,
) -> AdamW:
    """AdamW with `WarmupLinearDecay` over `total_steps` (warm-up: `warmup_ratio` of them).

    `clipnorm` clips the global gradient norm (None: no clipping).
    """
    schedule = WarmupLinearDecay(
        learning_rate, total_steps, round(warmup_ratio * total_steps), end_learning_rate
    )
    return AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
        lr_multipliers=lr_multipliers,
    )
