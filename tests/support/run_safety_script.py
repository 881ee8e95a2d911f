"""The small fine-tuning run of tests/training/test_run_safety.py, and a subprocess that
dies (SIGKILL) while writing its epoch-2 checkpoint. Not a test module.

usage: python run_safety_script.py MODEL_DIR OUT_DIR WHERE
  WHERE "manifest": killed after model.weights.h5 and state.json are written,
        before manifest.json (the folder is still the hidden temporary one);
  WHERE "pointer": killed after the folder was renamed into place, before the
        `latest` pointer names it.
  WHERE "mirrored": no kill; 1 epoch, then a rerun with 2 epochs, both under a
        MirroredStrategy on 2 logical CPUs; prints what the rerun resumed from.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
from tiny import texts_and_labels

from keras_bert_ft.data import LabelVocabulary, TextDataset
from keras_bert_ft.training.finetune import FinetuneSettings


def run_data(names=("neg", "pos"), change_text: bool = False) -> TextDataset:
    """32 labelled texts: 4 steps per epoch at batch size 8."""
    texts, labels = texts_and_labels(16)
    if change_text:
        texts[3] = texts[3] + " indeed"
    return TextDataset(texts, None, np.array(labels), LabelVocabulary(tuple(names)), "memory")


def run_settings(model_dir, out, **overrides) -> FinetuneSettings:
    base = dict(model=str(model_dir), epochs=2, batch_size=8, max_length=16, learning_rate=1e-3,
                warmup_ratio=0.0, strategy="default", output_dir=str(out), verbose=0)  # fmt: skip
    return FinetuneSettings(**{**base, **overrides})


def mirrored_resume(model_dir, out) -> None:
    import json

    import tensorflow as tf

    from keras_bert_ft.training import trainer
    from keras_bert_ft.training.finetune import finetune

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    # steps_per_execution > 1 fails under a strategy in Keras 3; finetune() runs 1 there.
    settings = run_settings(model_dir, out, epochs=1, strategy="mirrored", steps_per_execution=4)
    first = finetune(run_data(), settings=settings)
    saved = [v.numpy() for v in first.model.optimizer.variables]
    seen = {}
    real_restore = trainer.restore_checkpoint

    def restore(model, checkpoint):
        state = real_restore(model, checkpoint)
        restored = [v.numpy() for v in model.optimizer.variables]
        seen["checkpoint"] = str(checkpoint)
        seen["same_optimizer_state"] = all(map(np.array_equal, saved, restored))
        seen["replicas"] = tf.distribute.get_strategy().num_replicas_in_sync
        return state

    trainer.restore_checkpoint = restore
    second = finetune(run_data(), settings=run_settings(model_dir, out, strategy="mirrored"))
    print(json.dumps({**seen, "examples_seen": second.train_examples_seen}))


def _kill(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from keras_bert_ft.training import checkpointing
    from keras_bert_ft.training.finetune import finetune

    model_dir, out, where = sys.argv[1:4]
    if where == "mirrored":
        mirrored_resume(model_dir, out)
        raise SystemExit(0)
    if where == "manifest":
        real_manifest = checkpointing.write_manifest

        def write_manifest(directory):
            if os.path.basename(directory).startswith(".epoch-0002."):
                _kill()
            return real_manifest(directory)

        checkpointing.write_manifest = write_manifest
    elif where == "pointer":
        real_write = checkpointing.atomic_write

        def atomic_write(path, data, *args, **kwargs):
            if os.path.basename(path) == checkpointing.LATEST_FILE and "epoch-0002" in data:
                _kill()
            return real_write(path, data, *args, **kwargs)

        checkpointing.atomic_write = atomic_write
    else:
        raise SystemExit(f"unknown WHERE {where!r}")
    finetune(run_data(), settings=run_settings(model_dir, out), log=lambda *_: None)
    raise SystemExit("not killed")
