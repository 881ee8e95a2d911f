"""Tokenizers: one set of options, several front-ends.

- `options`: `TokenizerOptions` and `PackingOptions`, the only place options are checked.
- `wordpiece`: `WordPieceTokenizer`, the host tokenizer over the C++ core (no TensorFlow).
- `op`: the `KbfWordPieceEncode` TensorFlow op (`wordpiece_encode`, `CustomOpTokenizer`).
- `graph`: `ServingTokenizer`, the same ids from core TF and tensorflow-text ops.
- `preprocessor`: `TextPreprocessor`, a classifier's tokenizer plus its packing.

Importing this package does not import TensorFlow: `op` and `graph` load on first use.
"""

from keras_bert_ft._lazy import lazy_getattr
from keras_bert_ft.tokenizers.options import (
    DEFAULT_SPECIAL_TOKENS,
    PADDING_MODES,
    TRUNCATION_STRATEGIES,
    PackingOptions,
    TokenizerOptionError,
    TokenizerOptions,
    TokenizerOptionTypeError,
)
from keras_bert_ft.tokenizers.preprocessor import TextPreprocessor
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

# Names whose modules import TensorFlow, loaded when first asked for.
_LAZY = {
    "CustomOpTokenizer": "keras_bert_ft.tokenizers.op",
    "wordpiece_encode": "keras_bert_ft.tokenizers.op",
    "ServingTokenizer": "keras_bert_ft.tokenizers.graph",
    "pack_windows": "keras_bert_ft.tokenizers.graph",
}

__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "PADDING_MODES",
    "TRUNCATION_STRATEGIES",
    "PackingOptions",
    "TextPreprocessor",
    "TokenizerOptionError",
    "TokenizerOptionTypeError",
    "TokenizerOptions",
    "WordPieceTokenizer",
    *_LAZY,
]


__getattr__ = lazy_getattr(__name__, _LAZY)
