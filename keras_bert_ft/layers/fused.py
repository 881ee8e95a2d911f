"""Fused training kernels from the package's op library: dropout, residual add and
LayerNorm in one pass each way (`KbfDropoutAddLayerNorm`, C++ in csrc/core/layer_norm.cc),
and the exact GELU (`KbfGelu`, csrc/core/gelu.cc).

TensorFlow runs that sequence as about a dozen small ops forward and as many backward;
the fused op reads and writes each row once (docs/speed.md, round 4). It is used only
while training in float32 on the CPU, outside XLA, and only where the op library loads:
inference, every export, mixed precision and `jit_compile` keep TensorFlow's own
ops, so a served model needs nothing beyond stock TensorFlow.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from keras_bert_ft.errors import OpLibraryError


@functools.cache
def fused_library():
    """The op library when it loads (its gradient registered, once), else None."""
    try:
        from keras_bert_ft.tokenizers.op import _library as library
    except OpLibraryError:
        return None
    tf.RegisterGradient("KbfDropoutAddLayerNorm")(_dropout_add_layer_norm_grad)
    tf.RegisterGradient("KbfGelu")(_gelu_grad)
    return library


def _dropout_add_layer_norm_grad(op, dy, _mean, _rstd, _keep):
    d_residual, dx, dgamma, dbeta = fused_library().kbf_dropout_add_layer_norm_grad(
        dy, op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[3], op.outputs[1],
        op.outputs[2], rate=op.get_attr("rate"))
    return d_residual, dx, dgamma, dbeta, None


def _gelu_grad(op, dy):
    return fused_library().kbf_gelu_grad(dy, op.inputs[0])


def seed_scalar(seed_generator: keras.random.SeedGenerator) -> tf.Tensor:
    """A fresh int64 seed from a Keras seed generator (it advances the generator, as
    Keras' own dropout does, so `keras.utils.set_random_seed` makes runs repeat)."""
    pair = tf.cast(seed_generator.next(), tf.int64)
    return pair[0] * 1_000_003 + pair[1]


def in_xla_function() -> bool:
    """Whether the function being traced is compiled by XLA (`jit_compile=True`), which
    cannot run the library's ops."""
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@functools.cache
def accelerator_visible() -> bool:
    """Whether TensorFlow sees a GPU (or TPU): the ops have CPU kernels only, and placing
    them on the CPU in the middle of a GPU step would copy every activation twice."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def can_fuse(training, layer_norm: keras.layers.LayerNormalization, x: tf.Tensor) -> bool:
    """Whether `dropout_add_layer_norm` may replace TF's ops for this call."""
    return layer_norm.compute_dtype == "float32" and can_fuse_elementwise(training, x)


def can_fuse_elementwise(training, x: tf.Tensor) -> bool:
    """Whether the library's element-wise training ops (`gelu_exact`) may run on `x`."""
    return (bool(training) and x.dtype == tf.float32 and fused_library() is not None
            and not in_xla_function() and not accelerator_visible())


def gelu_exact(x: tf.Tensor) -> tf.Tensor:
    """GELU with the exact erf, `x * Phi(x)`, forward and gradient one op each
    (`KbfGelu`; erf within 1.5e-7 of the exact value). Call it only where
    `can_fuse_elementwise` says so."""
    return fused_library().kbf_gelu(x)


def dropout_add_layer_norm(residual: tf.Tensor, x: tf.Tensor,
                           layer_norm: keras.layers.LayerNormalization, rate: float,
                           seed: tf.Tensor) -> tf.Tensor:
    """`layer_norm(residual + dropout(x, rate))` over rows `(n, width)`, in one op.

    The dropout mask is drawn from `seed` (an int64 scalar) and the element's position.
    Call it only where `can_fuse` says so.
    """
    return fused_library().kbf_dropout_add_layer_norm(
        residual, x, tf.convert_to_tensor(layer_norm.gamma), tf.convert_to_tensor(layer_norm.beta),
        seed, rate=float(rate), epsilon=float(layer_norm.epsilon))[0]
