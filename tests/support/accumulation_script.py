"""Subprocess helper for test_accumulation (not a test module): needs 2 logical CPU
devices, which must be set before TensorFlow starts.

usage: python accumulation_script.py OUT_DIR
Trains the tiny classifier (no dropout, AdamW with layer-wise rates) two ways from the
same start: on one device with batches of 16, and on a MirroredStrategy over 2 logical
CPUs with global batches of 8 and 2 accumulation steps (the same 16 rows per update).
Saves both final weights, the applied-update counts and whether a clip's scale would be
left to the one-pass update.
"""

import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import numpy as np  # noqa: E402
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer  # noqa: E402

from keras_bert_ft.data import make_dataset  # noqa: E402
from keras_bert_ft.models import BertClassifier  # noqa: E402
from keras_bert_ft.training import compile_classifier, get_strategy  # noqa: E402

OUT = sys.argv[1]
texts, labels = texts_and_labels(16)  # 32 rows: 2 updates of 16


def train(strategy_name: str, batch_size: int, accumulate_steps: int):
    strategy = get_strategy(strategy_name)
    ds = make_dataset(texts, np.array(labels), tiny_tokenizer(), batch_size=batch_size)
    with strategy.scope():
        model = BertClassifier(tiny_encoder(seed=0, hidden_dropout=0.0, attention_dropout=0.0),
                               2, dropout=0.0)  # fmt: skip
        compile_classifier(model, total_steps=len(texts) // batch_size, learning_rate=1e-3,
                           warmup_ratio=0.5, clipnorm=None, layer_decay=0.8,
                           accumulate_steps=accumulate_steps)  # fmt: skip
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
    np.savez(os.path.join(OUT, f"{strategy_name}.npz"),
             *[v.numpy() for v in model.trainable_variables])  # fmt: skip
    with open(os.path.join(OUT, f"{strategy_name}.txt"), "w") as f:
        # Whether a global-norm clip's scale would wait for the one-pass update: only
        # with one replica (Keras clips each replica's gradients before the sum).
        with strategy.scope():
            defers = int(model.optimizer._defers_clip_scale())
        f.write(f"{strategy.num_replicas_in_sync} {int(model.optimizer.iterations.numpy())} "
                f"{defers}")


train("default", 16, 1)
train("mirrored", 8, 2)
