"""Continued pretraining: masked-LM and next-sentence heads over `BertEncoder`
(`heads`, `model`), masking in C++ (`masking`), text packed into sequences or
sentence pairs (`data`), and the `pretrain` run (`run`, `cli`).

Importing this package does not import TensorFlow-heavy modules beyond Keras;
`BertPretrainer` is imported from `keras_bert_ft.pretraining.model`.
"""

from keras_bert_ft.pretraining.masking import (
    MaskingError,
    MaskingOptions,
    MaskingVocab,
    mask_tokens,
    mask_tokens_op,
)

__all__ = ["MaskingError", "MaskingOptions", "MaskingVocab", "mask_tokens", "mask_tokens_op"]
