"""Evaluating a trained classifier on labelled data it was not trained with.

The data's labels may come in another order than the model's (a data set read on
its own numbers its classes itself), so they are first put in the model's order;
then the report is the one that fits the model: multi-label with its thresholds,
or scores pooled per text for a model that reads long texts as windows.
"""

from __future__ import annotations

import numpy as np

from keras_bert_ft.data.labels import LabelVocabulary, decode_multi_hot, multi_hot
from keras_bert_ft.data.pipeline import dataset_from
from keras_bert_ft.data.readers import TextDataset
from keras_bert_ft.errors import DataError
from keras_bert_ft.reports import (
    ClassificationReport,
    MultiLabelReport,
    classification_report,
    multilabel_report,
)


def in_label_order(data: TextDataset | None, label_names) -> TextDataset | None:
    """`data` with its labels as indices into `label_names` (a model's classes).

    A label that is not in `label_names` is a `DataError` naming it and `data.source`.
    Multi-label rows may be left with no label the model knows of.
    """
    if data is None:
        return None
    vocab = LabelVocabulary(label_names)
    if data.is_multi_label:
        names = decode_multi_hot(data.label_vocab, data.labels)
        labels = multi_hot(vocab, names, source=data.source, allow_empty=True)
    else:
        labels = vocab.encode(data.label_vocab.decode(data.labels), source=data.source)
    return TextDataset(data.texts, data.pairs, labels, vocab, data.source)


def evaluate_model(model, data: TextDataset,
                   batch_size: int = 64) -> ClassificationReport | MultiLabelReport:
    """The report of the trained `model` (a `BertClassifier` with its label names and
    tokenizer) on the labelled `data`, whose labels are put in the model's order first.

    Raises `DataError` when `data` has one label per row and the model several (or the
    reverse), or has a label the model does not know.
    """
    if not model.label_names or model.tokenizer is None:
        raise DataError("the model has no label names or tokenizer saved; it cannot be "
                        "evaluated on texts")  # fmt: skip
    multi = model.head_type == "multi_label"
    if data.is_multi_label != multi:
        wanted = "several labels" if multi else "one label"
        has = "several labels" if data.is_multi_label else "one label"
        raise DataError(f"the model predicts {wanted} per row, but {data.source} has {has} "
                        "per row")  # fmt: skip
    data = in_label_order(data, model.label_names)
    if getattr(model, "window_stride", None) is not None:  # windows pooled per text
        scores = model.predict_texts(data.texts, batch_size=batch_size)
    else:
        features = dataset_from(
            TextDataset(data.texts, data.pairs, None, None), model.tokenizer,
            max_length=model.max_length, truncation=model.truncation,
            batch_size=batch_size, head_tokens=getattr(model, "head_tokens", None),
        )  # fmt: skip
        scores = model.predict(features, verbose=0)
    if multi:
        return multilabel_report(data.labels, scores, model.label_names,
                                 model.decision_thresholds())  # fmt: skip
    return classification_report(np.asarray(data.labels), scores, model.label_names)
