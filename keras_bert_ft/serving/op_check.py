"""Which ops TF Serving's model server can run, and a check of a SavedModel against them.

The model server links all of TensorFlow's core ops plus the libraries in
`SUPPORTED_TENSORFLOW_OPS` of tensorflow_serving/model_servers/BUILD
(https://github.com/tensorflow/serving/blob/master/tensorflow_serving/model_servers/BUILD),
which includes `@org_tensorflow_text//tensorflow_text:ops_lib`. That target
(tensorflow_text/BUILD in https://github.com/tensorflow/text) depends on the
op libraries named below; the op names are those each library registers, read
from the registry of tensorflow-text 2.21.
See also https://www.tensorflow.org/tfx/serving/custom_op for ops outside that set.

`export_for_serving` runs `check_servable` on each SavedModel before publishing it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from keras_bert_ft.errors import ExportError

# tensorflow_text:ops_lib dependency -> the ops it registers.
TF_TEXT_OPS_LIB = {
    "boise_offset_converter_cc": ("TFText>BoiseTagsToOffsets", "TFText>OffsetsToBoiseTags"),
    "byte_splitter_cc": ("TFText>ByteSplitByOffsets", "TFText>ByteSplitWithOffsets"),
    "constrained_sequence_op_cc": ("ConstrainedSequence",),
    "fast_bert_normalizer_cc": ("FastBertNormalize",),
    "fast_sentencepiece_tokenizer_cc": ("TFText>FastSentencepieceDetokenize",
                                        "TFText>FastSentencepieceTokenize"),
    "fast_wordpiece_tokenizer_cc": ("FastWordpieceTokenizeWithOffsets",
                                    "TFText>FastWordpieceDetokenize"),
    "mst_ops_cc": ("MaxSpanningTree",),
    "ngrams_op_cc": ("TFText>NgramsStringJoin",),
    "normalize_ops_cc": ("CaseFoldUTF8", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap",
                         "FindSourceOffsets"),
    "phrase_tokenizer_cc": ("PhraseTokenize", "TFText>PhraseDetokenize"),
    "regex_split_ops_cc": ("RegexSplitWithOffsets",),
    "sentence_breaking_ops_cc": ("SentenceFragments",),
    "sentencepiece_tokenizer_cc": ("SentencepieceOp", "SentencepieceTokenizeOp",
                                   "SentencepieceTokenizeWithOffsetsOp",
                                   "SentencepieceDetokenizeOp", "SentencepieceVocabSizeOp",
                                   "SentencepieceIdToStringOp", "SentencepieceStringToIdOp"),
    "split_merge_from_logits_tokenizer_cc": ("TokenizerFromLogits",),
    "split_merge_tokenizer_cc": ("SplitMergeTokenizeWithOffsets",),
    "state_based_sentence_breaker_op_cc": ("SentenceFragmentsV2",),
    "text_similarity_metric_ops_cc": ("RougeL",),
    "trimmer_ops_cc": ("TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim"),
    "unicode_script_tokenizer_cc": ("UnicodeScriptTokenizeWithOffsets",),
    "utf8_binarize_op_cc": ("TFText>Utf8Binarize",),
    "whitespace_tokenizer_cc": ("WhitespaceTokenizeWithOffsets",),
    "whitespace_tokenizer_v2_cc": ("TFText>WhitespaceTokenizeWithOffsetsV2",),
    "wordpiece_tokenizer_cc": ("WordpieceTokenizeWithOffsets",),
}
TF_TEXT_SERVING_OPS = frozenset(op for ops in TF_TEXT_OPS_LIB.values() for op in ops)

# The op of this package's library (tokenizer_ops="custom"): a model server built with
# it (docs/custom_op.md) runs it; stock TF Serving does not.
CUSTOM_TOKENIZER_OPS = frozenset({"KbfWordPieceEncode"})

# Registered by TensorFlow's Python package but run Python code: no model server has them.
PYTHON_ONLY_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def core_tf_ops() -> frozenset[str]:
    """TensorFlow's own ops (those with a generated `tf.raw_ops` wrapper)."""
    import tensorflow as tf

    return frozenset(n for n in dir(tf.raw_ops) if not n.startswith("_")) - PYTHON_ONLY_OPS


def saved_model_ops(export_dir: str | os.PathLike) -> set[str]:
    """Every op type in a SavedModel: its graphs and all their functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(Path(export_dir, "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for meta in proto.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions  # a node may call a library function by its name


def unsupported_ops(export_dir: str | os.PathLike, also_allowed: Iterable[str] = ()) -> list[str]:
    """Ops of a SavedModel that TF Serving's model server does not link, sorted.

    `also_allowed` names ops the intended server has besides (a model server built
    with this package's op library has `CUSTOM_TOKENIZER_OPS`).
    """
    allowed = core_tf_ops() | TF_TEXT_SERVING_OPS | frozenset(also_allowed)
    return sorted(saved_model_ops(export_dir) - allowed)


def check_servable(export_dir: str | os.PathLike, also_allowed: Iterable[str] = (), *,
                   shown_as: str | None = None) -> None:
    """Raise `ExportError` naming the ops of a SavedModel that the server could not run.

    `shown_as` names the export in the message instead of `export_dir` (e.g. the
    model's base folder, when `export_dir` is a temporary folder).
    """
    missing = unsupported_ops(export_dir, also_allowed)
    if missing:
        raise ExportError(
            f"{shown_as or export_dir}: TF Serving's model server cannot run this export: "
            f"its graph uses "
            f"{', '.join(missing)}, which are neither TensorFlow core ops nor "
            "tensorflow-text ops (a tf.py_function or numpy_function runs Python, which no "
            "model server has)")
