"""The C++ WordPiece core as a TensorFlow op (`KbfWordPieceEncode`).

Importing this module loads `_wordpiece_op.so` with `tf.load_op_library`. The
library is built by setup.py against one TensorFlow version (recorded in
`_wordpiece_op_build.json` beside it); loading it into another raises
`OpLibraryError` naming both, instead of an obscure symbol error.

`wordpiece_encode` runs the op. It tokenizes, truncates, packs and pads like
`WordPieceTokenizer.encode_batch`, because both call the same C++ function.
Its options are checked by `TokenizerOptions` and `PackingOptions`, as every
tokenizer's are; `encode_with_op` takes those objects directly.
The vocabulary is the path of `vocab.txt`, a string tensor, so that a
SavedModel can feed it from a `tf.saved_model.Asset` and carry the file; the
kernel builds each (path, options) tokenizer once per process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import tensorflow as tf

from keras_bert_ft import infra
from keras_bert_ft.errors import OpLibraryError
from keras_bert_ft.tokenizers.options import (
    DEFAULT_SPECIAL_TOKENS,
    PackingOptions,
    TokenizerOptions,
)
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

# The library is built into the package's top folder (setup.py), next to _wordpiece.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
OP_LIBRARY_PATH = _PACKAGE_DIR / "_wordpiece_op.so"
BUILD_INFO_PATH = _PACKAGE_DIR / "_wordpiece_op_build.json"
FEATURES = ("input_word_ids", "input_mask", "input_type_ids")


def built_with_tensorflow() -> str | None:
    """The TensorFlow version the op library was compiled against, if recorded."""
    try:
        return json.loads(BUILD_INFO_PATH.read_text())["tensorflow"]
    except (OSError, ValueError, KeyError):
        return None


def load_op_library(path: str | os.PathLike = OP_LIBRARY_PATH) -> ModuleType:
    """Load the op library, checking that it was built for the running TensorFlow."""
    path = Path(path)
    built = built_with_tensorflow() if path == OP_LIBRARY_PATH else None
    rebuild = ("rebuild it with `pip install --no-build-isolation .` (or `make build`) "
               "in an environment with the TensorFlow you run")
    if not path.exists():
        raise OpLibraryError(
            f"the TensorFlow op library {path} was not built (TensorFlow was not importable "
            f"when keras_bert_ft was installed); {rebuild}")
    if built is not None and built != tf.__version__:
        raise OpLibraryError(
            f"{path.name} was built for TensorFlow {built}, but TensorFlow {tf.__version__} is "
            f"running; custom ops are tied to the TensorFlow they were compiled against: {rebuild}")
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.NotFoundError, OSError) as err:
        raise OpLibraryError(
            f"cannot load {path} (built for TensorFlow {built or 'an unknown version'}, running "
            f"{tf.__version__}): {err}; {rebuild}") from err


_library = load_op_library()


def op_options(tokenizer: WordPieceTokenizer) -> dict:
    """The op's tokenizer options that reproduce `tokenizer`'s (casing, specials, ...)."""
    return tokenizer.options.op_attrs()


def vocab_cache_dir() -> Path:
    """Where vocabularies without a file of their own are written: $KBF_CACHE_DIR/vocab, ..."""
    return infra.cache_dir("vocab")


def materialize_vocab(tokens: Sequence[str] | bytes) -> str:
    """A vocab.txt path holding `tokens` (or these file bytes), named by content hash.

    The op reads its vocabulary from a file; this gives one to a vocabulary
    that came as a list or out of a `.keras` archive. Same contents, same path.
    """
    if isinstance(tokens, bytes):
        data = tokens
    else:
        if any("\n" in t or t != t.rstrip() for t in tokens):
            raise ValueError("a token with a newline or trailing whitespace cannot be "
                             "written as a vocab.txt line")
        data = "".join(t + "\n" for t in tokens).encode("utf-8")
    path = vocab_cache_dir() / f"{hashlib.sha256(data).hexdigest()[:32]}.txt"
    if not path.exists():
        infra.atomic_write(path, data)
    return str(path)


def vocab_file_of(tokenizer: WordPieceTokenizer) -> str:
    """A vocab.txt path for `tokenizer`: its own file, else one written from its tokens."""
    if tokenizer.vocab_file is not None:
        return str(Path(tokenizer.vocab_file).resolve())
    return materialize_vocab(tokenizer.get_vocab())


def wordpiece_encode(
    texts: tf.Tensor | Sequence[str],
    pairs: tf.Tensor | Sequence[str] | None = None,
    *,
    vocab_file: str | os.PathLike | tf.Tensor,
    max_length: int = 128,
    truncation: str = "longest_first",
    padding: str = "longest",
    pad_to_multiple_of: int | None = None,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    max_input_chars_per_word: int = 100,
    unk_token: str = "[UNK]",
    continuation_prefix: str = "##",
    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
    num_threads: int = 1,
    head_tokens: int | None = None,
) -> dict[str, tf.Tensor]:
    """Tokenize, truncate, pack and pad a batch in the graph, as `encode_batch` does.

    Args:
        texts: 1-D string tensor (a scalar gives 1-D outputs for one example).
        pairs: second segments, shaped like `texts`, or None.
        vocab_file: path of vocab.txt: a str, or a string tensor such as
            `tf.saved_model.Asset(...).asset_path`.
        max_length, truncation, padding, pad_to_multiple_of: as `encode_batch`.
        lowercase, strip_accents, ...: as `WordPieceTokenizer` (see `op_options`).
            All options are checked by `TokenizerOptions` and `PackingOptions`.
        num_threads: threads inside one call; under `tf.data` parallel `map`
            the parallelism comes from the map and 1 is right.
        head_tokens: the head kept by truncation "head_tail" (single texts
            only); None: a quarter of `max_length - 2`.

    Returns:
        int32 `input_word_ids`, `input_mask`, `input_type_ids`, `[batch, seq]`.
    """
    options = TokenizerOptions(
        lowercase=lowercase, strip_accents=strip_accents,
        max_input_chars_per_word=max_input_chars_per_word, unk_token=unk_token,
        continuation_prefix=continuation_prefix, special_tokens=special_tokens)
    packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of, head_tokens)
    return encode_with_op(texts, pairs, vocab_file=vocab_file, options=options,
                          packing=packing, num_threads=num_threads)


def encode_with_op(
    texts: tf.Tensor | Sequence[str],
    pairs: tf.Tensor | Sequence[str] | None = None,
    *,
    vocab_file: str | os.PathLike | tf.Tensor,
    options: TokenizerOptions,
    packing: PackingOptions,
    num_threads: int = 1,
) -> dict[str, tf.Tensor]:
    """`wordpiece_encode` with its settings as checked option objects (no windows)."""
    if packing.windows:
        raise ValueError("the op truncates: windows (a stride) are built by the host "
                         "tokenizer or ServingTokenizer.windows")
    if pairs is not None:
        packing.check_pairs()
    texts = tf.convert_to_tensor(texts, tf.string)
    single = texts.shape.rank == 0
    if single:
        texts = texts[tf.newaxis]
    if pairs is None:
        pair_input = tf.constant([], tf.string)
    else:
        pair_input = tf.convert_to_tensor(pairs, tf.string)
        pair_input = pair_input[tf.newaxis] if single else pair_input
    if isinstance(vocab_file, os.PathLike):
        vocab_file = os.fspath(vocab_file)
    outputs = _library.kbf_word_piece_encode(
        texts, pair_input, vocab_file,
        has_pairs=pairs is not None,
        max_length=packing.max_length,
        truncation=packing.truncation,
        head_tokens=packing.head,
        pad_to_max_length=packing.pad_to_max_length,
        pad_to_multiple_of=packing.multiple,
        num_threads=int(num_threads),
        **options.op_attrs(),
    )
    result = dict(zip(FEATURES, outputs, strict=True))
    if single:
        result = {name: tensor[0] for name, tensor in result.items()}
    return result


class CustomOpTokenizer(tf.Module):
    """In-graph tokenizer for SavedModels, on the custom op; carries vocab.txt as an asset.

    Same constructor and call as `graph.ServingTokenizer` (the
    tensorflow-text one), so an exporter can use either. A SavedModel using it
    needs the op library loaded (`tf.load_op_library`) where it is served.

    Args:
        tokenizer: the host-side tokenizer whose vocabulary and settings to use.
        max_length, truncation, padding, pad_to_multiple_of, head_tokens: as
            `encode_batch`.
        num_threads: threads inside one call (a serving request batch).
        vocab_file: the file to carry as the asset, when not the tokenizer's
            own (e.g. a copy the exporter writes); it must hold the same tokens.
    """

    def __init__(
        self,
        tokenizer: WordPieceTokenizer,
        max_length: int = 128,
        truncation: str = "longest_first",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        num_threads: int = 1,
        name: str = "custom_op_tokenizer",
        vocab_file: str | os.PathLike | None = None,
        head_tokens: int | None = None,
    ) -> None:
        super().__init__(name=name)
        self.packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of,
                                      head_tokens)
        path = vocab_file_of(tokenizer) if vocab_file is None else os.fspath(vocab_file)
        self.vocab = tf.saved_model.Asset(path)
        self.num_threads = int(num_threads)
        self.options = tokenizer.options

    # The packing settings, read from `packing`.
    max_length = property(lambda self: self.packing.max_length)
    truncation = property(lambda self: self.packing.truncation)
    padding = property(lambda self: self.packing.padding)
    pad_to_multiple_of = property(lambda self: self.packing.pad_to_multiple_of)
    head_tokens = property(lambda self: self.packing.head)

    def __call__(self, texts: tf.Tensor, pairs: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Tokenize, truncate, pack and pad a batch, as `WordPieceTokenizer.encode_batch`."""
        return encode_with_op(texts, pairs, vocab_file=self.vocab.asset_path,
                              options=self.options, packing=self.packing,
                              num_threads=self.num_threads)
