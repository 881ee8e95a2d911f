"""BERT as Keras 3 layers, and the `BertEncoder` model built from them."""

from keras_bert_ft.layers.attention import MultiHeadSelfAttention
from keras_bert_ft.layers.embeddings import BertEmbeddings
from keras_bert_ft.layers.encoder import INPUT_NAMES, BertEncoder
from keras_bert_ft.layers.pooler import Pooler
from keras_bert_ft.layers.transformer import TransformerBlock

__all__ = [
    "INPUT_NAMES",
    "BertEmbeddings",
    "BertEncoder",
    "MultiHeadSelfAttention",
    "Pooler",
    "TransformerBlock",
]
