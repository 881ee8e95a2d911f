"""AdamW for BERT fine-tuning: warm-up/decay schedule, no weight decay on
LayerNorm and bias, gradient clipping, and layer-wise learning-rate decay."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import tensorflow as tf

from keras_bert_ft.cpu_features import refuse_frozen_weights
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

    `fused` (default) applies each variable's update in one kernel, with the
    step's scalars computed once. Where the package's op library runs (float32
    variables on the CPU, outside XLA) that is `KbfApplyAdamW`: decoupled decay
    (`var -= weight_decay * lr * var`), the clip's scale and Adam (Keras'
    formula) in one pass over the variable and its moments, an embedding's
    sparse gradient applied by row without densifying it, and the global norm
    summed by one `KbfSumOfSquares`. Elsewhere it is TensorFlow's
    `ResourceApplyGradientDescent` (the decay) then `ResourceApplyAdam`.
    Keras' per-variable ops (about ten small ops per variable, the schedule
    re-evaluated for every decayed variable) dominated the update. `fused=False`
    keeps Keras' own update (the reference). The optimizer variables
    (iterations, momentums, velocities) are the same on every path.

    `gradient_accumulation_steps` N (Keras' argument, Keras' accumulator
    variables) sums the gradients of N batches and applies their mean once: N
    batches of B train like one batch of N * B. The accumulation itself is done
    here, not by Keras, so that it runs under tf.distribute strategies (see
    `_backend_apply_gradients`); and the schedule reads `iterations`, the count
    of applied updates, where Keras reads its batch counter, so warm-up and
    decay are measured in updates whatever N is. Clipping applies to the mean
    gradient (summed over replicas first), and layer-wise factors and weight
    decay to the update.
    """

    def __init__(
        self,
        *args,
        lr_multipliers: Iterable[tuple[keras.Variable, float]] | None = None,
        no_decay_names: Sequence[str] = NO_DECAY_NAMES,
        fused: bool = True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.no_decay_names = tuple(no_decay_names)
        if self.no_decay_names:
            self.exclude_from_weight_decay(var_names=list(self.no_decay_names))
        self.fused = bool(fused)
        self._lr_factors: dict = {}
        self._step_scalars: dict | None = None
        self._grad_scale = None  # a clip's scale, left to the update (one replica)
        if lr_multipliers is not None:
            self.set_lr_multipliers(lr_multipliers)

    def set_lr_multipliers(self, pairs: Iterable[tuple[keras.Variable, float]]) -> None:
        """Set the per-variable learning-rate factors (1.0 for variables not listed)."""
        self._lr_factors = {self._var_key(v): float(f) for v, f in pairs if float(f) != 1.0}

    def _get_current_learning_rate(self):
        # Keras evaluates a schedule at `_iterations`, which with gradient
        # accumulation counts batches; `iterations` counts applied updates (the
        # same number without accumulation).
        if isinstance(self._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._learning_rate(self.iterations)
        return super()._get_current_learning_rate()

    def _clip_gradients(self, grads):
        # An embedding's gradient comes as IndexedSlices with one row per token
        # occurrence; Keras' norms sum the squares of those rows, not of the summed
        # gradient, so a token seen twice counts wrongly. The clip must see the true
        # gradient, the same as after gradient accumulation (dense accumulators).
        if self.global_clipnorm and not (self.clipnorm or self.clipvalue):
            if self._defers_clip_scale():
                # The one-pass update multiplies by the scale as it reads each gradient.
                grads, self._grad_scale = global_norm_clip_scale(grads, self.global_clipnorm)
                return grads
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                     for g in grads]  # fmt: skip
        return super()._clip_gradients(grads)

    def _uses_fused_update(self) -> bool:
        return self.fused and not self.amsgrad

    def _defers_clip_scale(self) -> bool:
        # Keras clips each replica's gradients before they are summed, so the scale can
        # wait for the update only where there is one replica.
        return (self._uses_fused_update() and one_pass_library() is not None
                and tf.distribute.get_strategy().num_replicas_in_sync == 1)

    def _apply_weight_decay(self, variables):
        if self._uses_fused_update():
            return  # decayed in update_step, fused with the variable's update
        # Variables with a factor decay in `update_step`, at their own rate.
        super()._apply_weight_decay(
            [v for v in variables if self._var_key(v) not in self._lr_factors]
        )

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self._uses_fused_update():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        self._step_scalars = self._shared_step_scalars(learning_rate)
        try:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scalars = None
            self._grad_scale = None

    def _shared_step_scalars(self, learning_rate) -> dict:
        # The scalars every variable's fused update shares, once per step (cast for
        # variables that are not float32).
        lr = tf.cast(learning_rate, tf.float32)
        step = tf.cast(self.iterations + 1, tf.float32)
        return {
            "lr": lr,
            "beta_1_power": tf.pow(tf.constant(self.beta_1, tf.float32), step),
            "beta_2_power": tf.pow(tf.constant(self.beta_2, tf.float32), step),
            "decay": (None if self.weight_decay is None
                      else lr * tf.constant(self.weight_decay, tf.float32)),
            "beta_1": tf.constant(self.beta_1, tf.float32),
            "beta_2": tf.constant(self.beta_2, tf.float32),
            "epsilon": tf.constant(self.epsilon, tf.float32),
        }

    def _backend_apply_gradients(self, grads, trainable_variables):
        if not self.gradient_accumulation_steps:
            return super()._backend_apply_gradients(grads, trainable_variables)
        # Keras' own accumulation puts the update, with its cross-replica sync points,
        # inside a `cond`, which tf.distribute cannot run in `fit` ("merge_call called
        # while defining a new graph"). Here every sync point runs on every batch, and
        # the condition sits inside each variable's update function instead.
        steps = self.gradient_accumulation_steps
        is_update = tf.equal((self._iterations + 1) % steps, 0)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]  # fmt: skip
        grads = [g for g, _ in self._all_reduce_sum_gradients(
            list(zip(grads, trainable_variables, strict=True)))]  # fmt: skip
        accumulators = [_tf_variable(self._accumulated_gradients[self._get_variable_index(v)])
                        for v in trainable_variables]  # fmt: skip
        totals = [a.read_value() + tf.cast(g, a.dtype)
                  for a, g in zip(accumulators, grads, strict=True)]  # fmt: skip
        # Clipping sees the mean over the N batches (and over replicas): the gradient
        # of one batch of N * B.
        means = self._clip_gradients([t / steps for t in totals])
        learning_rate = self.learning_rate
        keep = tf.cast(tf.logical_not(is_update), tf.float32)
        variables = [_tf_variable(v) for v in trainable_variables]

        def update_if_due(var, grad):
            def update():
                self._decay_and_update(grad, var, learning_rate)
                return tf.constant(True)

            return tf.cond(is_update, update, lambda: tf.constant(False))

        def apply_everywhere(distribution, means, totals):
            for var, grad in zip(variables, means, strict=True):
                distribution.extended.update(var, update_if_due, args=(grad,), group=False)
            for acc, total in zip(accumulators, totals, strict=True):
                distribution.extended.update(
                    acc, lambda a, t: a.assign(t * tf.cast(keep, a.dtype)), args=(total,),
                    group=False)  # fmt: skip

        if self._uses_fused_update():
            self._step_scalars = self._shared_step_scalars(learning_rate)
        try:
            tf.__internal__.distribute.interim.maybe_merge_call(
                apply_everywhere, self._distribution_strategy, means, totals)
        finally:
            self._step_scalars = None
            self._grad_scale = None

    def _decay_and_update(self, gradient, variable, learning_rate) -> None:
        # One variable's applied update under accumulation. The fused update and
        # variables with a factor decay inside `update_step`; the rest as Keras'
        # `_apply_weight_decay` does it.
        unfused_plain = (self._step_scalars is None
                         and self._var_key(variable) not in self._lr_factors)  # fmt: skip
        if unfused_plain and self.weight_decay and self._use_weight_decay(variable):
            lr = tf.cast(learning_rate, variable.dtype)
            variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * lr)
        self.update_step(gradient, variable, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        factor = self._lr_factors.get(self._var_key(variable))
        if self._step_scalars is not None:
            return self._fused_update(gradient, variable, factor)
        if factor is not None:
            learning_rate = learning_rate * factor
            if self.weight_decay is not None and self._use_weight_decay(variable):
                # Decoupled decay, before the Adam step as Keras does it: var *= 1 - wd * lr.
                rate = keras.ops.cast(self.weight_decay * learning_rate, variable.dtype)
                variable.assign_sub(variable * rate)
        return super().update_step(gradient, variable, learning_rate)

    def _fused_update(self, gradient, variable, factor: float | None) -> None:
        index = self._get_variable_index(variable)
        var = _tf_variable(variable)
        scalars = {k: v if v is None or v.dtype == var.dtype else tf.cast(v, var.dtype)
                   for k, v in self._step_scalars.items()}
        lr, decay = scalars["lr"], scalars["decay"]
        if factor is not None:
            lr = lr * factor
            decay = None if decay is None else decay * factor
        decays = decay is not None and self._use_weight_decay(variable)
        library = one_pass_library() if var.dtype == tf.float32 else None
        if library is not None:
            # Decay, the Adam step and a sparse gradient's rows in one pass (csrc/core/adamw.cc).
            scale = self._grad_scale if self._grad_scale is not None else tf.ones([])
            step = {"lr": lr, "beta1_power": scalars["beta_1_power"],
                    "beta2_power": scalars["beta_2_power"],
                    "decay": decay if decays else tf.zeros([], tf.float32),
                    "grad_scale": scale, "beta1": self.beta_1, "beta2": self.beta_2,
                    "epsilon": self.epsilon}
            handles = (var.handle, _tf_variable(self._momentums[index]).handle,
                       _tf_variable(self._velocities[index]).handle)
            if isinstance(gradient, tf.IndexedSlices):
                library.kbf_sparse_apply_adam_w(*handles, gradient.indices,
                                                tf.cast(gradient.values, tf.float32), **step)
            else:
                library.kbf_apply_adam_w(*handles, tf.cast(gradient, tf.float32), **step)
            return
        gradient = scaled_gradient(gradient, self._grad_scale)
        if decays:
            # var -= (wd * lr) * var, before the Adam step as Keras orders it.
            tf.raw_ops.ResourceApplyGradientDescent(
                var=var.handle, alpha=decay, delta=var.read_value())
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)  # Keras' dense Adam does the same
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle,
            m=_tf_variable(self._momentums[index]).handle,
            v=_tf_variable(self._velocities[index]).handle,
            beta1_power=scalars["beta_1_power"], beta2_power=scalars["beta_2_power"],
            lr=lr, beta1=scalars["beta_1"], beta2=scalars["beta_2"],
            epsilon=scalars["epsilon"], grad=tf.cast(gradient, var.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "no_decay_names": list(self.no_decay_names),
                "fused": self.fused}


def summed_rows(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """`gradient` with each row index once (repeated rows summed): the same dense value."""
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


def clip_by_global_norm(grads: list, clip_norm: float) -> list:
    """Keras' global-norm clip (`global_clipnorm`), with embedding gradients kept sparse.

    The norm of an `IndexedSlices` gradient is taken over its summed rows, which
    equals the norm of the dense gradient; the dense table (millions of zeros
    for a vocabulary) is never squared, summed or scaled. As in Keras, a
    non-finite norm makes every gradient NaN.
    """
    grads, scale = global_norm_clip_scale(grads, clip_norm)
    return [scaled_gradient(g, scale) for g in grads]


def global_norm_clip_scale(grads: list, clip_norm: float) -> tuple[list, tf.Tensor]:
    """`grads` (sparse ones with their repeated rows summed) and the factor that clips
    them to a global norm of `clip_norm`: Keras' `clip_norm / max(norm, clip_norm)`,
    NaN when the norm is not finite."""
    grads = [summed_rows(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
    norm = tf.sqrt(sum_of_squares(values))
    limit = tf.constant(clip_norm, tf.float32)
    # NaN through `norm - norm`, as Keras.
    return grads, limit * tf.minimum(1.0 / norm, 1.0 / limit) + (norm - norm)


def sum_of_squares(values: list) -> tf.Tensor:
    """The sum of the squares of every element of `values`, in float32: one op from the
    op library where it runs (accumulated in double), else TensorFlow's ops."""
    library = one_pass_library()
    if library is not None and values and all(v.dtype == tf.float32 for v in values):
        return library.kbf_sum_of_squares(values)
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in values])


def scaled_gradient(gradient, scale: tf.Tensor | None):
    """`gradient` (dense, `IndexedSlices` or None) times `scale` (None: unchanged)."""
    if gradient is None or scale is None:
        return gradient
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * tf.cast(scale, gradient.values.dtype),
                                gradient.indices, gradient.dense_shape)
    return gradient * tf.cast(scale, gradient.dtype)


def one_pass_library():
    """The op library for `KbfApplyAdamW` where it can run this update (it loads, the
    function is not compiled by XLA, and no GPU or TPU holds the variables), else None."""
    from keras_bert_ft.layers.fused import accelerator_visible, fused_library, in_xla_function

    library = fused_library()
    if library is None or in_xla_function() or accelerator_visible():
        return None
    return library


def _tf_variable(variable):
    """The `tf.Variable` behind a Keras variable (the per-device one inside a
    distribution strategy's update)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


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
    accumulate_steps: int = 1,
) -> AdamW:
    """AdamW with `WarmupLinearDecay` over the updates of `total_steps` training batches
    (warm-up: `warmup_ratio` of them).

    `clipnorm` clips the global gradient norm (None: no clipping).
    `accumulate_steps` N > 1 applies one update per N batches, with their mean
    gradient: the schedule then spans `total_steps // N` updates.
    Refuses to build one in a process set up to serve (TF_ONEDNN_ASSUME_FROZEN_WEIGHTS).
    """
    refuse_frozen_weights("Training")
    updates = schedule_updates(total_steps, accumulate_steps)
    schedule = WarmupLinearDecay(
        learning_rate, updates, round(warmup_ratio * updates), end_learning_rate
    )
    return AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
        lr_multipliers=lr_multipliers,
        gradient_accumulation_steps=accumulate_steps if accumulate_steps > 1 else None,
    )


def schedule_updates(total_steps: int, accumulate_steps: int = 1) -> int:
    """How many updates `total_steps` batches apply with `accumulate_steps` per update
    (at least 1; batches left over at the end stay in the accumulators)."""
    if accumulate_steps < 1:
        raise ValueError(f"accumulate_steps must be at least 1, got {accumulate_steps}")
    return max(1, int(total_steps) // int(accumulate_steps))
