"""A plain `tf.distribute` training loop for MultiWorkerMirroredStrategy.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy with dict inputs
("Attempt to convert a value ({...: PerReplica}) ... to a Tensor", keras-team/keras
#20329 and #20585), so multi-worker training uses this loop: the same compiled
model, loss and optimizer, one `strategy.run` per step, Keras callbacks called
at epoch ends (checkpoints, TensorBoard, early stopping).

Gradient accumulation needs nothing here: the optimizer (`AdamW` with
`gradient_accumulation_steps`) keeps the sums and applies every Nth call.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def fit_custom_loop(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    epochs: int,
    strategy: tf.distribute.Strategy,
    initial_epoch: int = 0,
    callbacks=(),
    verbose: int = 1,
) -> keras.callbacks.History:
    """Train a compiled model on `(features, labels)` batches; returns a History."""
    dist = strategy.experimental_distribute_dataset(dataset)
    replicas = strategy.num_replicas_in_sync
    loss_fn = model.loss

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            scores = model(features, training=True)
            # The optimizer sums gradients over replicas: average them instead.
            loss = loss_fn(labels, scores) / replicas
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        model.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function
    def train_step(batch):
        losses = strategy.run(replica_step, args=batch[:2])
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList(list(callbacks) + [history], model=model)
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        total, steps = 0.0, 0
        for batch in dist:
            total += float(train_step(batch))
            steps += 1
        logs = {"loss": total / max(steps, 1)}
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}: {steps} steps, loss {logs['loss']:.4f}",
                  flush=True)  # fmt: skip
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    return history
