"""A self-contained HTML page of explanations: each word coloured by its attribution.

Green words raise the explained score, red words lower it; the stronger the colour,
the larger the attribution relative to the largest one in the same text. The
page has its CSS inline and no scripts or external resources, so it opens
anywhere (a browser, a mail attachment, an archive) exactly as written.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from keras_bert_ft.explain import Explanation

# Full-strength colours, blended with white by the attribution's share of the largest.
POSITIVE_RGB = (26, 152, 80)  # green: raises the score
NEGATIVE_RGB = (215, 48, 39)  # red: lowers the score

_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; }
.example { border: 1px solid #ccc; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
.label { font-size: 16px; margin-bottom: 8px; }
.text { font-size: 22px; line-height: 1.9; }
.text span.w { padding: 2px 3px; border-radius: 3px; }
.segment { color: #666; font-size: 13px; margin-top: 6px; }
.check { color: #555; font-size: 13px; margin-top: 8px; }
.legend span { padding: 2px 8px; margin-right: 8px; border-radius: 3px; }
table { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
td, th { padding: 2px 10px; text-align: left; }
"""


def word_colour(attribution: float, largest: float) -> str:
    """CSS colour of a word: white blended towards green (positive) or red (negative)."""
    share = 0.0 if largest <= 0 else min(abs(attribution) / largest, 1.0)
    base = POSITIVE_RGB if attribution >= 0 else NEGATIVE_RGB
    r, g, b = (round(255 + (c - 255) * share) for c in base)
    return f"rgb({r}, {g}, {b})"


def render_html(
    explanations: Sequence[Explanation], title: str = "Explanations", legend: bool = True
) -> str:
    """The page for `explanations` (from `keras_bert_ft.explain.explain`), as a string."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="legend">'
        + (f'<span style="background: {word_colour(1, 1)}">raises the score</span>'
           f'<span style="background: {word_colour(-1, 1)}">lowers the score</span>'
           if legend else "")
        + "Integrated gradients on the word embeddings, from a baseline where every word "
        "is [PAD] ([CLS] and [SEP] kept).</p>",
    ]
    for ex in explanations:
        parts.append(_example(ex))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _example(ex: Explanation) -> str:
    largest = max((abs(w.attribution) for w in ex.words), default=0.0)
    out = ['<div class="example">']
    predicted = html.escape(ex.predicted_name)
    explained = html.escape(ex.target_name)
    out.append(f'<div class="label">Predicted: <b>{predicted}</b> &middot; explaining the score '
               f"of <b>{explained}</b> = {ex.score:.4f}</div>")  # fmt: skip
    segments = [ex.text] if ex.pair is None else [ex.text, ex.pair]
    for segment, source in enumerate(segments):
        if ex.pair is not None:
            out.append(f'<div class="segment">{"first" if segment == 0 else "second"} text</div>')
        out.append(f'<div class="text">{_coloured(source, segment, ex, largest)}</div>')
    if ex.truncated:
        out.append('<div class="check">The text was cut to the model\'s max_length; the '
                   "uncoloured end was not seen by the model.</div>")  # fmt: skip
    difference = ex.score - ex.baseline_score
    out.append(
        f'<div class="check">Completeness: attributions sum to {ex.attribution_sum:+.4f}; '
        f"f(text) &minus; f(baseline) = {ex.score:.4f} &minus; {ex.baseline_score:.4f} = "
        f"{difference:+.4f} (error {100 * ex.completeness_error:.1f}%, {ex.steps} steps)</div>"
    )
    top = sorted(ex.words, key=lambda w: -abs(w.attribution))[:8]
    rows = "".join(f"<tr><td>{html.escape(w.text)}</td><td>{w.attribution:+.4f}</td></tr>"
                   for w in top)  # fmt: skip
    out.append(f"<table><tr><th>word</th><th>attribution</th></tr>{rows}</table></div>")
    return "\n".join(out)


def _coloured(source: str, segment: int, ex: Explanation, largest: float) -> str:
    """`source` with every explained word wrapped in a coloured span; the characters
    between words (spaces, an uncovered tail) are kept as they are."""
    pieces, cursor = [], 0
    for w in (w for w in ex.words if w.segment == segment):
        pieces.append(html.escape(source[cursor:w.start]))
        pieces.append(f'<span class="w" style="background: {word_colour(w.attribution, largest)}"'
                      f' title="{w.attribution:+.4f}">{html.escape(source[w.start:w.end])}'
                      "</span>")  # fmt: skip
        cursor = w.end
    pieces.append(html.escape(source[cursor:]))
    return "".join(pieces)
