"""`WordPieceTokenizer`: the Python face of the C++ WordPiece core."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_bert_ft import _wordpiece, long_documents
from keras_bert_ft.tokenizers.options import (
    DEFAULT_SPECIAL_TOKENS,
    PADDING_MODES,
    TRUNCATION_STRATEGIES,
    PackingOptions,
    TokenizerOptions,
)

__all__ = ["DEFAULT_SPECIAL_TOKENS", "PADDING_MODES", "TRUNCATION_STRATEGIES",
           "WordPieceTokenizer", "read_vocab", "text_batch", "text_line_of"]

# Decoding joins tokens with spaces; these are glued back as original BERT's
# detokenization (and Hugging Face's `clean_up_tokenization_spaces`) does.
_CLEANUPS = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
    (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)

TextInput = str | bytes


def read_vocab(vocab_file: str | os.PathLike) -> list[str]:
    """Read a WordPiece `vocab.txt`: token i is line i, trailing whitespace removed."""
    path = Path(vocab_file)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"vocabulary file not found: {path}") from None
    except UnicodeDecodeError as err:
        line = text_line_of(path.read_bytes(), err.start)
        raise ValueError(f"{path}: line {line}: not valid UTF-8 (byte {err.start})") from None
    tokens = [line.rstrip() for line in text.split("\n")]
    if tokens and tokens[-1] == "":
        tokens.pop()  # the newline that ends the last line
    if not tokens:
        raise ValueError(f"{path}: the vocabulary is empty")
    return tokens


def text_line_of(data: bytes, offset: int) -> int:
    """1-based line number of byte `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1


def text_batch(texts: Sequence[str] | str | bytes) -> list:
    """`texts` as a list; a bare str (or bytes) is one text, not a sequence of characters."""
    if isinstance(texts, str | bytes):
        return [texts]
    return list(texts)


class WordPieceTokenizer:
    """BERT tokenizer: basic tokenization plus greedy longest-match WordPiece.

    Gives the same ids as Hugging Face `tokenizers`' `BertWordPieceTokenizer`
    with the same vocabulary and casing. Batch encoding runs in C++ without the
    GIL and fills int32 arrays in place.

    Args:
        vocab_file: path to `vocab.txt` (one token a line, id = line number).
        lowercase: lower-case the input (uncased models).
        strip_accents: drop accents after NFD; `None` follows `lowercase`.
        max_input_chars_per_word: longer words become `unk_token`.
        unk_token, cls_token, sep_token, pad_token, mask_token, continuation_prefix:
            the special tokens and the wordpiece continuation mark.
        vocab: a token list to use instead of `vocab_file`.
        special_tokens: tokens matched verbatim in raw text and never split;
            None: the five named ones.

    The settings are checked by (and kept as) `TokenizerOptions`, `self.options`.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        max_input_chars_per_word: int = 100,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        continuation_prefix: str = "##",
        vocab: Sequence[str] | None = None,
        special_tokens: Sequence[str] | None = None,
    ) -> None:
        if (vocab_file is None) == (vocab is None):
            raise ValueError("pass exactly one of vocab_file and vocab")
        options = TokenizerOptions(
            lowercase=lowercase, strip_accents=strip_accents,
            max_input_chars_per_word=max_input_chars_per_word, unk_token=unk_token,
            cls_token=cls_token, sep_token=sep_token, pad_token=pad_token, mask_token=mask_token,
            continuation_prefix=continuation_prefix, special_tokens=special_tokens)
        tokens = list(vocab) if vocab is not None else read_vocab(vocab_file)
        options.check_vocab(tokens)
        self.options = options
        self.vocab_file = None if vocab_file is None else str(vocab_file)
        self._core = _wordpiece.Tokenizer(
            tokens, options.lowercase, options.strip_accents, options.max_input_chars_per_word,
            options.unk_token, list(options.special_tokens), options.continuation_prefix)
        self._tokens = tokens
        self.cls_id = self.token_to_id(options.cls_token)
        self.sep_id = self.token_to_id(options.sep_token)
        self.unk_id = self.token_to_id(options.unk_token)
        pad_id = self.token_to_id(options.pad_token)
        self.pad_id = 0 if pad_id is None else pad_id

    @classmethod
    def from_options(
        cls,
        options: TokenizerOptions,
        vocab_file: str | os.PathLike | None = None,
        vocab: Sequence[str] | None = None,
    ) -> WordPieceTokenizer:
        """A tokenizer with these options over `vocab_file` (or the token list `vocab`)."""
        return cls(vocab_file, vocab=vocab, **options.get_config())

    # The settings, read from `options` (one source of truth).
    lowercase = property(lambda self: self.options.lowercase)
    strip_accents = property(lambda self: self.options.strip_accents)
    max_input_chars_per_word = property(lambda self: self.options.max_input_chars_per_word)
    unk_token = property(lambda self: self.options.unk_token)
    cls_token = property(lambda self: self.options.cls_token)
    sep_token = property(lambda self: self.options.sep_token)
    pad_token = property(lambda self: self.options.pad_token)
    mask_token = property(lambda self: self.options.mask_token)
    continuation_prefix = property(lambda self: self.options.continuation_prefix)
    special_tokens = property(lambda self: list(self.options.special_tokens))

    # -- vocabulary -------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of tokens (lines of `vocab.txt`)."""
        return len(self._tokens)

    def get_vocab(self) -> list[str]:
        """The tokens, indexed by id."""
        return list(self._tokens)

    def token_to_id(self, token: str) -> int | None:
        """Id of `token`, or None when it is not in the vocabulary."""
        token_id = self._core.token_to_id(token)
        return None if token_id < 0 else token_id

    def id_to_token(self, token_id: int) -> str:
        """Token string of `token_id`."""
        return self._core.id_to_token(int(token_id))

    def convert_ids_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Token strings of a sequence of ids."""
        return [self.id_to_token(i) for i in np.asarray(ids).reshape(-1).tolist()]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of tokens; tokens not in the vocabulary map to the unknown id."""
        return [self.unk_id if (i := self.token_to_id(t)) is None else i for t in tokens]

    # -- single texts -----------------------------------------------------
    def tokenize(self, text: TextInput) -> list[str]:
        """Wordpieces of `text`, without special tokens."""
        return self._core.tokenize(text)

    def token_ids(self, text: TextInput) -> list[int]:
        """Wordpiece ids of `text`, without special tokens."""
        return self._core.encode(text, False)[0]

    def token_ids_and_offsets(self, text: TextInput) -> tuple[list[int], list[tuple[int, int]]]:
        """Wordpiece ids of `text` and each one's (start, end) character span in it."""
        ids, offsets = self._core.encode(text, True)
        return ids, offsets

    def encode(
        self,
        text: TextInput,
        pair: TextInput | None = None,
        max_length: int = 128,
        truncation: str = "longest_first",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        return_offsets: bool = False,
        head_tokens: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Encode one text (or pair) as 1-D int32 arrays; see `encode_batch`."""
        batch = self.encode_batch(
            [text], None if pair is None else [pair], max_length=max_length,
            truncation=truncation, padding=padding, pad_to_multiple_of=pad_to_multiple_of,
            num_threads=1, return_offsets=return_offsets, head_tokens=head_tokens)
        return {name: array[0] for name, array in batch.items()}

    # -- batches ----------------------------------------------------------
    def encode_batch(
        self,
        texts: Sequence[TextInput],
        pairs: Sequence[TextInput] | None = None,
        max_length: int = 128,
        truncation: str = "longest_first",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        num_threads: int | None = None,
        return_offsets: bool = False,
        head_tokens: int | None = None,
        stride: int | None = None,
        return_overflow: bool = False,
    ) -> dict[str, np.ndarray]:
        """Tokenize, truncate, pack and pad a batch.

        Each row is `[CLS] a [SEP]`, or `[CLS] a [SEP] b [SEP]` with
        `input_type_ids` 1 on the second segment. Returns int32 arrays
        `input_word_ids`, `input_mask` and `input_type_ids` of shape
        `[batch, seq]`, and `offsets` `[batch, seq, 2]` (character spans,
        (0, 0) for special and padding tokens) when `return_offsets`.

        Args:
            texts: the first segments (str, or UTF-8 bytes).
            pairs: the second segments, or None for single texts.
            max_length: most tokens a row may have, special tokens included.
            truncation: for pairs, "longest_first" (original BERT: pop from the
                longer segment, the second on ties), "only_first",
                "only_second" or "ratio" (each keeps its share of the room).
                A single text is cut at the end, except with "head_tail"
                (single texts only; refused for pairs): the first
                `head_tokens` wordpieces and the last `max_length - 2 -
                head_tokens` are kept.
            padding: "longest" (the longest row of this batch) or "max_length".
            pad_to_multiple_of: round the padded length up to a multiple.
            num_threads: threads for the batch; None uses every core.
            return_offsets: also return character offsets.
            head_tokens: the head kept by "head_tail"; None: a quarter of
                `max_length - 2` (`long_documents.default_head_tokens`).
            return_overflow: split each (single) text into overlapping windows
                of `max_length - 2` wordpieces instead of truncating: one row
                per window, and `overflow_to_sample_mapping` (int32, a row's
                text index) is returned too. See `keras_bert_ft.long_documents`.
            stride: with `return_overflow`, wordpieces shared by consecutive
                windows (0 when None), as in Hugging Face tokenizers.
        """
        if stride is not None and not return_overflow:
            raise ValueError("stride is for windows: pass return_overflow=True with it")
        window_stride = (0 if stride is None else stride) if return_overflow else None
        packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of,
                                 head_tokens, window_stride)
        return self.encode_packed(texts, pairs, packing, num_threads=num_threads,
                                  return_offsets=return_offsets)

    def encode_packed(
        self,
        texts: Sequence[TextInput],
        pairs: Sequence[TextInput] | None,
        packing: PackingOptions,
        *,
        num_threads: int | None = None,
        return_offsets: bool = False,
    ) -> dict[str, np.ndarray]:
        """`encode_batch` with its packing settings as one `PackingOptions`.

        With `packing.stride` set, each single text becomes overlapping windows
        and `overflow_to_sample_mapping` is returned too.
        """
        threads = os.cpu_count() or 1 if num_threads is None else int(num_threads)
        if threads < 1:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        if pairs is not None:
            packing.check_pairs()
        if packing.windows:
            return self._encode_windows(texts, packing, return_offsets)
        return self._core.encode_batch(
            texts, pairs, packing.max_length, packing.truncation, packing.pad_to_max_length,
            packing.multiple, threads, bool(return_offsets), packing.head)

    def _encode_windows(self, texts, packing: PackingOptions,
                        return_offsets: bool) -> dict[str, np.ndarray]:
        """`encode_batch(return_overflow=True)`: one packed row per window."""
        if return_offsets:
            raise ValueError("return_offsets is not supported with return_overflow=True")
        max_length, stride = packing.max_length, packing.stride
        token_ids = []
        for i, text in enumerate(texts):
            try:
                token_ids.append(self._core.encode(text, False)[0])
            except ValueError as err:
                raise ValueError(f"texts[{i}]: {err}") from None
        pieces, docs = long_documents.window_rows(token_ids, max_length, stride)
        out = long_documents.pack_rows(
            pieces, self.cls_id, self.sep_id, self.pad_id, max_length=max_length,
            pad_to_max_length=packing.pad_to_max_length, pad_to_multiple_of=packing.multiple)
        out["overflow_to_sample_mapping"] = docs
        return out

    # -- decoding ---------------------------------------------------------
    def decode(
        self,
        ids: Sequence[int] | np.ndarray,
        skip_special_tokens: bool = True,
        clean_up_tokenization_spaces: bool = True,
    ) -> str:
        """Text of `ids`: wordpieces joined, `##` continuations glued to their word."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            specials = set(self.special_tokens)
            tokens = [t for t in tokens if t not in specials]
        prefix = self.continuation_prefix
        text = " ".join(tokens).replace(" " + prefix, "")
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
        if clean_up_tokenization_spaces:
            for before, after in _CLEANUPS:
                text = text.replace(before, after)
        return text

    def get_config(self) -> dict:
        """Settings that rebuild this tokenizer together with its vocabulary."""
        return self.options.get_config()

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"strip_accents={self.strip_accents})")
