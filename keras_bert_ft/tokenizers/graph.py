"""`ServingTokenizer`: the C++ tokenizer's exact ids, computed inside a TF graph.

An exported model must tokenize raw strings with ops that TF Serving's model
server links: TensorFlow core ops and tensorflow-text's. tensorflow-text's own
`BertTokenizer` lower-cases with NFKC case folding, which original BERT and
Hugging Face do not do, so this module does BERT's basic tokenization itself
with core ops over code points, from the very Unicode tables compiled into the
C++ core (`_unicode_data`, generated from csrc/unicode_tables.cc), and calls
tensorflow-text only for WordPiece, with lower-casing off.

The steps follow csrc/ (wordpiece.cc, normalizer.cc, packing.cc) one to one:
special tokens are matched in the raw text and kept whole; then text cleaning,
spaces around CJK ideographs, NFD with canonical ordering and removal of
non-spacing marks, lower-casing (one code point may become several), splitting
on whitespace and punctuation, WordPiece, truncation and packing.

Text travels as a flat vector of code points plus each one's row, so every
step is a vectorised gather, mask or repeat over the whole batch.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import tensorflow as tf

from keras_bert_ft.tokenizers.options import PackingOptions
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

# Flag bits of csrc/unicode_tables.h.
REMOVED, WHITESPACE, PUNCTUATION, CJK, NONSPACING_MARK, HAS_LOWER, HAS_DECOMPOSITION = (
    1, 2, 4, 8, 16, 32, 64)
MAX_CODE_POINT = 0x10FFFF
SPACE = 0x20


@lru_cache(maxsize=1)
def unicode_tables() -> dict[str, np.ndarray]:
    """The C++ core's Unicode tables as numpy arrays (see tools/gen_unicode_tables.py)."""
    from keras_bert_ft._unicode_data import BLOB

    with np.load(io.BytesIO(base64.b64decode(BLOB))) as archive:
        return {name: archive[name] for name in archive.files}


def _check_specials_disjoint(specials: Sequence[str]) -> None:
    """Raise unless occurrences of the special tokens can never overlap.

    Then every occurrence is a match of the C++ left-to-right, longest-first
    scan, and the graph may find them all in parallel.
    """
    for a in specials:
        for b in specials:
            if a != b and a in b:
                raise ValueError(f"special token {a!r} occurs inside {b!r}")
            for k in range(1, len(a)):
                if b.startswith(a[k:]):
                    raise ValueError(f"special tokens {a!r} and {b!r} can overlap")


class ServingTokenizer(tf.Module):
    """In-graph twin of `WordPieceTokenizer.encode_batch` for serving graphs.

    Calling it on a 1-D string tensor of texts (and one of pairs) returns int32
    `input_word_ids`, `input_mask` and `input_type_ids` of shape
    `[batch, seq]`, equal to the C++ tokenizer's for the same options. Invalid
    UTF-8 and impossible truncations raise `InvalidArgumentError`.

    Args:
        tokenizer: the host-side tokenizer whose vocabulary and settings to use.
        max_length, truncation, padding, pad_to_multiple_of, head_tokens: as
            `encode_batch` ("head_tail" refuses pairs when called).
        wordpiece: "fast" (tensorflow-text `FastWordpieceTokenizer`) or
            "classic" (`WordpieceTokenizer` over a lookup table).
    """

    def __init__(
        self,
        tokenizer: WordPieceTokenizer,
        max_length: int = 128,
        truncation: str = "longest_first",
        padding: str = "longest",
        pad_to_multiple_of: int | None = None,
        wordpiece: str = "fast",
        name: str = "serving_tokenizer",
        head_tokens: int | None = None,
    ) -> None:
        super().__init__(name=name)
        if wordpiece not in ("fast", "classic"):
            raise ValueError(f"wordpiece must be 'fast' or 'classic', got {wordpiece!r}")
        self.packing = PackingOptions(max_length, truncation, padding, pad_to_multiple_of,
                                      head_tokens)
        self.max_length = self.packing.max_length
        self.truncation = self.packing.truncation
        self.head_tokens = self.packing.head
        self.padding = self.packing.padding
        self.pad_to_multiple_of = self.packing.multiple
        self.lowercase = tokenizer.lowercase
        self.strip_accents = tokenizer.strip_accents
        self.max_input_chars_per_word = tokenizer.max_input_chars_per_word
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
        self.unk_token = tokenizer.unk_token

        # The special tokens the C++ core matches: those in the vocabulary, longest first.
        specials = [t for t in tokenizer.special_tokens
                    if t and tokenizer.token_to_id(t) is not None]
        specials = list(dict.fromkeys(sorted(specials, key=len, reverse=True)))
        _check_specials_disjoint(specials)
        self._specials = [[ord(c) for c in s] for s in specials]
        self._special_texts = tf.constant(specials or [""], tf.string)

        tables = unicode_tables()
        self._tables = {name: tf.constant(array) for name, array in tables.items()}
        self._wordpiece = self._build_wordpiece(tokenizer, wordpiece)

    def _build_wordpiece(self, tokenizer: WordPieceTokenizer, kind: str):
        import tensorflow_text as tft

        # Words reach WordPiece only when at most max_input_chars_per_word code
        # points long (longer ones are replaced by the unknown token first), so
        # a byte limit of 4 per code point never cuts a word the C++ keeps.
        max_bytes = 4 * self.max_input_chars_per_word
        vocab = tokenizer.get_vocab()
        # Duplicate tokens: the C++ core keeps the last id; only the lookup table
        # below is built to do the same.
        if kind == "fast" and len(set(vocab)) == len(vocab):
            return tft.FastWordpieceTokenizer(
                vocab=vocab, suffix_indicator=tokenizer.continuation_prefix,
                max_bytes_per_word=max_bytes, token_out_type=tf.int64,
                unknown_token=tokenizer.unk_token, no_pretokenization=True)
        # The last of duplicate tokens wins, as in the C++ vocabulary.
        ids = {token: i for i, token in enumerate(vocab) if token}
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(ids), tf.string), tf.constant(list(ids.values()), tf.int64)),
            default_value=-1)
        return tft.WordpieceTokenizer(
            table, suffix_indicator=tokenizer.continuation_prefix, max_bytes_per_word=max_bytes,
            token_out_type=tf.int64, unknown_token=tokenizer.unk_token)

    # -- public ----------------------------------------------------------
    def __call__(self, texts: tf.Tensor, pairs: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Tokenize, truncate, pack and pad a batch, as `WordPieceTokenizer.encode_batch`."""
        texts = tf.convert_to_tensor(texts, tf.string)
        batch = tf.size(texts, out_type=tf.int64)
        if pairs is not None:
            self.packing.check_pairs()
            pairs = tf.convert_to_tensor(pairs, tf.string)
            tf.debugging.assert_equal(
                tf.size(pairs, out_type=tf.int64), batch,
                message="text and text_pair differ in length")
            texts = tf.concat([texts, pairs], axis=0)
        ids, rows, lengths = self._token_ids(texts)
        return self._pack(ids, rows, lengths, batch, paired=pairs is not None)

    def windows(self, texts: tf.Tensor, stride: int) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Overlapping windows of each text, as `encode_batch(return_overflow=True)`.

        Returns the packed rows (one per window) and each window's text index
        (int64); see `keras_bert_ft.long_documents` for the rules.
        """
        packing = self.packing.replace(stride=stride)  # checks the stride
        ids = self.tokenize(texts)
        return pack_windows(ids, max_length=self.max_length, stride=packing.stride,
                            cls_id=self.cls_id, sep_id=self.sep_id, pad_id=self.pad_id,
                            pad_to_max_length=self.padding == "max_length",
                            pad_to_multiple_of=self.pad_to_multiple_of)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Wordpiece ids (int64) of each text of a 1-D string tensor, no special tokens."""
        ids, _, lengths = self._token_ids(tf.convert_to_tensor(texts, tf.string))
        return tf.RaggedTensor.from_row_lengths(ids, lengths, validate=False)

    def _token_ids(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Flat wordpiece ids of all texts, each id's text index, and each text's count."""
        # Invalid UTF-8 is refused, as by the C++ core, naming the rows: a text is
        # valid when its decoding (bad bytes replaced) encodes back to itself.
        decoded = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        valid = tf.equal(tf.strings.unicode_encode(decoded, "UTF-8"), texts)
        check = tf.debugging.Assert(tf.reduce_all(valid), [
            "input text is not valid UTF-8; rows:", tf.where(tf.logical_not(valid))[:5, 0]])
        with tf.control_dependencies([check]):
            decoded = tf.identity(decoded)
        nrows = decoded.nrows(out_type=tf.int64)
        cps, rows = decoded.values, decoded.value_rowids()
        cps, rows = self._mark_specials(cps, rows, decoded.row_limits())
        cps, rows = self._clean(cps, rows)
        if self.strip_accents:
            cps, rows = self._expand(cps, rows, HAS_DECOMPOSITION, "decomp")
            cps = self._canonical_order(cps, rows)
            keep = tf.equal(self._flags(cps) & NONSPACING_MARK, 0)
            cps, rows = tf.boolean_mask(cps, keep), tf.boolean_mask(rows, keep)
        if self.lowercase:
            cps, rows = self._expand(cps, rows, HAS_LOWER, "lower")
        words, word_rows = self._split_words(cps, rows)
        pieces = self._wordpiece.tokenize(words)
        piece_rows = tf.repeat(word_rows, pieces.row_lengths())
        lengths = tf.math.bincount(piece_rows, minlength=nrows, maxlength=nrows, dtype=tf.int64)
        return pieces.flat_values, piece_rows, lengths

    # -- normalisation steps -----------------------------------------------
    def _two_stage(self, prefix: str, cps: tf.Tensor) -> tf.Tensor:
        cp = tf.clip_by_value(cps, 0, MAX_CODE_POINT)
        block = tf.gather(self._tables[f"{prefix}_stage1"], tf.bitwise.right_shift(cp, 8))
        offset = tf.bitwise.bitwise_and(cp, 255)
        return tf.gather(self._tables[f"{prefix}_stage2"], block * 256 + offset)

    def _flags(self, cps: tf.Tensor) -> tf.Tensor:
        """Flags of each code point; 0 for special-token markers (negative values)."""
        return tf.where(cps < 0, 0, self._two_stage("flag", cps))

    def _mark_specials(self, cps, rows, row_limits):
        """Replace each special token in the raw text by one marker, -(index + 1)."""
        if not self._specials:
            return cps, rows
        n = tf.size(cps, out_type=tf.int64)
        longest = max(len(s) for s in self._specials)
        padded = tf.concat([cps, tf.fill([longest], tf.constant(-1, cps.dtype))], axis=0)
        room = tf.gather(row_limits, rows) - tf.range(n)  # code points left in the row
        marker = tf.zeros_like(cps)
        covered = tf.zeros_like(cps, dtype=tf.bool)  # inside a match, after its first code point
        for k, special in enumerate(self._specials):
            match = room >= len(special)
            for j, c in enumerate(special):
                match &= tf.equal(padded[j:j + n], c)
            marker = tf.where(match, -(k + 1), marker)
            for j in range(1, len(special)):
                covered |= tf.concat([tf.zeros([j], tf.bool), match[:n - j]], axis=0)[:n]
        keep = tf.logical_not(covered)
        cps = tf.where(marker < 0, marker, cps)
        return tf.boolean_mask(cps, keep), tf.boolean_mask(rows, keep)

    def _clean(self, cps, rows):
        """Drop removed code points, map whitespace to a space, pad CJK with spaces."""
        flags = self._flags(cps)
        keep = tf.equal(flags & REMOVED, 0)
        cps, rows, flags = (tf.boolean_mask(t, keep) for t in (cps, rows, flags))
        cps = tf.where((flags & WHITESPACE) > 0, SPACE, cps)
        is_cjk = (flags & CJK) > 0
        counts = tf.where(is_cjk, 3, 1)
        owner = tf.repeat(tf.range(tf.size(cps)), counts)
        within = tf.range(tf.size(owner)) - tf.repeat(tf.cumsum(counts, exclusive=True), counts)
        padded = tf.logical_and(tf.gather(is_cjk, owner), tf.not_equal(within, 1))
        return tf.where(padded, SPACE, tf.gather(cps, owner)), tf.gather(rows, owner)

    def _expand(self, cps, rows, flag: int, table: str):
        """Replace each code point with `flag` by its mapping in `table` (1 to n code points)."""
        keys = self._tables[f"{table}_keys"]
        splits = self._tables[f"{table}_splits"]
        values = self._tables[f"{table}_values"]
        index = tf.clip_by_value(
            tf.searchsorted(keys, cps, side="left", out_type=tf.int32), 0, tf.size(keys) - 1)
        mapped = tf.logical_and(
            (self._flags(cps) & flag) > 0, tf.equal(tf.gather(keys, index), cps))
        begin = tf.gather(splits, index)
        counts = tf.where(mapped, tf.gather(splits, index + 1) - begin, 1)
        owner = tf.repeat(tf.range(tf.size(cps)), counts)
        within = tf.range(tf.size(owner)) - tf.repeat(tf.cumsum(counts, exclusive=True), counts)
        source = tf.gather(begin, owner) + within
        out = tf.where(tf.gather(mapped, owner),
                       tf.gather(values, tf.where(tf.gather(mapped, owner), source, 0)),
                       tf.gather(cps, owner))
        return out, tf.gather(rows, owner)

    def _canonical_order(self, cps, rows):
        """Stable-sort each run of non-starters by combining class (NFD's canonical order)."""
        ccc = tf.where(cps < 0, 0, self._two_stage("ccc", cps))
        row_start = tf.concat([[True], tf.not_equal(rows[1:], rows[:-1])], axis=0)[:tf.size(rows)]
        starter = tf.logical_or(tf.equal(ccc, 0), row_start)
        # Only a run of two or more non-starters can be out of order.
        nonstarter = tf.not_equal(ccc, 0)
        unordered = tf.reduce_any(nonstarter[:-1] & nonstarter[1:] & ~row_start[1:])

        def reorder():
            group = tf.cumsum(tf.cast(starter, tf.int64))
            key = (group * 256 + tf.cast(ccc, tf.int64)) * tf.cast(tf.size(cps), tf.int64)
            key += tf.range(tf.size(cps, out_type=tf.int64))  # unique keys: ties keep their order
            return tf.gather(cps, tf.argsort(key))

        return tf.cond(unordered, reorder, lambda: cps)

    def _split_words(self, cps, rows):
        """Words (UTF-8 strings) split on whitespace and punctuation, and each word's row."""
        flags = self._flags(cps)
        is_marker = cps < 0
        space = (flags & WHITESPACE) > 0
        alone = tf.logical_or((flags & PUNCTUATION) > 0, is_marker)  # a word by itself
        n = tf.size(cps)
        row_start = tf.concat([[True], tf.not_equal(rows[1:], rows[:-1])], axis=0)[:n]
        after_break = tf.concat([[True], tf.logical_or(space, alone)[:-1]], axis=0)[:n]
        starts = tf.logical_and(
            tf.logical_not(space), alone | after_break | row_start)
        keep = tf.logical_not(space)
        cps, rows, starts = (tf.boolean_mask(t, keep) for t in (cps, rows, starts))
        word_ids = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(starts, tf.int64))
        chars = tf.RaggedTensor.from_value_rowids(
            tf.maximum(cps, 0), word_ids, nrows=num_words, validate=False)
        words = tf.strings.unicode_encode(chars, "UTF-8")
        too_long = chars.row_lengths() > self.max_input_chars_per_word
        words = tf.where(too_long, self.unk_token, words)
        first = tf.boolean_mask(cps, starts)
        special = tf.gather(self._special_texts, tf.maximum(-first - 1, 0))
        words = tf.where(first < 0, special, words)
        return words, tf.boolean_mask(rows, starts)

    # -- packing --------------------------------------------------------------
    def _kept_lengths(self, first: tf.Tensor, second: tf.Tensor, budget: int):
        """Tokens kept of each segment: csrc/packing.cc `Truncate`, vectorised."""
        fits = first + second <= budget
        if self.truncation == "longest_first":
            shorter = tf.minimum(first, second)
            keep_first = tf.where(
                shorter * 2 <= budget,
                tf.where(first <= second, first, budget - second),
                (budget + 1) // 2)
        elif self.truncation == "only_first":
            tf.debugging.assert_less_equal(
                tf.where(fits, tf.zeros_like(second), second), tf.constant(budget, tf.int64),
                message=f"cannot truncate to max_length {self.max_length}: "
                        "the second segment alone is too long (truncation only_first)")
            keep_first = budget - second
        elif self.truncation == "only_second":
            tf.debugging.assert_less_equal(
                tf.where(fits, tf.zeros_like(first), first), tf.constant(budget, tf.int64),
                message=f"cannot truncate to max_length {self.max_length}: "
                        "the first segment alone is too long (truncation only_second)")
            keep_first = first
        else:  # ratio: each segment keeps its share, rounded, at least one token if it has any
            total = tf.maximum(first + second, 1)
            share = (budget * first * 2 + total) // (total * 2)
            low = tf.maximum(budget - second, 0)
            high = tf.minimum(first, budget)
            if budget >= 2:
                low = tf.where(first > 0, tf.maximum(low, 1), low)
                high = tf.where(second > 0, tf.minimum(high, budget - 1), high)
            keep_first = tf.clip_by_value(share, low, tf.maximum(low, high))
        keep_first = tf.where(fits, first, keep_first)
        keep_second = tf.where(fits, second, budget - keep_first)
        return keep_first, keep_second

    def _pack(self, ids: tf.Tensor, rows: tf.Tensor, lengths: tf.Tensor, batch: tf.Tensor,
              paired: bool) -> dict[str, tf.Tensor]:
        """`[CLS] a [SEP] (b [SEP])` rows, padded: csrc/packing.cc with scatters."""
        specials = 3 if paired else 2  # max_length allows them: PackingOptions checked it
        budget = self.max_length - specials
        first_len = lengths[:batch]
        if paired:
            keep_first, keep_second = self._kept_lengths(first_len, lengths[batch:], budget)
        else:  # a single text is cut at the end, whatever the pair strategy, unless head_tail
            keep_first = tf.minimum(first_len, budget)
            keep_second = tf.zeros_like(keep_first)
        # head_tail: of the first segment's kept tokens, `head` come from its start, the
        # rest from its end; tokens between are skipped.
        head = keep_first
        if self.truncation == "head_tail" and not paired:
            head = tf.where(first_len > budget,
                            tf.constant(min(self.head_tokens, budget), first_len.dtype), first_len)
        skipped = first_len - keep_first

        # Each wordpiece's place: its row and column in the packed batch.
        position = tf.range(tf.size(ids, out_type=tf.int64)) - tf.gather(
            tf.cumsum(lengths, exclusive=True), rows)
        in_second = rows >= batch
        row = tf.where(in_second, rows - batch, rows)
        kept = position < tf.gather(tf.concat([keep_first, keep_second], axis=0), rows)
        column = tf.where(in_second, 2 + tf.gather(keep_first, row) + position, 1 + position)
        if self.truncation == "head_tail" and not paired:
            row_head, row_skipped = tf.gather(head, rows), tf.gather(skipped, rows)
            in_tail = position >= row_head + row_skipped
            kept = (position < row_head) | in_tail
            column = tf.where(in_tail, 1 + position - row_skipped, 1 + position)
        row, column, ids, types = (tf.boolean_mask(t, kept) for t in (
            row, column, ids, tf.cast(in_second, tf.int64)))

        every_row = tf.range(batch)
        special_columns = [tf.zeros_like(every_row), 1 + keep_first]
        special_types = [tf.zeros_like(every_row)] * 2
        if paired:
            special_columns.append(2 + keep_first + keep_second)
            special_types.append(tf.ones_like(every_row))
        special_ids = [tf.fill([batch], tf.constant(i, tf.int64))
                       for i in (self.cls_id, self.sep_id, self.sep_id)[:specials]]
        rows_all = tf.concat([row] + [every_row] * specials, axis=0)
        columns_all = tf.concat([column] + special_columns, axis=0)
        ids_all = tf.concat([ids] + special_ids, axis=0)
        types_all = tf.concat([types] + special_types, axis=0)

        if self.padding == "max_length":
            seq = tf.constant(self.max_length, tf.int64)
        else:
            seq = tf.reduce_max(tf.concat([keep_first + keep_second + specials, [0]], axis=0))
        multiple = self.pad_to_multiple_of
        seq = (seq + multiple - 1) // multiple * multiple
        shape = tf.stack([batch, seq])
        indices = tf.stack([rows_all, columns_all], axis=1)
        pad = tf.fill(shape, tf.constant(self.pad_id, tf.int32))
        return {
            "input_word_ids": tf.tensor_scatter_nd_update(pad, indices, tf.cast(ids_all, tf.int32)),
            "input_mask": tf.scatter_nd(indices, tf.ones_like(rows_all, tf.int32), shape),
            "input_type_ids": tf.scatter_nd(indices, tf.cast(types_all, tf.int32), shape),
        }


def pack_windows(
    ids: tf.RaggedTensor, *, max_length: int, stride: int, cls_id: int, sep_id: int, pad_id: int,
    pad_to_max_length: bool = False, pad_to_multiple_of: int = 1,
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """In-graph twin of `long_documents.window_rows` + `pack_rows`; options as `PackingOptions`.

    `ids` holds each text's wordpieces (a ragged `[texts, None]` tensor).
    Returns int32 `input_word_ids`, `input_mask`, `input_type_ids` `[windows,
    seq]` and each window's text index (int64 `[windows]`), in text order.
    """
    length = PackingOptions(max_length, stride=stride).max_length - 2  # checks the stride
    step = length - stride
    lengths = ids.row_lengths()
    counts = tf.where(lengths <= length, tf.ones_like(lengths),
                      1 + (tf.maximum(lengths - length, 0) + step - 1) // step)
    doc = tf.repeat(tf.range(tf.size(counts, out_type=tf.int64)), counts)
    k = tf.range(tf.size(doc, out_type=tf.int64)) - tf.repeat(
        tf.cumsum(counts, exclusive=True), counts)
    start = k * step
    size = tf.minimum(tf.gather(lengths, doc) - start, length)
    begin = tf.gather(ids.row_starts(), doc) + start
    positions = tf.ragged.range(begin, begin + size)
    pieces = tf.gather(ids.flat_values, positions.flat_values)
    rows = tf.size(doc, out_type=tf.int64)
    cls = tf.fill([rows, 1], tf.constant(cls_id, pieces.dtype))
    sep = tf.fill([rows, 1], tf.constant(sep_id, pieces.dtype))
    packed = tf.concat([cls, positions.with_flat_values(pieces), sep], axis=1)
    if pad_to_max_length:
        seq = tf.constant(max_length, tf.int64)
    else:
        seq = tf.reduce_max(tf.concat([size + 2, [0]], axis=0))
    seq = (seq + pad_to_multiple_of - 1) // pad_to_multiple_of * pad_to_multiple_of
    word_ids = packed.to_tensor(default_value=pad_id, shape=tf.stack([rows, seq]))
    mask = tf.sequence_mask(size + 2, seq, dtype=tf.int32)
    return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": mask,
            "input_type_ids": tf.zeros_like(mask)}, doc  # fmt: skip
