"""Tokenizer settings, checked in one place.

`TokenizerOptions` says how text becomes wordpieces (casing, accents, the
special tokens, the longest word); `PackingOptions` says how wordpieces become
rows (`max_length`, truncation, padding, the `head_tail` head, windows). The
host tokenizer, the TF op wrapper, the in-graph tokenizer, the `WordPieceEncode`
layer and a classifier's preprocessor all build these objects and rely on
their checks, so a bad option is refused with the same message whichever
front-end it reaches. (The C++ core keeps its own bounds checks: they guard
memory, not the user.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from keras_bert_ft import long_documents
from keras_bert_ft.errors import KerasBertFtError

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "ratio", "head_tail")
PADDING_MODES = ("longest", "max_length")
DEFAULT_SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]")
PAIR_TRUNCATIONS = "longest_first, only_first, only_second or ratio"


class TokenizerOptionError(KerasBertFtError, ValueError):
    """A tokenizer or packing option that no tokenizer accepts."""


class TokenizerOptionTypeError(TokenizerOptionError, TypeError):
    """A tokenizer or packing option of the wrong type (e.g. a float `max_length`)."""


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _is_bool(value) -> bool:
    # 0 and 1 are accepted (configs written by other tools); "false" is not.
    return isinstance(value, bool | np.bool_) or (_is_int(value) and value in (0, 1))


def _check_int(name: str, value) -> int:
    if not _is_int(value):
        raise TokenizerOptionTypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


@dataclass(frozen=True)
class TokenizerOptions:
    """How text becomes wordpieces; the settings of `WordPieceTokenizer` besides its vocabulary.

    Args:
        lowercase: lower-case the input (uncased models).
        strip_accents: drop accents after NFD; None follows `lowercase`.
        max_input_chars_per_word: longer words become `unk_token` (at least 1).
        unk_token, cls_token, sep_token, pad_token, mask_token: the special tokens.
        continuation_prefix: marks a wordpiece that continues a word ("##").
        special_tokens: the tokens matched verbatim in raw text and never split;
            None: the five above (unk, sep, cls, pad, mask).
    """

    lowercase: bool = True
    strip_accents: bool | None = None
    max_input_chars_per_word: int = 100
    unk_token: str = "[UNK]"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    pad_token: str = "[PAD]"
    mask_token: str = "[MASK]"
    continuation_prefix: str = "##"
    special_tokens: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("lowercase", "strip_accents"):
            value = getattr(self, name)
            if value is not None and not _is_bool(value):
                raise TokenizerOptionTypeError(
                    f"{name} must be True or False, got {value!r}")
        lowercase = bool(self.lowercase)
        set_field = object.__setattr__  # the dataclass is frozen once built
        set_field(self, "lowercase", lowercase)
        set_field(self, "strip_accents",
                  lowercase if self.strip_accents is None else bool(self.strip_accents))
        chars = _check_int("max_input_chars_per_word", self.max_input_chars_per_word)
        if chars < 1:
            raise TokenizerOptionError(f"max_input_chars_per_word must be at least 1, got {chars}")
        set_field(self, "max_input_chars_per_word", chars)
        for name in ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token",
                     "continuation_prefix"):
            if not isinstance(getattr(self, name), str):
                raise TokenizerOptionTypeError(
                    f"{name} must be a str, got {type(getattr(self, name)).__name__}")
        for name in ("unk_token", "cls_token", "sep_token"):
            if not getattr(self, name):
                raise TokenizerOptionError(f"{name} must not be empty")
        if self.special_tokens is None:
            specials = self.named_special_tokens()
        elif isinstance(self.special_tokens, str):
            raise TokenizerOptionTypeError("special_tokens must be a list of str, not one str")
        else:
            specials = tuple(self.special_tokens)
            for token in specials:
                if not isinstance(token, str):
                    raise TokenizerOptionTypeError(
                        f"special_tokens must hold str, got {type(token).__name__}")
        set_field(self, "special_tokens", specials)

    def named_special_tokens(self) -> tuple[str, ...]:
        """unk, sep, cls, pad and mask, the order the C++ core has always been given."""
        return (self.unk_token, self.sep_token, self.cls_token, self.pad_token,
                self.mask_token)  # fmt: skip

    def check_vocab(self, tokens: Iterable[str]) -> None:
        """Raise unless the vocabulary holds the tokens every row needs (cls, sep, unk)."""
        vocab = set(tokens)
        for name in ("cls_token", "sep_token", "unk_token"):
            token = getattr(self, name)
            if token not in vocab:
                raise TokenizerOptionError(f"{name} {token!r} is not in the vocabulary")

    def op_attrs(self) -> dict:
        """The `KbfWordPieceEncode` op attributes that reproduce these options."""
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "unk_token": self.unk_token,
            "continuation_prefix": self.continuation_prefix,
            "special_tokens": list(self.special_tokens),
        }

    def get_config(self) -> dict:
        """JSON-able settings; `special_tokens` only when not the five named ones."""
        config = dataclasses.asdict(self)
        if self.special_tokens == self.named_special_tokens():
            del config["special_tokens"]
        else:
            config["special_tokens"] = list(self.special_tokens)
        return config

    @classmethod
    def from_config(cls, config: dict) -> TokenizerOptions:
        """Options from `get_config`'s dict (a tokenizer's config)."""
        return cls(**config)


@dataclass(frozen=True)
class PackingOptions:
    """How wordpieces become rows: `[CLS] a [SEP] (b [SEP])`, truncated and padded.

    Args:
        max_length: most tokens a row may have, special tokens included (at
            least 2; pairs need 3).
        truncation: one of `TRUNCATION_STRATEGIES` (see
            `WordPieceTokenizer.encode_batch`); "head_tail" is for single texts.
        padding: "longest" (the batch's longest row) or "max_length".
        pad_to_multiple_of: round the padded length up to a multiple (None: 1).
        head_tokens: the head kept by "head_tail"; None: a quarter of
            `max_length - 2` (`long_documents.default_head_tokens`).
        stride: None truncates long texts; an int cuts each single text into
            overlapping windows sharing `stride` wordpieces (`long_documents`).
    """

    max_length: int = 128
    truncation: str = "longest_first"
    padding: str = "longest"
    pad_to_multiple_of: int | None = None
    head_tokens: int | None = None
    stride: int | None = None

    def __post_init__(self) -> None:
        max_length = _check_int("max_length", self.max_length)
        if max_length < 2:
            raise TokenizerOptionError(f"max_length must be at least 2, got {max_length}")
        object.__setattr__(self, "max_length", max_length)
        if self.truncation not in TRUNCATION_STRATEGIES:
            raise TokenizerOptionError(
                f"truncation must be one of {TRUNCATION_STRATEGIES}, got {self.truncation!r}")
        if self.padding not in PADDING_MODES:
            raise TokenizerOptionError(
                f"padding must be one of {PADDING_MODES}, got {self.padding!r}")
        if self.pad_to_multiple_of is not None:
            multiple = _check_int("pad_to_multiple_of", self.pad_to_multiple_of)
            if multiple < 1:
                raise TokenizerOptionError(
                    f"pad_to_multiple_of must be positive, got {self.pad_to_multiple_of}")
            object.__setattr__(self, "pad_to_multiple_of", multiple)
        if self.head_tokens is not None:
            self._checked(long_documents.resolve_head_tokens, max_length, self.head_tokens)
            object.__setattr__(self, "head_tokens", int(self.head_tokens))
        if self.stride is not None:
            self._checked(long_documents.check_window_options, max_length, self.stride)
            object.__setattr__(self, "stride", int(self.stride))

    @staticmethod
    def _checked(check, *args) -> None:
        """Run one of `long_documents`' rule checks, raising this module's error types."""
        try:
            check(*args)
        except TypeError as err:
            raise TokenizerOptionTypeError(str(err)) from None
        except ValueError as err:
            raise TokenizerOptionError(str(err)) from None

    # -- derived values --------------------------------------------------------
    @property
    def multiple(self) -> int:
        """`pad_to_multiple_of`, 1 when unset."""
        return 1 if self.pad_to_multiple_of is None else self.pad_to_multiple_of

    @property
    def head(self) -> int:
        """The head "head_tail" keeps: `head_tokens`, or the default for `max_length`."""
        return long_documents.resolve_head_tokens(self.max_length, self.head_tokens)

    @property
    def pad_to_max_length(self) -> bool:
        return self.padding == "max_length"

    @property
    def windows(self) -> bool:
        """Whether long texts are cut into windows (a `stride` is set) instead of truncated."""
        return self.stride is not None

    def check_pairs(self) -> None:
        """Raise unless these options can pack sentence pairs."""
        if self.truncation == "head_tail":
            raise TokenizerOptionError(
                f"truncation 'head_tail' applies to single texts; for pairs use "
                f"{PAIR_TRUNCATIONS}")
        if self.windows:
            raise TokenizerOptionError("windows (a stride) are for single texts, not pairs")
        if self.max_length < 3:
            raise TokenizerOptionError(
                f"max_length must be at least 3 for pairs, got {self.max_length}")

    def replace(self, **changes) -> PackingOptions:
        """A copy with `changes`, checked like a new one."""
        return dataclasses.replace(self, **changes)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> PackingOptions:
        return cls(**config)
