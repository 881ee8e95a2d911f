"""The op types a traced function runs, its branch and body functions included."""

from __future__ import annotations

import tensorflow as tf


def traced_op_types(fn: tf.types.experimental.GenericFunction) -> set[str]:
    """Every op type of `fn`'s concrete graph (no arguments) and of its library functions."""
    graph_def = fn.get_concrete_function().graph.as_graph_def()
    return {node.op for node in graph_def.node} | {
        node.op for f in graph_def.library.function for node in f.node_def}
