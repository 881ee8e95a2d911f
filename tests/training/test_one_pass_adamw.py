"""The one-pass AdamW ops of the op library (csrc/core/adamw.cc): the same update as
TensorFlow's ResourceApplyGradientDescent + ResourceApplyAdam, sparse gradients summed by
row, the global norm's sum of squares, and bad input refused with nothing changed."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_ft.layers.fused import fused_library
from keras_bert_ft.training import optimizers
from keras_bert_ft.training.optimizers import create_optimizer

library = fused_library()
pytestmark = pytest.mark.skipif(library is None, reason="the op library is not built")

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-6


def _state(shape, seed):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=shape).astype("float32")),
            tf.Variable(0.1 * rng.normal(size=shape).astype("float32")),
            tf.Variable(np.abs(0.01 * rng.normal(size=shape)).astype("float32"))]


def _step(decay, scale):
    return {"lr": 1e-2, "beta1_power": BETA1**3, "beta2_power": BETA2**3, "decay": decay,
            "grad_scale": scale, "beta1": BETA1, "beta2": BETA2, "epsilon": EPSILON}


def _tensorflow_update(state, grad, decay):
    var, m, v = state
    tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=decay, delta=var.read_value())
    tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=BETA1**3,
                                 beta2_power=BETA2**3, lr=1e-2, beta1=BETA1, beta2=BETA2,
                                 epsilon=EPSILON, grad=grad)  # fmt: skip


@pytest.mark.parametrize("shape", [(1,), (7, 5), (300, 384)])
@pytest.mark.parametrize("decay, scale", [(0.0, 1.0), (1e-3, 1.0), (1e-3, 0.37)])
def test_dense_update_equals_tensorflows_decay_then_adam(shape, decay, scale):
    grad = tf.constant(np.random.default_rng(1).normal(size=shape).astype("float32"))
    ours, theirs = _state(shape, 0), _state(shape, 0)
    library.kbf_apply_adam_w(*(x.handle for x in ours), grad, **_step(decay, scale))
    _tensorflow_update(theirs, grad * scale, decay)
    start = _state(shape, 0)
    assert not np.allclose(ours[0].numpy(), start[0].numpy())  # it moved
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
def test_sparse_rows_are_summed_and_every_row_moves_like_a_dense_zero(index_dtype):
    shape = (9, 4)
    rows = tf.constant([3, 0, 3, 7, 0, 3], index_dtype)  # repeated rows are summed
    values = tf.constant(np.random.default_rng(2).normal(size=(6, 4)).astype("float32"))
    dense = tf.math.unsorted_segment_sum(values, rows, shape[0])
    ours, theirs = _state(shape, 0), _state(shape, 0)
    library.kbf_sparse_apply_adam_w(*(x.handle for x in ours), rows, values,
                                    **_step(1e-3, 0.5))
    _tensorflow_update(theirs, dense * 0.5, 1e-3)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=1e-7)


def test_sum_of_squares_over_blocks_and_inputs():
    rng = np.random.default_rng(3)
    # Sizes around the op's 65,536-element blocks, an empty tensor, a scalar.
    arrays = [rng.normal(size=n).astype("float32") for n in (65_536, 65_537, 200_003, 0, 1)]
    arrays.append(np.float32(2.5))
    got = library.kbf_sum_of_squares([tf.constant(a) for a in arrays])
    want = sum(float(np.sum(np.square(a.astype("float64")))) for a in arrays)
    assert got.shape == () and got.dtype == tf.float32
    assert float(got) == pytest.approx(want, rel=1e-6)
    again = library.kbf_sum_of_squares([tf.constant(a) for a in arrays])
    assert float(again) == float(got)  # fixed blocks: the same bits every time
    assert np.isinf(float(library.kbf_sum_of_squares([tf.constant([np.inf, 1.0])])))


def test_bad_input_is_refused_and_nothing_changes():
    state = _state((4, 2), 0)
    before = [x.numpy().copy() for x in state]
    handles = [x.handle for x in state]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = 9 is not in"
                                                              r" \[0, 4\)"):  # fmt: skip
        library.kbf_sparse_apply_adam_w(*handles, tf.constant([0, 9]), tf.ones([2, 2]),
                                        **_step(0.0, 1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[0\] = -1"):
        library.kbf_sparse_apply_adam_w(*handles, tf.constant([-1]), tf.ones([1, 2]),
                                        **_step(0.0, 1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="values must be"):
        library.kbf_sparse_apply_adam_w(*handles, tf.constant([0]), tf.ones([1, 3]),
                                        **_step(0.0, 1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="grad must have var's shape"):
        library.kbf_apply_adam_w(*handles, tf.ones([4, 3]), **_step(0.0, 1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one shape"):
        library.kbf_apply_adam_w(state[0].handle, _state((3, 2), 1)[1].handle, state[2].handle,
                                 tf.ones([4, 2]), **_step(0.0, 1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lr must be a scalar"):
        library.kbf_apply_adam_w(*handles, tf.ones([4, 2]), **{**_step(0.0, 1.0),
                                                               "lr": [1e-2, 1e-2]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="beta1 and beta2"):
        library.kbf_apply_adam_w(*handles, tf.ones([4, 2]), **{**_step(0.0, 1.0), "beta1": 1.0})
    for a, b in zip(before, state, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_optimizer_uses_the_ops_and_leaves_the_clip_scale_to_them():
    var = tf.Variable(np.ones((3, 2), "float32"))
    table = tf.Variable(np.ones((5, 2), "float32"))
    opt = create_optimizer(1e-2, 10, warmup_ratio=0.0, clipnorm=1.0)
    opt.build([var, table])
    grads = [tf.fill([3, 2], 10.0),
             tf.IndexedSlices(tf.fill([2, 2], 10.0), tf.constant([1, 1]), tf.constant([5, 2]))]
    step = tf.function(lambda: opt.apply_gradients(zip(grads, [var, table], strict=True)))
    op_types = {op.type for op in step.get_concrete_function().graph.get_operations()}
    assert {"KbfApplyAdamW", "KbfSparseApplyAdamW", "KbfSumOfSquares"} <= op_types
    assert not op_types & {"ResourceApplyAdam", "ResourceApplyGradientDescent", "Square"}
    step()
    assert opt._grad_scale is None  # the scale never outlives its step
    assert np.all(var.numpy() < 1.0) and np.all(table.numpy()[1] < 1.0)


@pytest.mark.parametrize("clipnorm", [None, 0.5])
def test_updates_equal_with_and_without_the_ops(monkeypatch, clipnorm):
    """Three fit-like steps of a dense and a sparse gradient: the one-pass ops (clip scale
    applied inside) give TensorFlow's fused kernels' result."""
    rng = np.random.default_rng(4)
    grads = [(rng.normal(size=(6, 3)).astype("float32"),
              (rng.normal(size=(4, 3)).astype("float32"), np.array([0, 5, 0, 2])))
             for _ in range(3)]
    results = {}
    for one_pass in (True, False):
        if not one_pass:
            monkeypatch.setattr(optimizers, "one_pass_library", lambda: None)
        var = tf.Variable(np.linspace(-1, 1, 18, dtype="float32").reshape(6, 3))
        table = tf.Variable(np.linspace(1, 2, 24, dtype="float32").reshape(8, 3))
        opt = create_optimizer(1e-2, 3, warmup_ratio=0.0, weight_decay=0.1, clipnorm=clipnorm)
        opt.build([var, table])
        for dense, (values, rows) in grads:
            opt.apply_gradients([(tf.constant(dense), var),
                                 (tf.IndexedSlices(tf.constant(values), tf.constant(rows),
                                                   tf.constant([8, 3])), table)])
        results[one_pass] = [var.numpy(), table.numpy(), *[v.numpy() for v in opt.variables]]
    for a, b in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
