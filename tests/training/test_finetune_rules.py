"""Rules that decide what is trained or evaluated live in the library (the CLI only
calls them): the learning rate when the encoder is frozen, LoRA with a frozen encoder,
the validation hold-out and training subset, and putting evaluation labels in the
model's order before choosing the report that fits the model."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import texts_and_labels, tiny_encoder, tiny_tokenizer

from keras_bert_ft.data import LabelVocabulary, TextDataset, dataset_from
from keras_bert_ft.errors import DataError
from keras_bert_ft.training.evaluation import evaluate_model, in_label_order
from keras_bert_ft.training.finetune import (
    DEFAULT_LEARNING_RATE,
    FROZEN_LEARNING_RATE,
    FinetuneSettings,
    default_learning_rate,
    training_splits,
)

# --------------------------------------------------------------------------- learning rate


def test_the_learning_rate_follows_what_trains_unless_given():
    assert FinetuneSettings().learning_rate == DEFAULT_LEARNING_RATE
    assert FinetuneSettings(train_encoder_layers=2).learning_rate == DEFAULT_LEARNING_RATE
    assert FinetuneSettings(train_encoder_layers=0).learning_rate == FROZEN_LEARNING_RATE
    assert FinetuneSettings(lora_rank=4).learning_rate == FROZEN_LEARNING_RATE
    assert FinetuneSettings(train_encoder_layers=0, learning_rate=3e-4).learning_rate == 3e-4
    assert default_learning_rate(0) == FROZEN_LEARNING_RATE > DEFAULT_LEARNING_RATE
    # The resolved rate is what a run records (settings.json, the run identity).
    assert FinetuneSettings(lora_rank=4).to_dict()["learning_rate"] == FROZEN_LEARNING_RATE


def test_lora_does_not_go_with_a_choice_of_encoder_layers():
    with pytest.raises(ValueError, match="lora_rank=2 freezes the encoder"):
        FinetuneSettings(lora_rank=2, train_encoder_layers=0)


# --------------------------------------------------------------------------- training data


def _labelled(n_a: int, n_b: int) -> TextDataset:
    vocab = LabelVocabulary(("a", "b"))
    labels = np.array([0] * n_a + [1] * n_b, dtype=np.int32)
    return TextDataset([f"text {i}" for i in range(n_a + n_b)], None, labels, vocab, "t.csv")


def test_a_stratified_validation_split_is_held_out_only_without_validation_data():
    data = _labelled(80, 20)
    train, val = training_splits(data, validation_split=0.2, seed=1)
    assert (len(train), len(val)) == (80, 20)
    assert val.class_counts() == {"a": 16, "b": 4}  # the classes' proportions kept
    assert not set(train.texts) & set(val.texts)
    again = training_splits(data, validation_split=0.2, seed=1)[1]
    assert again.texts == val.texts  # the seed decides
    given = _labelled(3, 3)
    assert training_splits(data, given, validation_split=0.2)[1] is given
    assert training_splits(data, validation_split=0.0)[1] is None
    with pytest.raises(ValueError, match="validation_split"):
        training_splits(data, validation_split=1.0)


def test_training_uses_a_stratified_subset_of_max_train_examples():
    train, val = training_splits(_labelled(80, 20), validation_split=0.0,
                                 max_train_examples=10, seed=0)  # fmt: skip
    assert val is None and len(train) == 10
    assert train.class_counts() == {"a": 8, "b": 2}
    assert len(training_splits(_labelled(4, 4), validation_split=0.0,
                               max_train_examples=50)[0]) == 8  # fmt: skip


# --------------------------------------------------------------------------- evaluation


def test_evaluation_labels_are_put_in_the_models_order():
    data = TextDataset(["x", "y", "z"], None, np.array([0, 1, 0]), LabelVocabulary(("neg", "pos")),
                       "eval.csv")  # fmt: skip
    ordered = in_label_order(data, ["pos", "neg"])
    assert ordered.label_vocab.names == ("pos", "neg")
    assert ordered.labels.tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="unknown label 'pos'") as err:
        in_label_order(data, ["neg", "other"])
    assert "eval.csv" in str(err.value)


def test_multi_label_evaluation_labels_are_put_in_the_models_order():
    rows = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32)
    data = TextDataset(["x", "y"], None, rows, LabelVocabulary(("a", "b", "c")), "m.csv")
    ordered = in_label_order(data, ["c", "b", "a", "d"])
    assert ordered.labels.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]


def _tiny_classifier(label_names):
    from keras_bert_ft.models import BertClassifier

    return BertClassifier(tiny_encoder(), len(label_names), label_names=list(label_names),
                          tokenizer=tiny_tokenizer(), max_length=16)  # fmt: skip


def test_evaluate_model_reports_in_the_models_label_order():
    texts, labels = texts_and_labels(4)  # labels 1 = positive, 0 = negative
    texts, labels = texts[:6] + texts[6::2], labels[:6] + labels[6::2]  # 4 positive, 3 negative
    model = _tiny_classifier(["pos", "neg"])
    data = TextDataset(texts, None, np.array(labels), LabelVocabulary(("neg", "pos")), "e.csv")
    report = evaluate_model(model, data, batch_size=4)
    # The report counts each row under the model's name for its label: "pos" is the
    # model's class 0 although the data numbered it 1.
    features = dataset_from(TextDataset(texts, None, None, None), model.tokenizer,
                            max_length=16, batch_size=4)  # fmt: skip
    predicted = np.asarray(model.predict(features, verbose=0)).argmax(axis=1)
    in_model_order = np.where(np.array(labels) == 1, 0, 1)
    assert report.label_names == ["pos", "neg"]
    assert report.support.tolist() == [4, 3]
    assert report.accuracy == pytest.approx(np.mean(predicted == in_model_order))
    many = TextDataset(texts[:2], None, np.array([[1, 0], [0, 1]], dtype=np.float32),
                       LabelVocabulary(("neg", "pos")), "m.csv")  # fmt: skip
    with pytest.raises(DataError, match="predicts one label per row, but m.csv has several"):
        evaluate_model(model, many)
