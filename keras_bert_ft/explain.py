"""Per-word explanations of a `BertClassifier`'s score by integrated gradients.

Integrated gradients (Sundararajan et al., 2017) attributes the difference
f(x) - f(x') between the score of the input x and that of a baseline x' to the
input features: attribution_i = (x_i - x'_i) * mean over the straight path from
x' to x of df/dx_i. Its completeness property says the attributions sum to
f(x) - f(x'); how close the numerical integral comes is reported for every
text (`Explanation.completeness_error`) and steps are doubled until it holds.

Here the features are the word embeddings (the looked-up rows of the word
table; position and token-type embeddings are added afterwards, unchanged).

- Baseline: every word piece becomes the `[PAD]` embedding, while `[CLS]` and
  `[SEP]` stay as they are and the mask, positions and segments are unchanged:
  the same sequence with its words blanked out. Special tokens therefore get
  no attribution.
- Score: the model's output for the target class (a probability for softmax
  and sigmoid heads; for a one-unit sigmoid, p for class 1 and 1 - p for
  class 0; the value itself for regression). The target defaults to the
  predicted class.
- Integral: trapezoid rule on `steps` equal intervals; while the relative
  completeness error is above `tolerance`, the steps are doubled (the earlier
  gradients are reused) up to `max_steps`.

Word pieces are merged back to words: a piece with the continuation prefix
(`##`) joins the word before it, and the word's attribution is the sum of its
pieces'. Each word keeps its character span in the text it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from keras_bert_ft.errors import KerasBertFtError
from keras_bert_ft.tokenizers.wordpiece import text_batch

DEFAULT_STEPS = 64
DEFAULT_MAX_STEPS = 1024
DEFAULT_TOLERANCE = 0.05
# Below this score difference, the completeness error is measured in absolute terms:
# a relative error of a near-zero difference says nothing.
_MIN_DIFFERENCE = 1e-3
# The replicated forward pass must give the model's own scores to this tolerance.
_FORWARD_TOLERANCE = 1e-4


class ExplainError(KerasBertFtError, ValueError):
    """A model or request that cannot be explained (unknown encoder, bad target, ...)."""


@dataclass
class WordAttribution:
    """One word: its text, its character span in its segment, and its attribution."""

    text: str
    start: int
    end: int
    segment: int  # 0: the text, 1: the pair's second text
    attribution: float


@dataclass
class Explanation:
    """Integrated-gradients attributions for one text (or pair) and one target class."""

    text: str
    pair: str | None
    tokens: list[str]
    token_attributions: np.ndarray  # one per token, [CLS]/[SEP] included (0 for them)
    words: list[WordAttribution]
    scores: np.ndarray  # the model's whole output row for this text
    target: int  # class index (0 for regression)
    target_name: str
    predicted_name: str
    score: float  # f(x): the explained score
    baseline_score: float  # f(x'): the same score for the baseline
    steps: int  # trapezoid intervals used
    truncated: bool  # the text was longer than the model's max_length
    completeness_error: float = field(init=False)

    def __post_init__(self) -> None:
        self.completeness_error = completeness_error(
            float(np.sum(self.token_attributions)), self.score - self.baseline_score
        )

    @property
    def attribution_sum(self) -> float:
        return float(np.sum(self.token_attributions))


def completeness_error(attribution_sum: float, difference: float) -> float:
    """|sum of attributions - (f(x) - f(x'))|, relative to the difference (or to 1e-3 when
    the difference is smaller than that)."""
    return abs(attribution_sum - difference) / max(abs(difference), _MIN_DIFFERENCE)


def explain(
    model,
    texts: Sequence[str] | str,
    pairs: Sequence[str] | str | None = None,
    *,
    target: int | str | None = None,
    steps: int = DEFAULT_STEPS,
    max_steps: int = DEFAULT_MAX_STEPS,
    tolerance: float = DEFAULT_TOLERANCE,
    batch_size: int = 32,
) -> list[Explanation]:
    """Per-word attributions of `model`'s score for each text (or pair), by integrated
    gradients on the word embeddings with a `[PAD]` baseline (see the module docstring).

    Args:
      model: a `BertClassifier` with a tokenizer, over a `BertEncoder`.
      texts, pairs: the texts, and the second texts for a pair model; a bare string
        is one text.
      target: the class to explain, by index or label name; None: the predicted class.
      steps: trapezoid intervals to start with; doubled while the completeness
        error is above `tolerance`, up to `max_steps`.
      batch_size: path points evaluated per gradient call.
    """
    _check_explainable(model)
    if steps < 1 or max_steps < steps:
        raise ExplainError(f"need 1 <= steps <= max_steps, got steps={steps}, "
                           f"max_steps={max_steps}")  # fmt: skip
    model._check_pairs(pairs)
    texts = text_batch(texts)
    pairs = None if pairs is None else text_batch(pairs)
    if pairs is not None and len(pairs) != len(texts):
        raise ExplainError(f"{len(texts)} texts but {len(pairs)} pairs")
    return [
        _explain_one(model, text, None if pairs is None else pairs[i], target, steps,
                     max_steps, tolerance, batch_size)
        for i, text in enumerate(texts)
    ]  # fmt: skip


def _explain_one(model, text, pair, target, steps, max_steps, tolerance, batch_size):
    import tensorflow as tf

    tok = model.tokenizer
    table = model.encoder.embeddings.word_embeddings
    enc = tok.encode(text, pair, max_length=model.max_length, truncation=model.truncation,
                     return_offsets=True)  # fmt: skip
    ids = enc["input_word_ids"]
    mask = tf.constant(enc["input_mask"][None])
    type_ids = tf.constant(enc["input_type_ids"][None])
    specials = np.isin(ids, [tok.cls_id, tok.sep_id])
    baseline_ids = np.where(specials, ids, tok.pad_id)
    x = tf.gather(table, ids)
    x_base = tf.gather(table, baseline_ids)

    scores = model({"input_word_ids": ids[None], "input_mask": enc["input_mask"][None],
                    "input_type_ids": enc["input_type_ids"][None]}, training=False)
    scores = np.asarray(scores)[0]
    check = np.asarray(_forward(model, x[None], mask, type_ids))[0]
    if not np.allclose(check, scores, atol=_FORWARD_TOLERANCE):
        raise ExplainError(
            f"the explained forward pass disagrees with the model by "
            f"{np.max(np.abs(check - scores)):.2g}; this model's head or encoder is not "
            "supported by explain()"
        )
    target_index = _target_index(model, target, scores)
    score = float(_target_score(model, scores[None], target_index)[0])

    def gradients(alphas):
        return _path_gradients(model, x, x_base, alphas, mask, type_ids, target_index,
                               batch_size)  # fmt: skip

    n = steps
    grads = gradients(np.linspace(0.0, 1.0, n + 1))
    while True:
        token_attr, base_score = _attributions(model, x, x_base, grads, mask, type_ids,
                                               target_index)  # fmt: skip
        error = completeness_error(float(token_attr.sum()), score - base_score)
        if error <= tolerance or 2 * n > max_steps:
            break
        # Doubling the intervals: the new points are the midpoints of the old ones.
        mids = gradients((np.arange(n) + 0.5) / n)
        merged = np.empty((2 * n + 1, *grads.shape[1:]), dtype=grads.dtype)
        merged[0::2], merged[1::2] = grads, mids
        grads, n = merged, 2 * n
    tokens = tok.convert_ids_to_tokens(ids)
    return Explanation(
        text=text, pair=pair, tokens=tokens, token_attributions=token_attr,
        words=merge_word_pieces(tokens, enc["offsets"], enc["input_type_ids"], token_attr,
                                (text, pair), specials, tok.continuation_prefix),
        scores=scores, target=target_index, target_name=_label(model, target_index),
        predicted_name=_label(model, _predicted(model, scores)), score=score,
        baseline_score=base_score, steps=n, truncated=_is_truncated(tok, text, pair, len(ids)),
    )  # fmt: skip


def merge_word_pieces(
    tokens: Sequence[str],
    offsets: np.ndarray,
    segments: np.ndarray,
    attributions: np.ndarray,
    sources: tuple[str, str | None],
    specials: np.ndarray,
    continuation_prefix: str = "##",
) -> list[WordAttribution]:
    """Words from word pieces: a continuation piece joins the word before it (in the same
    segment); a word's attribution is the sum of its pieces'; special tokens are left out."""
    words: list[WordAttribution] = []
    previous = None  # index of the last piece that was merged into words
    for i, token in enumerate(tokens):
        if specials[i]:
            previous = None
            continue
        start, end = (int(v) for v in offsets[i])
        segment = int(segments[i])
        joins = (previous is not None and continuation_prefix
                 and token.startswith(continuation_prefix) and words
                 and words[-1].segment == segment)  # fmt: skip
        if joins:
            word = words[-1]
            word.end = max(word.end, end)
            word.text = sources[segment][word.start:word.end]
            word.attribution += float(attributions[i])
        else:
            words.append(WordAttribution(sources[segment][start:end], start, end, segment,
                                         float(attributions[i])))  # fmt: skip
        previous = i
    return words


# --------------------------------------------------------------------------- internals


def _check_explainable(model) -> None:
    enc = getattr(model, "encoder", None)
    parts = ("embeddings", "blocks", "pooler")
    if enc is None or not all(hasattr(enc, a) for a in parts) or not hasattr(
        enc.embeddings, "call_with_word_vectors"
    ):
        raise ExplainError(
            f"explain() needs a BertClassifier over a BertEncoder (with embeddings, blocks "
            f"and pooler); this model's encoder is {type(enc).__name__}"
        )
    if getattr(model, "tokenizer", None) is None:
        raise ExplainError("this model has no tokenizer; explain() needs one to split texts")


def _forward(model, word_vectors, mask, type_ids):
    """The classifier's scores from word vectors: the same layers as `model(ids)`, entered
    after the word lookup."""
    import keras

    enc = model.encoder
    x = enc.embeddings.call_with_word_vectors(word_vectors, type_ids, training=False)
    for block in enc.blocks:
        x = block(x, mask, training=False)
    if model.pooling == "pooled":
        h = enc.pooler(x)
    elif model.pooling == "cls":
        h = x[:, 0, :]
    else:
        h = model.get_layer("mean_pooling")(x, mask)
    for i in range(len(model.hidden_units)):
        h = model.get_layer(f"head_hidden_{i}")(h)
    logits = model.get_layer("logits")(keras.ops.cast(h, "float32"))
    return model.get_layer("scores")(logits)


def _target_score(model, scores, target: int):
    """The explained score of each row of `scores` (a tensor or array)."""
    if model.head_type == "binary":
        p = scores[:, 0]
        return p if target == 1 else 1.0 - p
    return scores[:, target]


def _path_gradients(model, x, x_base, alphas, mask, type_ids, target, batch_size):
    """d score / d word vectors at the points x' + alpha (x - x'): (len(alphas), seq, width)."""
    import tensorflow as tf

    out = []
    for lo in range(0, len(alphas), batch_size):
        a = tf.constant(alphas[lo:lo + batch_size], dtype=x.dtype)[:, None, None]
        n = a.shape[0]
        points = x_base[None] + a * (x - x_base)[None]
        with tf.GradientTape() as tape:
            tape.watch(points)
            scores = _forward(model, points, tf.repeat(mask, n, 0), tf.repeat(type_ids, n, 0))
            total = tf.reduce_sum(_target_score(model, scores, target))
        out.append(tape.gradient(total, points).numpy())
    return np.concatenate(out)


def _attributions(model, x, x_base, grads, mask, type_ids, target):
    """Per-token attributions (trapezoid rule over `grads`) and the baseline's score."""
    n = len(grads) - 1
    weights = np.full(n + 1, 1.0 / n)
    weights[[0, -1]] = 0.5 / n
    mean_grad = np.tensordot(weights, grads, axes=1)  # (seq, width)
    delta = (x - x_base).numpy()
    token_attr = np.sum(delta * mean_grad, axis=-1).astype(np.float64)
    base_scores = _forward(model, x_base[None], mask, type_ids)
    return token_attr, float(np.asarray(_target_score(model, base_scores, target))[0])


def _target_index(model, target, scores: np.ndarray) -> int:
    if target is None:
        return _predicted(model, scores)
    if model.head_type == "regression":
        if target not in (0, None):
            raise ExplainError("a regression model has one output; do not give a target")
        return 0
    names = list(model.label_names or [])
    if isinstance(target, str) and not target.isdigit():
        if target not in names:
            raise ExplainError(f"target {target!r} is not one of the labels "
                               f"{', '.join(names) or '(none saved)'}")  # fmt: skip
        return names.index(target)
    index = int(target)
    if not 0 <= index < model.num_classes:
        raise ExplainError(f"target {index} is not a class index (0..{model.num_classes - 1})")
    return index


def _predicted(model, scores: np.ndarray) -> int:
    if model.head_type == "regression":
        return 0
    if model.head_type == "binary":
        return int(scores[0] >= 0.5)
    return int(np.argmax(scores))


def _label(model, index: int) -> str:
    if model.head_type == "regression":
        return "value"
    return model.label_names[index] if model.label_names else str(index)


def _is_truncated(tok, text: str, pair: str | None, used: int) -> bool:
    full = len(tok.token_ids(text)) + (0 if pair is None else len(tok.token_ids(pair)))
    return full + (2 if pair is None else 3) > used
