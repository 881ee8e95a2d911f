"""Distillation: the student starts from the teacher's layers and learns its soft targets."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.compression.distillation import (
    Distiller,
    feed_forward_units,
    make_student,
    soft_target_loss,
    truncate_encoder,
)
from keras_bert_ft.config import BertConfig
from keras_bert_ft.models import BertClassifier


@pytest.fixture(scope="module")
def teacher():
    tok = tiny_tokenizer()
    encoder = tiny_encoder(seed=1, num_layers=3, hidden_dropout=0.0, attention_dropout=0.0)
    model = BertClassifier(encoder, 2, pooling="mean", dropout=0.0, tokenizer=tok,
                           max_length=16, label_names=["neg", "pos"])  # fmt: skip
    # A random head is nearly uniform; a larger one gives confident, varied targets.
    kernel = model.get_layer("logits").kernel
    kernel.assign(kernel * 20.0)
    return model


def _features(model):
    texts, labels = texts_and_labels(8)
    return model.encode(texts), np.asarray(labels)


def test_truncated_encoder_copies_the_first_layers(teacher):
    x, _ = _features(teacher)
    student = truncate_encoder(teacher.encoder, 2)
    assert student.config.num_layers == 2
    want = teacher.encoder(x)["encoder_outputs"][1]
    np.testing.assert_allclose(student(x)["sequence_output"], want, atol=1e-5)


def test_pruning_units_that_add_nothing_keeps_the_outputs(teacher):
    """Units with a zero output row contribute nothing: pruning exactly them is lossless."""
    x, _ = _features(teacher)
    source = truncate_encoder(teacher.encoder, 2)
    width = source.config.intermediate_size
    dead = np.arange(1, width, 2)  # every other unit
    for i in range(2):
        w_out = source.weight_map()[f"encoder/layer_{i}/output/dense/kernel"]
        values = keras.ops.convert_to_numpy(w_out).copy()
        values[dead] = 0.0
        w_out.assign(values)
    pruned = truncate_encoder(source, 2, intermediate_size=width - len(dead))
    assert pruned.config.intermediate_size == width - len(dead)
    np.testing.assert_allclose(pruned(x)["sequence_output"], source(x)["sequence_output"],
                               atol=1e-5)  # fmt: skip
    kept = pruned.weight_map()["encoder/layer_1/intermediate/dense/kernel"]
    np.testing.assert_array_equal(
        kept, keras.ops.convert_to_numpy(
            source.weight_map()["encoder/layer_1/intermediate/dense/kernel"])[:, 0::2])


def test_feed_forward_units_ranks_by_norm_product():
    w_in = np.array([[1.0, 3.0, 0.1, 2.0]])  # (hidden 1, units 4)
    w_out = np.array([[1.0], [1.0], [100.0], [0.1]])  # (units 4, hidden 1)
    # products: 1, 3, 10, 0.2 -> the top two are units 1 and 2, returned in order
    np.testing.assert_array_equal(feed_forward_units(w_in, w_out, 2), [1, 2])


def test_pruned_student_needs_copied_layers_and_a_valid_width(teacher):
    with pytest.raises(ValueError, match="intermediate_size"):
        truncate_encoder(teacher.encoder, 2, intermediate_size=10**6)
    config = BertConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32)
    with pytest.raises(ValueError, match="give num_layers"):
        make_student(teacher, config=config, intermediate_size=8)
    student = make_student(teacher, num_layers=2, intermediate_size=8)
    x, _ = _features(teacher)
    assert student.encoder.config.intermediate_size == 8
    assert student.predict(x, verbose=0).shape == (16, 2)


def test_full_depth_student_equals_teacher(teacher):
    x, _ = _features(teacher)
    student = make_student(teacher, num_layers=3)
    np.testing.assert_allclose(student.predict(x, verbose=0), teacher.predict(x, verbose=0),
                               atol=1e-5)  # fmt: skip


def test_narrow_student_from_config(teacher):
    config = BertConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                        max_position_embeddings=64)  # fmt: skip
    student = make_student(teacher, config=config)
    x, _ = _features(teacher)
    assert student.predict(x, verbose=0).shape == (16, 2)
    with pytest.raises(ValueError, match="exactly one"):
        make_student(teacher)


def test_soft_target_loss_is_zero_for_equal_logits():
    z = np.array([[1.0, -2.0], [0.5, 0.5]], np.float32)
    np.testing.assert_allclose(soft_target_loss(z, z, 3.0), [0.0, 0.0], atol=1e-6)
    assert float(soft_target_loss(z, -z, 1.0)[0]) > 0


def test_distillation_lowers_the_students_loss_against_the_teacher(teacher):
    x, y = _features(teacher)
    keras.utils.set_random_seed(0)
    config = teacher.encoder.config.replace(num_layers=1, hidden_size=16, intermediate_size=32)
    student = make_student(teacher, config=config)  # random: far from the teacher at first
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.0)
    assert not any(w is t for w in distiller.trainable_weights for t in teacher.weights)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    before = distiller.distillation_loss(x)
    teacher_weights = [w.numpy().copy() for w in teacher.weights]
    history = distiller.fit(x, y, epochs=15, batch_size=8, verbose=0)
    after = distiller.distillation_loss(x)
    assert after < 0.5 * before, (before, after)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for w, old in zip(teacher.weights, teacher_weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), old)  # the teacher stays frozen


def test_distiller_config_round_trip(teacher):
    d = Distiller(make_student(teacher, num_layers=1), teacher, temperature=3.0, alpha=0.25)
    again = Distiller.from_config(d.get_config())
    assert (again.temperature, again.alpha) == (3.0, 0.25)
    assert again.student.encoder.config.num_layers == 1
    with pytest.raises(ValueError, match="temperature"):
        Distiller(d.student, teacher, temperature=0)


def test_distill_command(teacher, tmp_path, capsys):
    from tiny import write_csv

    from keras_bert_ft.cli import main

    teacher.save(tmp_path / "teacher.keras")
    csv = write_csv(tmp_path / "train.csv", n_per_class=8)
    out = tmp_path / "student"
    status = main(["distill", str(tmp_path / "teacher.keras"), "--train", str(csv),
                   "--validation-split", "0.25", "--student-layers", "1", "--epochs", "1",
                   "--student-intermediate-size", "16", "--batch-size", "8",
                   "--output-dir", str(out)])  # fmt: skip
    assert status == 0
    student = keras.models.load_model(out / "model.keras")
    assert student.encoder.config.num_layers == 1
    assert student.encoder.config.intermediate_size == 16
    assert student.label_names == ("neg", "pos")
    assert (out / "report" / "metrics.json").exists()
    assert "accuracy" in capsys.readouterr().out
