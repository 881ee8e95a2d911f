"""Data: readers, label vocabulary, splits, length statistics, registry, tf.data pipeline.

`keras_bert_ft.data.pipeline` imports TensorFlow; it is loaded on first use
so that reading and inspecting data stays light.
"""

from importlib import import_module

from keras_bert_ft.data import datasets  # noqa: F401  (registers the built-in data sets)
from keras_bert_ft.data.labels import LabelVocabulary
from keras_bert_ft.data.readers import (
    TextDataset,
    read_csv,
    read_dataframe,
    read_file,
    read_jsonl,
    read_tsv,
)
from keras_bert_ft.data.registry import (
    DATASETS,
    DatasetUnavailableError,
    list_datasets,
    load_dataset,
)
from keras_bert_ft.data.splits import stratified_split
from keras_bert_ft.data.stats import LengthStats, length_statistics, suggest_max_length
from keras_bert_ft.errors import DataError

_PIPELINE = (
    "EncodedTexts",
    "encode_texts",
    "make_tf_dataset",
    "make_dataset",
    "dataset_from",
    "compute_class_weight",
)

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetUnavailableError",
    "LabelVocabulary",
    "LengthStats",
    "TextDataset",
    "length_statistics",
    "list_datasets",
    "load_dataset",
    "read_csv",
    "read_dataframe",
    "read_file",
    "read_jsonl",
    "read_tsv",
    "stratified_split",
    "suggest_max_length",
    *_PIPELINE,
]


def __getattr__(name: str):
    if name in _PIPELINE:
        return getattr(import_module("keras_bert_ft.data.pipeline"), name)
    raise AttributeError(f"module 'keras_bert_ft.data' has no attribute {name!r}")
