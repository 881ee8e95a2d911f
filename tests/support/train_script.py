"""Subprocess helper for the resume, mirrored and multi-worker tests (not a test module).

usage: python train_script.py MODE OUT_DIR [KILL_AT_STEP]
  MODE "resume": tiny classifier, 3 epochs x 4 steps, epoch checkpoints in OUT_DIR/ckpt;
       appends each finished global step to OUT_DIR/steps.txt; with KILL_AT_STEP the
       process SIGKILLs itself after that many global steps. Saves final weights.
  MODE "mirrored": the same model and data, 6 steps on 1 device and on a
       MirroredStrategy over 2 logical CPUs; saves both final weights. Then 2
       mirrored steps with layer-wise rates; writes how many weights moved.
"""

import os
import signal
import sys

import numpy as np

MODE, OUT = sys.argv[1], sys.argv[2]
KILL_AT = int(sys.argv[3]) if len(sys.argv) > 3 else None

if MODE == "mirrored":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )

import keras  # noqa: E402
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer  # noqa: E402

from keras_bert_ft.data import make_dataset  # noqa: E402
from keras_bert_ft.models import BertClassifier  # noqa: E402
from keras_bert_ft.training import (  # noqa: E402
    compile_classifier,
    fit_with_resume,
    get_strategy,
    make_callbacks,
)

tok = tiny_tokenizer()
texts, labels = texts_and_labels(16)
ds = make_dataset(texts, np.array(labels), tok, batch_size=8)  # fixed order: comparable runs


def build(strategy, sgd=False):
    with strategy.scope():
        model = BertClassifier(tiny_encoder(seed=0, hidden_dropout=0.0, attention_dropout=0.0),
                               2, dropout=0.0)  # fmt: skip
        if sgd:
            # Plain SGD keeps the comparison well conditioned: Adam's g/sqrt(v)
            # turns round-off in near-zero gradients into full-size steps.
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss=model.default_loss())
        else:
            compile_classifier(model, total_steps=12, learning_rate=1e-3)
    return model


class StepLog(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        with open(os.path.join(OUT, "steps.txt"), "a") as f:
            f.write(f"{step}\n")
            f.flush()
            os.fsync(f.fileno())
        if KILL_AT is not None and step >= KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


if MODE == "resume":
    model = build(get_strategy("default"))
    ckpt = os.path.join(OUT, "ckpt")
    fit_with_resume(model, ds, epochs=3, checkpoint_dir=ckpt, verbose=0,
                    callbacks=[StepLog(), *make_callbacks(checkpoint_dir=ckpt)])  # fmt: skip
    np.savez(os.path.join(OUT, "final.npz"), *[w.numpy() for w in model.weights])
elif MODE == "mirrored":
    results = {}
    for name in ("default", "mirrored"):
        strategy = get_strategy(name)
        model = build(strategy, sgd=True)
        model.fit(ds.take(6), epochs=1, verbose=0, shuffle=False)
        results[name] = [w.numpy() for w in model.weights]
        results[name + "_replicas"] = strategy.num_replicas_in_sync
    # Layer-wise rates (and their weight decay) inside the mirrored update path, in
    # a second mirrored run of this process (a new strategy object here used to fail).
    with get_strategy("mirrored").scope():
        model = BertClassifier(tiny_encoder(seed=0), 2)
        compile_classifier(model, total_steps=4, learning_rate=1e-3, warmup_ratio=0.0,
                           weight_decay=0.1, layer_decay=0.5)  # fmt: skip
    start = [w.numpy() for w in model.trainable_weights]
    model.fit(ds.take(2), epochs=1, verbose=0)
    after = [w.numpy() for w in model.trainable_weights]
    moved = sum(not np.array_equal(a, b) for a, b in zip(start, after, strict=True))
    with open(os.path.join(OUT, "layer_decay_moved.txt"), "w") as f:
        f.write(f"{moved} {len(start)}")
    np.savez(os.path.join(OUT, "single.npz"), *results["default"])
    np.savez(os.path.join(OUT, "mirrored.npz"), *results["mirrored"])
    with open(os.path.join(OUT, "replicas.txt"), "w") as f:
        f.write(str(results["mirrored_replicas"]))
