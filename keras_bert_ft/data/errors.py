"""Kept for old imports: `DataError` lives in `keras_bert_ft.errors`."""

from keras_bert_ft.errors import DataError

__all__ = ["DataError"]
