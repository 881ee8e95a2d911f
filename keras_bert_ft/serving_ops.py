"""Moved to keras_bert_ft.serving.op_check; this alias goes after one release."""

from keras_bert_ft._deprecation import alias_module

alias_module(__name__, "keras_bert_ft.serving.op_check")
