"""Gradient accumulation: N batches of B train like one batch of N * B (weights equal
within float round-off), the schedule counts applied updates, clipping sees the true
gradient, and the same holds under a 2-device MirroredStrategy."""

from __future__ import annotations

import json
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import PYTHON, SUPPORT, subprocess_env, texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.data import make_dataset
from keras_bert_ft.models import BertClassifier
from keras_bert_ft.training import compile_classifier, create_optimizer
from keras_bert_ft.training.optimizers import clip_by_global_norm, schedule_updates

SCRIPT = SUPPORT / "accumulation_script.py"
ROWS = 24  # 3 updates of 8 rows


def _train(batch_size: int, accumulate_steps: int, fused: bool = True):
    """The tiny classifier without dropout, one epoch over ROWS fixed-order rows with
    clipping, weight decay, warm-up and layer-wise rates; weights and the optimizer."""
    texts, labels = texts_and_labels(ROWS // 2)
    ds = make_dataset(texts, np.array(labels), tiny_tokenizer(), batch_size=batch_size)
    model = BertClassifier(tiny_encoder(seed=3, hidden_dropout=0.0, attention_dropout=0.0), 2,
                           dropout=0.0)  # fmt: skip
    compile_classifier(model, total_steps=ROWS // batch_size, learning_rate=1e-3,
                       warmup_ratio=0.34, weight_decay=0.1, clipnorm=0.5, layer_decay=0.8,
                       accumulate_steps=accumulate_steps)  # fmt: skip
    model.optimizer.fused = fused
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return [v.numpy() for v in model.trainable_variables], model.optimizer


@pytest.mark.parametrize("fused", [True, False])
def test_two_accumulated_batches_of_4_equal_one_batch_of_8(fused):
    accumulated, opt = _train(4, 2, fused)
    big, big_opt = _train(8, 1, fused)
    assert int(opt.iterations.numpy()) == int(big_opt.iterations.numpy()) == 3
    start = [v.numpy() for v in BertClassifier(tiny_encoder(seed=3), 2).trainable_variables]
    moved = sum(not np.allclose(a, b, atol=1e-5) for a, b in zip(start, big, strict=True))
    assert moved > len(start) // 2  # real updates, not a comparison of untouched weights
    for a, b in zip(accumulated, big, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Without accumulation, batches of 4 give other weights: the check above can fail.
    small, _ = _train(4, 1, fused)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(small, big, strict=True)) > 1e-4


def test_schedule_advances_once_per_applied_update():
    # 8 batches, 2 per update: a 4-update schedule with 2 warm-up updates.
    opt = create_optimizer(1.0, 8, warmup_ratio=0.5, weight_decay=0.0, clipnorm=None,
                           accumulate_steps=2)  # fmt: skip
    assert opt.learning_rate.numpy() == pytest.approx(0.5)  # warm-up step 0: peak * 1/2
    schedule = opt._learning_rate
    assert schedule.total_steps == 4 and schedule.warmup_steps == 2
    var = keras.Variable(np.ones(3, "float32"))
    seen = []
    for _ in range(8):
        seen.append(float(opt.learning_rate.numpy()))
        opt.apply_gradients([(np.full(3, 0.1, "float32"), var)])
    expected = [float(schedule(k)) for k in range(4)]
    assert seen == pytest.approx([lr for lr in expected for _ in range(2)])
    assert int(opt.iterations.numpy()) == 4
    assert schedule_updates(7, 2) == 3 and schedule_updates(1, 4) == 1


def test_no_update_until_the_last_batch_of_a_group():
    opt = create_optimizer(0.1, 6, warmup_ratio=0.0, weight_decay=0.0, clipnorm=None,
                           accumulate_steps=3)  # fmt: skip
    var = keras.Variable(np.ones(2, "float32"))
    for _ in range(2):
        opt.apply_gradients([(np.ones(2, "float32"), var)])
        np.testing.assert_array_equal(var.numpy(), [1.0, 1.0])
    opt.apply_gradients([(np.ones(2, "float32"), var)])
    assert np.all(var.numpy() < 1.0)
    np.testing.assert_array_equal(opt._accumulated_gradients[0].numpy(), [0.0, 0.0])


def test_clipping_measures_the_summed_embedding_gradient():
    # Token 0 seen twice: the gradient row is [3, 4] (norm 5), not two rows of norm 2.5.
    grads = tf.IndexedSlices(tf.constant([[1.5, 2.0], [1.5, 2.0]]), tf.constant([0, 0]),
                             tf.constant([2, 2]))  # fmt: skip
    clipped = clip_by_global_norm([grads], 1.0)[0]
    np.testing.assert_allclose(tf.convert_to_tensor(clipped).numpy(), [[0.6, 0.8], [0.0, 0.0]],
                               rtol=1e-6)


@pytest.mark.parametrize("clip_norm", [0.5, 1e6])
def test_sparse_global_clip_equals_keras_clip_of_the_dense_gradients(clip_norm):
    # The embedding gradient stays sparse through the clip (its table is never
    # squared or scaled whole); the result must be Keras' clip of the dense values.
    rng = np.random.default_rng(0)
    table = tf.IndexedSlices(tf.constant(rng.normal(size=(6, 4)), tf.float32),
                             tf.constant([3, 0, 3, 7, 0, 3]), tf.constant([9, 4]))
    dense = tf.constant(rng.normal(size=(4, 5)), tf.float32)
    clipped = clip_by_global_norm([table, dense, None], clip_norm)
    assert isinstance(clipped[0], tf.IndexedSlices) and clipped[2] is None
    assert sorted(clipped[0].indices.numpy().tolist()) == [0, 3, 7]  # each row once
    reference = keras.src.optimizers.base_optimizer.clip_by_global_norm(
        [tf.convert_to_tensor(table), dense], clip_norm)
    for got, want in zip(clipped[:2], reference, strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(), want.numpy(),
                                   rtol=1e-6, atol=1e-7)


def test_sparse_global_clip_of_a_non_finite_norm_is_nan_like_keras():
    table = tf.IndexedSlices(tf.constant([[np.inf, 1.0]]), tf.constant([1]), tf.constant([3, 2]))
    clipped = clip_by_global_norm([table, tf.ones((2,))], 1.0)
    assert np.all(np.isnan(clipped[1].numpy()))
    assert np.all(np.isnan(clipped[0].values.numpy()))


def test_accumulate_steps_must_be_positive():
    with pytest.raises(ValueError, match="accumulate_steps must be at least 1"):
        create_optimizer(1e-3, 10, accumulate_steps=0)


def test_mirrored_two_devices_with_accumulation_equals_one_big_batch(tmp_path):
    """2 replicas x global batch 8 x 2 accumulation steps == 1 device x batch 16."""
    proc = subprocess.run([PYTHON, str(SCRIPT), str(tmp_path)], cwd=SCRIPT.parent,
                          env=subprocess_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # replicas, applied updates, clip scale left to the update
    assert (tmp_path / "default.txt").read_text() == "1 2 1"
    assert (tmp_path / "mirrored.txt").read_text() == "2 2 0"
    single, mirrored = np.load(tmp_path / "default.npz"), np.load(tmp_path / "mirrored.npz")
    assert len(single.files) == len(mirrored.files) > 0
    for key in single.files:
        np.testing.assert_allclose(mirrored[key], single[key], rtol=1e-5, atol=1e-6)


def test_runs_recorded_before_accumulation_resume_as_one_step(tmp_path):
    from keras_bert_ft.training.runs import RUN_FORMAT, read_run

    record = {"format": RUN_FORMAT, "identity": {"training": {"batch_size": 32}}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert read_run(tmp_path)["training"] == {"batch_size": 32, "accumulate_steps": 1}


def test_custom_loop_accumulates_like_fit():
    """The multi-worker loop (`fit_custom_loop`) gets accumulation from the optimizer."""
    from keras_bert_ft.training.custom_loop import fit_custom_loop

    texts, labels = texts_and_labels(8)
    ds = make_dataset(texts, np.array(labels), tiny_tokenizer(), batch_size=4)
    results = []
    for loop in (False, True):
        model = BertClassifier(tiny_encoder(seed=1, hidden_dropout=0.0, attention_dropout=0.0),
                               2, dropout=0.0)  # fmt: skip
        compile_classifier(model, total_steps=4, learning_rate=1e-3, accumulate_steps=2)
        if loop:
            fit_custom_loop(model, ds, epochs=1, strategy=tf.distribute.get_strategy(),
                            verbose=0)  # fmt: skip
        else:
            model.fit(ds, epochs=1, verbose=0, shuffle=False)
        assert int(model.optimizer.iterations.numpy()) == 2
        results.append([v.numpy() for v in model.trainable_variables])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
