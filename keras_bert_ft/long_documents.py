"""Documents longer than `max_length`: head+tail truncation and overlapping windows.

Two ways to look past the first `max_length` tokens of a long text:

- `head_tail` truncation (Sun et al., 2019, "How to Fine-Tune BERT for Text
  Classification?"): keep the first `head_tokens` wordpieces and the last
  `max_length - 2 - head_tokens`. It applies to single texts only; the
  tokenizer refuses it for pairs. The default head is a quarter of the room
  (`default_head_tokens`), about Sun et al.'s 128 of 510.
- Windows: the wordpieces of a text are cut into windows of
  `length = max_length - 2` (room left by `[CLS]` and `[SEP]`); consecutive
  windows share `stride` wordpieces (the meaning of `stride` in Hugging Face
  tokenizers), so window k starts at `k * (length - stride)`. The last window
  is the first one that reaches the end of the text and may be shorter. A text
  that fits (or is empty) gives one window. Each window is packed as
  `[CLS] piece [SEP]` and carries the index of its text (its document).

A classifier scores each window and pools the scores of a document's windows:
"mean" averages the class probabilities (sigmoid scores, or regression
values); "max" takes each class's largest probability over the windows and,
for a softmax head, renormalises the row to sum to 1. In training each window
is an example labelled with its document's label.

The rules here are plain numpy; `tokenizers.graph.pack_windows` is their
in-graph twin and tests hold the two to the same output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WINDOW_POOLINGS = ("mean", "max")
SPECIAL_TOKENS_PER_WINDOW = 2  # [CLS] and [SEP]


def default_head_tokens(max_length: int) -> int:
    """The head kept by `head_tail` when none is given: a quarter of the room for text."""
    return max(0, int(max_length) - SPECIAL_TOKENS_PER_WINDOW) // 4


def resolve_head_tokens(max_length: int, head_tokens: int | None) -> int:
    """`head_tokens`, or the default for `max_length`; raises ValueError when negative."""
    if head_tokens is None:
        return default_head_tokens(max_length)
    if isinstance(head_tokens, bool) or not isinstance(head_tokens, int | np.integer):
        raise TypeError(f"head_tokens must be an int, got {type(head_tokens).__name__}")
    if head_tokens < 0:
        raise ValueError(f"head_tokens must be >= 0, got {head_tokens}")
    return int(head_tokens)


def check_window_options(max_length: int, stride: int) -> int:
    """The window length for `max_length`; raises ValueError unless 0 <= stride < length."""
    length = int(max_length) - SPECIAL_TOKENS_PER_WINDOW
    if length < 1:
        raise ValueError(f"windows need max_length >= 3, got {max_length}")
    if isinstance(stride, bool) or not isinstance(stride, int | np.integer):
        raise TypeError(f"stride must be an int, got {type(stride).__name__}")
    if not 0 <= stride < length:
        raise ValueError(f"stride (tokens shared by consecutive windows) must be in "
                         f"[0, {length}) for max_length {max_length}, got {stride}")
    return length


def num_windows(num_tokens: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Windows per text of `num_tokens` wordpieces: 1 if it fits, else enough to reach the end."""
    n = np.asarray(num_tokens, dtype=np.int64)
    step = length - stride
    return np.where(n <= length, 1, 1 + (np.maximum(n - length, 0) + step - 1) // step)


def window_rows(
    token_ids: Sequence[Sequence[int]], max_length: int, stride: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The wordpieces of every window (no special tokens) and each window's document index."""
    length = check_window_options(max_length, stride)
    step = length - stride
    pieces, docs = [], []
    for doc, ids in enumerate(token_ids):
        ids = np.asarray(ids, dtype=np.int32)
        for k in range(int(num_windows(len(ids), length, stride))):
            pieces.append(ids[k * step : k * step + length])
            docs.append(doc)
    return pieces, np.asarray(docs, dtype=np.int32)


def pack_rows(
    pieces: Sequence[np.ndarray], cls_id: int, sep_id: int, pad_id: int, *,
    max_length: int, pad_to_max_length: bool = False, pad_to_multiple_of: int = 1,
) -> dict[str, np.ndarray]:
    """`[CLS] piece [SEP]` rows padded like `encode_batch`: int32 `[rows, seq]` arrays."""
    lengths = np.asarray([len(p) + 2 for p in pieces], dtype=np.int64)
    seq = max_length if pad_to_max_length else int(lengths.max(initial=0))
    seq = -(-seq // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(pieces), seq), pad_id, dtype=np.int32)
    mask = np.zeros((len(pieces), seq), dtype=np.int32)
    for i, piece in enumerate(pieces):
        ids[i, 0] = cls_id
        ids[i, 1 : 1 + len(piece)] = piece
        ids[i, 1 + len(piece)] = sep_id
        mask[i, : len(piece) + 2] = 1
    return {"input_word_ids": ids, "input_mask": mask,
            "input_type_ids": np.zeros_like(ids)}  # fmt: skip


def pool_window_scores(
    scores: np.ndarray, doc_index: np.ndarray, num_docs: int, pooling: str = "mean",
    softmax: bool = False,
) -> np.ndarray:
    """Per-document scores `[num_docs, classes]` from per-window `scores` (see the module doc)."""
    if pooling not in WINDOW_POOLINGS:
        raise ValueError(f"window pooling must be one of {WINDOW_POOLINGS}, got {pooling!r}")
    scores = np.asarray(scores, dtype=np.float64)
    doc_index = np.asarray(doc_index, dtype=np.int64)
    if len(scores) != len(doc_index):
        raise ValueError(f"{len(scores)} window scores for {len(doc_index)} document indices")
    counts = np.bincount(doc_index, minlength=num_docs)
    if len(counts) > num_docs or (counts == 0).any():
        raise ValueError(f"every one of the {num_docs} documents needs at least one window")
    width = scores.shape[1:]
    if pooling == "mean":
        out = np.zeros((num_docs, *width))
        np.add.at(out, doc_index, scores)
        out /= counts.reshape(-1, *([1] * len(width)))
    else:
        out = np.full((num_docs, *width), -np.inf)
        np.maximum.at(out, doc_index, scores)
        if softmax:
            out /= out.sum(axis=-1, keepdims=True)
    return out.astype(np.float32)
