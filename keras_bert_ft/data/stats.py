"""Token length statistics, to choose `max_length` from the data."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bert_ft.infra import atomic_path

# [CLS] text [SEP], and [CLS] a [SEP] b [SEP].
_SPECIAL_SINGLE = 2
_SPECIAL_PAIR = 3


def token_lengths(
    texts: Sequence[str],
    tokenizer,
    pairs: Sequence[str] | None = None,
    *,
    add_special_tokens: bool = True,
    batch_size: int = 1024,
) -> np.ndarray:
    """Untruncated token count of each text (or text pair), as int64.

    `tokenizer` is an object with `tokenize(text) -> list[str]`, an object
    with `encode_batch(...)` (lengths are read from `input_mask`, which
    already counts [CLS]/[SEP]), or a callable returning tokens or a count.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(pairs)} pairs for {len(texts)} texts")
    if hasattr(tokenizer, "tokenize"):
        count: Callable[[str], int] = lambda t: len(tokenizer.tokenize(t))  # noqa: E731
    elif hasattr(tokenizer, "encode_batch"):
        return _lengths_from_encode_batch(texts, tokenizer, pairs, add_special_tokens, batch_size)
    elif callable(tokenizer):

        def count(t: str) -> int:
            out = tokenizer(t)
            return int(out) if isinstance(out, (int, np.integer)) else len(out)
    else:
        raise TypeError("tokenizer must have .tokenize, .encode_batch, or be callable")
    lengths = np.fromiter((count(t) for t in texts), dtype=np.int64, count=len(texts))
    if pairs is not None:
        lengths += np.fromiter((count(t) for t in pairs), dtype=np.int64, count=len(pairs))
    if add_special_tokens:
        lengths += _SPECIAL_PAIR if pairs is not None else _SPECIAL_SINGLE
    return lengths


def _lengths_from_encode_batch(texts, tokenizer, pairs, add_special_tokens, batch_size):
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        chunk_pairs = None if pairs is None else list(pairs[start : start + batch_size])
        # A max_length far above any real text means nothing is truncated.
        enc = tokenizer.encode_batch(
            chunk, pairs=chunk_pairs, max_length=1 << 20, padding="longest"
        )
        out.append(np.asarray(enc["input_mask"]).sum(axis=1))
    lengths = np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
    if not add_special_tokens:
        lengths -= _SPECIAL_PAIR if pairs is not None else _SPECIAL_SINGLE
    return lengths


def suggest_max_length(
    lengths: np.ndarray, percentile: float = 95.0, multiple_of: int = 8, cap: int = 512
) -> int:
    """The `percentile`-th length rounded up to a multiple of `multiple_of`, at most `cap`."""
    if len(lengths) == 0:
        raise ValueError("no lengths to suggest a max_length from")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    value = float(np.percentile(lengths, percentile, method="higher"))
    rounded = int(math.ceil(value / multiple_of) * multiple_of)
    return max(multiple_of, min(cap, rounded))


@dataclass
class LengthStats:
    """Token lengths, their histogram and a suggested `max_length`."""

    lengths: np.ndarray
    counts: np.ndarray
    bin_edges: np.ndarray
    percentile: float
    suggested_max_length: int

    @property
    def truncated_fraction(self) -> float:
        """Share of rows longer than the suggested max_length."""
        return float(np.mean(self.lengths > self.suggested_max_length))

    def summary(self) -> dict:
        """Plain numbers for logs and JSON."""
        p = np.percentile(self.lengths, [50, 90, 95, 99])
        return {
            "count": int(len(self.lengths)),
            "mean": float(self.lengths.mean()),
            "min": int(self.lengths.min()),
            "p50": float(p[0]),
            "p90": float(p[1]),
            "p95": float(p[2]),
            "p99": float(p[3]),
            "max": int(self.lengths.max()),
            "percentile": self.percentile,
            "suggested_max_length": self.suggested_max_length,
            "truncated_fraction": self.truncated_fraction,
        }

    def histogram_text(self, width: int = 40) -> str:
        """The histogram as text bars, one line per bin."""
        peak = max(int(self.counts.max()), 1)
        rows = []
        for lo, hi, c in zip(self.bin_edges[:-1], self.bin_edges[1:], self.counts, strict=True):
            bar = "#" * int(round(width * c / peak))
            rows.append(f"{int(lo):>5}-{int(hi):<5} {int(c):>8} {bar}")
        s = self.summary()
        rows.append(
            f"p{self.percentile:g} -> max_length {self.suggested_max_length} "
            f"(truncates {s['truncated_fraction']:.1%} of {s['count']} rows; max {s['max']})"
        )
        return "\n".join(rows)

    def save_png(self, path: str | os.PathLike, title: str = "token lengths") -> Path:
        """The histogram as a PNG, with the suggested max_length marked; written atomically."""
        from matplotlib.figure import Figure  # no pyplot: headless, no global state

        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.subplots()
        ax.stairs(self.counts, self.bin_edges, fill=True)
        ax.axvline(self.suggested_max_length, color="red", linestyle="--")
        ax.set_xlabel(f"tokens (p{self.percentile:g} -> max_length {self.suggested_max_length})")
        ax.set_ylabel("rows")
        ax.set_title(title)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        return Path(path)


def length_statistics(
    texts: Sequence[str],
    tokenizer,
    pairs: Sequence[str] | None = None,
    *,
    percentile: float = 95.0,
    multiple_of: int = 8,
    cap: int = 512,
    bins: int = 20,
) -> LengthStats:
    """Token length histogram and the `max_length` that covers `percentile`% of rows."""
    lengths = token_lengths(texts, tokenizer, pairs)
    if len(lengths) == 0:
        raise ValueError("no texts to measure")
    counts, edges = np.histogram(lengths, bins=bins)
    return LengthStats(
        lengths=lengths,
        counts=counts,
        bin_edges=edges,
        percentile=percentile,
        suggested_max_length=suggest_max_length(lengths, percentile, multiple_of, cap),
    )
