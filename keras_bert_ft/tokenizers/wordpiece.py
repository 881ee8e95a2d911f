"""`WordPieceTokenizer`: the Python face of the C++ WordPiece core."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_bert_ft import _wordpiece, long_documents

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "ratio", "head_tail")
PADDING_MODES = ("longest", "max_length")
DEFAULT_SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]")

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
        special_tokens: tokens matched verbatim in raw text and never split.
        vocab: a token list to use instead of `vocab_file`.
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
    ) -> None:
        if (vocab_file is None) == (vocab is None):
            raise ValueError("pass exactly one of vocab_file and vocab")
        tokens = list(vocab) if vocab is not None else read_vocab(vocab_file)
        self.vocab_file = None if vocab_file is None else str(vocab_file)
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.continuation_prefix = continuation_prefix
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token, self.mask_token = pad_token, mask_token
        self.special_tokens = [unk_token, sep_token, cls_token, pad_token, mask_token]
        for name, token in (("cls_token", cls_token), ("sep_token", sep_token),
                            ("unk_token", unk_token)):
            if token not in tokens:
                raise ValueError(f"{name} {token!r} is not in the vocabulary")
        self._core = _wordpiece.Tokenizer(
            tokens, self.lowercase, self.strip_accents, self.max_input_chars_per_word,
            unk_token, self.special_tokens, continuation_prefix)
        self._tokens = tokens
        self.cls_id = self.token_to_id(cls_token)
        self.sep_id = self.token_to_id(sep_token)
        self.unk_id = self.token_to_id(unk_token)
        pad_id = self.token_to_id(pad_token)
        self.pad_id = 0 if pad_id is None else pad_id

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
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(
                f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer):
            raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
        multiple = 1 if pad_to_multiple_of is None else int(pad_to_multiple_of)
        if multiple < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        threads = os.cpu_count() or 1 if num_threads is None else int(num_threads)
        if threads < 1:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        if return_overflow:
            return self._encode_windows(texts, pairs, int(max_length), stride, padding,
                                        multiple, return_offsets)
        if stride is not None:
            raise ValueError("stride is for windows: pass return_overflow=True with it")
        if truncation == "head_tail" and pairs is not None:
            raise ValueError("truncation 'head_tail' applies to single texts; for pairs use "
                             "longest_first, only_first, only_second or ratio")
        head = long_documents.resolve_head_tokens(int(max_length), head_tokens)
        return self._core.encode_batch(
            texts, pairs, int(max_length), truncation, padding == "max_length", multiple,
            threads, bool(return_offsets), head)

    def _encode_windows(self, texts, pairs, max_length: int, stride: int | None, padding: str,
                        multiple: int, return_offsets: bool) -> dict[str, np.ndarray]:
        """`encode_batch(return_overflow=True)`: one packed row per window."""
        if pairs is not None:
            raise ValueError("windows (return_overflow=True) are for single texts, not pairs")
        if return_offsets:
            raise ValueError("return_offsets is not supported with return_overflow=True")
        stride = 0 if stride is None else stride
        long_documents.check_window_options(max_length, stride)
        token_ids = []
        for i, text in enumerate(texts):
            try:
                token_ids.append(self._core.encode(text, False)[0])
            except ValueError as err:
                raise ValueError(f"texts[{i}]: {err}") from None
        pieces, docs = long_documents.window_rows(token_ids, max_length, stride)
        out = long_documents.pack_rows(
            pieces, self.cls_id, self.sep_id, self.pad_id, max_length=max_length,
            pad_to_max_length=padding == "max_length", pad_to_multiple_of=multiple)
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
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "unk_token": self.unk_token,
            "cls_token": self.cls_token,
            "sep_token": self.sep_token,
            "pad_token": self.pad_token,
            "mask_token": self.mask_token,
            "continuation_prefix": self.continuation_prefix,
        }

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"strip_accents={self.strip_accents})")
