"""Export a classifier for TF Serving: raw text in, labels out, the training ids.

`export_for_serving` writes `<export_dir>/<version>/`, the layout TF Serving
polls (`--model_base_path=<export_dir>`), atomically: the SavedModel is built
in a hidden temporary folder beside the versions and renamed into place, and
an existing version is never replaced. The SavedModel has two signatures:

- `serving_default`: `text` (and `text_pair` for pair models), 1-D strings;
  tokenized in the graph by `ServingTokenizer` (the C++ tokenizer's ids), or
  with `tokenizer_ops="custom"` by the `KbfWordPieceEncode` custom op (the C++
  tokenizer itself; the server must load its op library: docs/custom_op.md).
- `serve_ids`: `input_word_ids`, `input_mask`, `input_type_ids` (int32, 2-D).

Both return `probabilities` (the model's scores), `label_id` and `label`.
A multi-label head returns `probabilities` (one sigmoid score per label),
`label_mask` (int64 [rows, labels], 1 where the score reaches the label's
threshold) and `labels` (string [rows, labels]: each row's labels above
threshold, in label order, padded with empty strings); the per-label
thresholds (the model's tuned ones, else 0.5) are constants of the graph and
are listed in `assets/thresholds.txt`.

A windowed classifier (`window_stride` set) serves each text as its
overlapping windows, built in the graph, and pools their scores back per text
(`long_documents`); `serve_ids` then scores the rows it is given, unpooled.
`assets/` holds `vocab.txt` and `labels.txt`; `assets.extra/` holds
`tf_serving_warmup_requests` (PredictionLog records TF Serving runs at load).

The variables are the model's weights only: the Keras model itself is not
tracked, so its optimizer (two Adam slots per weight), iteration counter and
metrics stay out of the export.

`precision="bfloat16"` serves the encoder in bfloat16 (a float32 model too):
the transformer's projection weights are stored in bfloat16, cast once at
export (the same number of values), so the graph casts no weights per call;
the other weights stay float32, and the probabilities are float32 as always.

`parallel_groups=2` (the default) stores each transformer block's projections in
two parts, by heads and by feed-forward units, so that the graph holds two
independent chains of matmuls per block, which the server's inter-op threads run
on two cores at once; their products are added (the same values, rounded in
another order). 1 stores each projection whole.

Before publishing, the SavedModel's ops are checked against those TF Serving's
model server links (`op_check`); an export it could not load raises `ExportError`
and leaves no version folder behind.

The temporary folder is named `.export-<host>-<pid>-<random>`; each export
first removes those of this host whose process is gone (killed exports).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from keras_bert_ft.cpu_features import warn_if_bfloat16_is_slow
from keras_bert_ft.errors import require_positive_whole
from keras_bert_ft.layers.precast import projection_copies, substituted_projections
from keras_bert_ft.lora import merged_lora
from keras_bert_ft.serving.op_check import CUSTOM_TOKENIZER_OPS, check_servable
from keras_bert_ft.serving.signatures import (
    ID_INPUTS,
    IDS_SIGNATURE,
    PAIR_INPUT,
    TEXT_INPUT,
    TEXT_SIGNATURE,
)
from keras_bert_ft.serving.warmup import WARMUP_FILE, text_requests, write_warmup_requests
from keras_bert_ft.tokenizers.graph import ServingTokenizer
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

PRECISIONS = ("float32", "bfloat16")
DEFAULT_PARALLEL_GROUPS = 2


class ServingModule(tf.Module):
    """The classifier, its in-graph tokenizer and label names, with serving signatures."""

    def __init__(self, model, serving_tokenizer: ServingTokenizer, label_names: Sequence[str],
                 pairs: bool, assets: dict[str, str], precision: str = "float32",
                 thresholds: Sequence[float] | None = None,
                 windows: tuple[int, str] | None = None,
                 parallel_groups: int = DEFAULT_PARALLEL_GROUPS) -> None:
        super().__init__(name="keras_bert_ft_serving")
        self.windows = windows  # (stride, pooling): serve_text scores windows and pools them
        # Track the weights, not the Keras model: tracking the model would save its
        # optimizer slots, iteration counter and metric variables too. A partial is
        # not trackable, so the model stays out of the SavedModel's object graph.
        # The transformer's projections are stored once in the compute dtype (q, k, v
        # as one fused, pre-scaled kernel) and stand in for their sources, so that the
        # graph neither casts nor concatenates weights on every call (for float32,
        # 7 % of a batch-1 call).
        bfloat16 = precision == "bfloat16"
        # With `parallel_groups`, each block's heads and feed-forward units are stored in
        # that many parts that the server runs side by side (`layers.precast`).
        copies, sources = projection_copies(model, tf.bfloat16 if bfloat16 else tf.float32,
                                            only_computing_in_dtype=not bfloat16,
                                            groups=parallel_groups)
        replaced = {id(v) for v in sources}
        self.projection_weights = [v for parts in copies.values() for pair in parts
                                   for v in pair if v is not None]
        self._tracing = (  # (a partial is not tracked either)
            functools.partial(bfloat16_tracing, model, copies) if bfloat16
            else functools.partial(substituted_projections, copies))
        self.model_weights = [w for w in model.weights if id(w) not in replaced]
        self._run_model = functools.partial(model, training=False)
        self.tokenizer = serving_tokenizer
        self.pairs = pairs
        self.num_outputs = int(model.outputs[0].shape[-1])
        self.binary = self.num_outputs == 1
        self.label_names = tf.constant(list(label_names), tf.string)
        # Multi-label heads: per-label thresholds (None for single-label heads).
        self.thresholds = (None if thresholds is None
                           else tf.constant(list(thresholds), tf.float32))
        self.vocab_asset = tf.saved_model.Asset(assets["vocab.txt"])
        self.labels_asset = tf.saved_model.Asset(assets["labels.txt"])
        if "thresholds.txt" in assets:
            self.thresholds_asset = tf.saved_model.Asset(assets["thresholds.txt"])
        text = tf.TensorSpec([None], tf.string, name=TEXT_INPUT)
        if pairs:
            pair = tf.TensorSpec([None], tf.string, name=PAIR_INPUT)
            self.serve_text = tf.function(self._serve_pairs, input_signature=[text, pair])
        else:
            self.serve_text = tf.function(self._serve_texts, input_signature=[text])
        ids = [tf.TensorSpec([None, None], tf.int32, name=n) for n in ID_INPUTS]
        self.serve_ids = tf.function(self._serve_ids, input_signature=ids)

    def tracing(self) -> contextlib.AbstractContextManager:
        """Trace the signatures inside this block (see `bfloat16_tracing`)."""
        return self._tracing()

    def _serve_texts(self, text):
        if self.windows is not None:
            return self._classify_windows(text)
        return self._classify(self.tokenizer(text))

    def _classify_windows(self, text):
        """Each text's windows built in the graph, scored, and pooled back per text."""
        stride, pooling = self.windows
        rows, docs = self.tokenizer.windows(text, stride)
        num_docs = tf.size(text)
        scores = self._classify(rows)["probabilities"]
        if pooling == "mean":
            pooled = tf.math.unsorted_segment_mean(scores, docs, num_docs)
        else:
            pooled = tf.math.unsorted_segment_max(scores, docs, num_docs)
            if not self.binary:  # a softmax row sums to 1 again
                pooled /= tf.reduce_sum(pooled, axis=-1, keepdims=True)
        return self._answer(pooled)

    def _serve_pairs(self, text, text_pair):
        return self._classify(self.tokenizer(text, text_pair))

    def _serve_ids(self, input_word_ids, input_mask, input_type_ids):
        return self._classify(dict(input_word_ids=input_word_ids, input_mask=input_mask,
                                   input_type_ids=input_type_ids))

    def _classify(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        batch = tf.shape(inputs["input_word_ids"])[0]
        # An empty batch gets an empty answer without running the encoder on no rows.
        scores = tf.cond(
            batch > 0,
            lambda: tf.cast(self._run_model(inputs), tf.float32),
            lambda: tf.zeros([0, self.num_outputs], tf.float32))
        return self._answer(scores)

    def _answer(self, scores: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.thresholds is not None:
            return multi_label_outputs(scores, self.thresholds, self.label_names)
        if self.binary:
            label_id = tf.cast(scores[:, 0] >= 0.5, tf.int64)
        else:
            label_id = tf.argmax(scores, axis=-1)
        return {"probabilities": scores, "label_id": label_id,
                "label": tf.gather(self.label_names, label_id)}


def multi_label_outputs(scores: tf.Tensor, thresholds: tf.Tensor,
                        label_names: tf.Tensor) -> dict[str, tf.Tensor]:
    """The multi-label answer: scores, a 0/1 mask per label, and each row's label names
    above threshold (left-aligned, padded with "" to one column per label)."""
    on = scores >= thresholds
    rows = tf.ragged.boolean_mask(tf.broadcast_to(label_names, tf.shape(scores)), on)
    labels = rows.to_tensor(default_value="", shape=tf.shape(scores, out_type=tf.int64))
    return {"probabilities": scores, "label_mask": tf.cast(on, tf.int64), "labels": labels}


@contextlib.contextmanager
def bfloat16_encoder(model):
    """Inside this block `model.encoder`'s layers compute in bfloat16 (mixed_bfloat16:
    float32 variables); their own policies come back after it."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("a bfloat16 export needs a model with a BERT encoder (`model.encoder`)")
    layers = [encoder, *encoder._flatten_layers(include_self=False, recursive=True)]
    saved = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            if layer.dtype_policy.variable_dtype == "float32":
                layer.dtype_policy = "mixed_bfloat16"
        yield
    finally:
        for layer, policy in zip(layers, saved, strict=True):
            layer.dtype_policy = policy


@contextlib.contextmanager
def bfloat16_tracing(model, copies: dict[int, tuple]):
    """The encoder computes in bfloat16 and its layers read the bfloat16 `copies`."""
    with bfloat16_encoder(model), substituted_projections(copies):
        yield


def next_version(export_dir: str | os.PathLike) -> int:
    """One more than the highest numeric version folder under `export_dir` (1 if none)."""
    path = Path(export_dir)
    versions = [int(p.name) for p in path.iterdir() if p.name.isdigit()] if path.is_dir() else []
    return max(versions, default=0) + 1


def model_label_names(model, label_names: Sequence[str] | None) -> list[str]:
    """Label strings in id order: given, the model's own, or the ids as text."""
    names = label_names if label_names is not None else getattr(model, "label_names", None)
    count = int(model.outputs[0].shape[-1])
    count = 2 if count == 1 else count  # one sigmoid unit: labels 0 and 1
    if names is None:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} label names for a model with {count} classes")
    return [str(n) for n in names]


TOKENIZER_OPS = ("tf_text", "custom")


def in_graph_tokenizer(tokenizer: WordPieceTokenizer, tokenizer_ops: str, max_length: int,
                       truncation: str, vocab_file: str | os.PathLike,
                       head_tokens: int | None = None) -> tf.Module:
    """The serving graph's tokenizer: core TF + tensorflow-text ops, or the custom op."""
    if tokenizer_ops == "custom":
        from keras_bert_ft.tokenizers.op import CustomOpTokenizer  # loads the op library

        return CustomOpTokenizer(tokenizer, max_length=max_length, truncation=truncation,
                                 vocab_file=vocab_file, head_tokens=head_tokens)
    return ServingTokenizer(tokenizer, max_length=max_length, truncation=truncation,
                            head_tokens=head_tokens)


def export_pairs(model, pairs: bool | None) -> bool:
    """Whether to export for sentence pairs: `pairs` if given, else the model's own record.

    A `pairs` that contradicts `model.pairs` raises `ValueError`. A model saved
    before `pairs` was recorded (`model.pairs` is None) exports single texts,
    with a warning, unless `pairs` says otherwise.
    """
    known = getattr(model, "pairs", None)
    if pairs is None:
        if known is None:
            warnings.warn("the model does not record whether it classifies sentence pairs; "
                          "exporting it for single texts (pass pairs=True to export a pair "
                          "model)", stacklevel=3)
            return False
        return bool(known)
    if known is not None and bool(pairs) != bool(known):
        if known:
            raise ValueError("this model was trained on sentence pairs; export it with "
                             "pairs=True (CLI: --pairs)")
        raise ValueError("this model was trained on single texts; export it with pairs=False "
                         "(CLI: --single)")
    return bool(pairs)


def max_positions(model) -> int | None:
    """The most tokens the model's encoder can take (its position embeddings), if known."""
    config = getattr(getattr(model, "encoder", None), "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return None if value is None else int(value)


def check_max_length(model, max_length: int) -> None:
    """Raise `ValueError` unless `max_length` is positive and fits the encoder's positions."""
    require_positive_whole(max_length, "max_length")
    limit = max_positions(model)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length {max_length} is more than the encoder's "
                         f"{limit} position embeddings; use at most {limit}")


def export_for_serving(
    model,
    tokenizer: WordPieceTokenizer | None = None,
    export_dir: str | os.PathLike = "saved_models/model",
    version: int | None = None,
    *,
    pairs: bool | None = None,
    label_names: Sequence[str] | None = None,
    max_length: int | None = None,
    truncation: str | None = None,
    warmup_texts: Sequence[str] | None = None,
    tokenizer_ops: str = "tf_text",
    precision: str = "float32",
    serving_config: bool = True,
    parallel_groups: int = DEFAULT_PARALLEL_GROUPS,
) -> Path:
    """Write a TF Serving SavedModel of `model` to `<export_dir>/<version>/`; return that path.

    Args:
        model: a Keras model taking the three id inputs (e.g. `BertClassifier`)
            and returning class scores (softmax, one sigmoid unit, or a
            multi-label head: one sigmoid per label, cut at the model's
            `decision_thresholds()`).
        tokenizer: the training tokenizer; defaults to `model.tokenizer`.
        export_dir: the model's base path (`saved_models/<name>`).
        version: the version number; default one more than the highest there.
            An existing version is never overwritten (`FileExistsError`).
        pairs: serve sentence pairs (`text` + `text_pair`). Default: the
            model's `pairs`; single texts (with a warning) when the model does
            not record it. A value contradicting `model.pairs` raises `ValueError`.
        label_names: label strings by id; default `model.label_names`.
        max_length, truncation: tokenization; default the model's own, else 128
            and "longest_first". `max_length` may not exceed the encoder's
            position embeddings.
        warmup_texts: texts for the warm-up requests.
        tokenizer_ops: "tf_text" (default: core TF and tensorflow-text ops,
            which stock TF Serving links) or "custom" (the KbfWordPieceEncode
            op: in-process TF, or a model server built with it).
        precision: "float32" (default) or "bfloat16": the encoder computes in
            bfloat16 with its projection weights stored in bfloat16 (cast once
            here); faster on CPUs with bfloat16 matmuls (AMX, AVX512-BF16),
            probabilities within about 1e-2 of float32's.
        serving_config: also write `models.config` and `batching_parameters.txt`
            into the parent of `export_dir` (see `keras_bert_ft.serving.config`).
        parallel_groups: each transformer block's heads and feed-forward units run
            as this many independent chains of matmuls, which the server's
            executor runs on different cores at once (default 2; 1 keeps each
            projection whole). The same weights, stored split; outputs equal up to
            float rounding. Faster on CPUs where one core runs a small matmul better
            than two do (docs/speed.md, round 14).

    Raises `ExportError`, leaving no version folder, when the written graph uses an
    op that TF Serving's model server does not link (with `tokenizer_ops="custom"`,
    besides the custom op itself).
    """
    head = getattr(model, "head_type", "softmax")
    if head not in ("softmax", "binary", "multi_label"):
        raise ValueError(f"serving exports classify: a {head!r} head is not supported")
    thresholds = model.decision_thresholds().tolist() if head == "multi_label" else None
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bfloat16":
        warn_if_bfloat16_is_slow("a bfloat16 export served on a CPU like this one")
    if tokenizer_ops not in TOKENIZER_OPS:
        raise ValueError(f"tokenizer_ops must be one of {TOKENIZER_OPS}, got {tokenizer_ops!r}")
    require_positive_whole(parallel_groups, "parallel_groups")
    from keras_bert_ft.tokenizers.preprocessor import TextPreprocessor

    # The model's tokenizer and packing (a plain Keras model has none: the defaults).
    preprocessor = getattr(model, "preprocessor", None) or TextPreprocessor()
    packing = preprocessor.packing
    tokenizer = tokenizer if tokenizer is not None else preprocessor.tokenizer
    if tokenizer is None:
        raise ValueError("pass the tokenizer: the model has none")
    pairs = export_pairs(model, pairs)
    max_length = max_length or packing.max_length
    check_max_length(model, max_length)
    truncation = truncation or packing.truncation
    # Long texts: a windowed model's serve_text builds windows in the graph and pools.
    window_stride = packing.stride
    windows = None if window_stride is None else (window_stride, model.window_pooling)
    if windows is not None and (pairs or tokenizer_ops == "custom"):
        raise ValueError("a windowed model (window_stride) exports for single texts with "
                         "tokenizer_ops='tf_text'")
    names = model_label_names(model, label_names)
    base = Path(export_dir)
    base.mkdir(parents=True, exist_ok=True)
    if version is not None and (int(version) < 1 or (base / str(int(version))).exists()):
        raise FileExistsError(f"{base / str(version)} exists (or is not a positive number); "
                              "versions are never overwritten")

    remove_stale_temp_folders(base)
    # A hidden name (TF Serving only loads folders whose names are numbers) that
    # says which process owns it, so a later export can remove it if that one died.
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{_host()}-{os.getpid()}-", dir=base))
    try:
        staging = tmp / "staging"
        staging.mkdir()
        (staging / "vocab.txt").write_text("\n".join(tokenizer.get_vocab()) + "\n", "utf-8")
        (staging / "labels.txt").write_text("\n".join(names) + "\n", "utf-8")
        asset_names = ["vocab.txt", "labels.txt"]
        if thresholds is not None:
            (staging / "thresholds.txt").write_text(
                "".join(f"{n}\t{t:.9g}\n" for n, t in zip(names, thresholds, strict=True)),
                "utf-8")
            asset_names.append("thresholds.txt")
        serving_tokenizer = in_graph_tokenizer(tokenizer, tokenizer_ops, max_length,
                                               truncation, staging / "vocab.txt",
                                               packing.head_tokens)
        saved = tmp / "model"
        # A LoRA model is served with its adapters folded into the kernels: the
        # graph and variables are those of a plain model.
        with merged_lora(model):
            module = ServingModule(
                model, serving_tokenizer, names, pairs,
                {name: str(staging / name) for name in asset_names}, precision,
                thresholds=thresholds, windows=windows, parallel_groups=parallel_groups)
            with module.tracing():
                tf.saved_model.save(module, str(saved), signatures={
                    TEXT_SIGNATURE: module.serve_text.get_concrete_function(),
                    IDS_SIGNATURE: module.serve_ids.get_concrete_function(),
                })
        # Refuse what the server could not load, before anything is published.
        check_servable(saved, CUSTOM_TOKENIZER_OPS if tokenizer_ops == "custom" else (),
                       shown_as=str(base))
        extra = saved / "assets.extra"
        extra.mkdir()
        write_warmup_requests(extra / WARMUP_FILE, base.name, TEXT_SIGNATURE,
                              text_requests(warmup_texts, pairs))
        published = _publish(saved, base, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if serving_config:
        from keras_bert_ft.serving.config import write_serving_config

        write_serving_config(base)
    return published


# -- temporary folders of killed exports ---------------------------------------

TEMP_PREFIX = ".export-"
_TEMP_NAME = re.compile(r"^\.export-(?P<host>[A-Za-z0-9.]*)-(?P<pid>\d+)-[^-]+$")
# Versions before 0.2 named the folder `.export-<8 random characters>`, with no owner.
_OLD_TEMP_NAME = re.compile(r"^\.export-[a-z0-9_]{8}$")
# No export runs this long, so an ownerless folder older than this is a leftover.
OLD_TEMP_MAX_AGE_S = 24 * 3600


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a folder name."""
    return re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:64]


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (or may: when unsure, yes)."""
    if pid <= 0:
        return True  # 0 and negative ids address process groups, not one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to another user
        return True
    return True


def remove_stale_temp_folders(base: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders under `base` of exports on this host whose process is gone.

    Ownerless folders of older versions go once they are a day old. Folders of
    live processes, of other hosts (a shared file system) and of unknown shape
    are left alone. Returns the folders removed.
    """
    removed = []
    host = _host()
    now = time.time()
    for path in Path(base).glob(TEMP_PREFIX + "*"):
        if not path.is_dir():
            continue
        match = _TEMP_NAME.match(path.name)
        dead = match and match["host"] == host and not process_alive(int(match["pid"]))
        old = (_OLD_TEMP_NAME.match(path.name)
               and now - path.stat().st_mtime > OLD_TEMP_MAX_AGE_S)
        if dead or old:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _publish(saved: Path, base: Path, version: int | None) -> Path:
    """Rename the finished SavedModel to its version folder; never replace one."""
    while True:
        number = int(version) if version is not None else next_version(base)
        target = base / str(number)
        if target.exists():
            if version is not None:
                raise FileExistsError(f"{target} exists; versions are never overwritten")
            continue
        try:
            # os.rename replaces only an empty folder, and a live version is never empty.
            os.rename(saved, target)
            return target
        except OSError as err:
            if version is not None or err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another export took this number first: take the next one.
