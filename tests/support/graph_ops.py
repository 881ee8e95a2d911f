"""The op types a traced function runs, its branch and body functions included."""

from __future__ import annotations

import tensorflow as tf


def traced_nodes(fn: tf.types.experimental.GenericFunction) -> list:
    """Every node of `fn`'s concrete graph (no arguments) and of its library functions
    (the branches of its `cond`s)."""
    graph_def = fn.get_concrete_function().graph.as_graph_def()
    return [*graph_def.node, *(node for f in graph_def.library.function for node in f.node_def)]


def traced_op_types(fn: tf.types.experimental.GenericFunction) -> set[str]:
    """Every op type of `fn`'s concrete graph (no arguments) and of its library functions."""
    return {node.op for node in traced_nodes(fn)}


def ops_reaching_outputs(concrete: tf.types.experimental.ConcreteFunction) -> list:
    """The ops of `concrete`'s graph that its outputs depend on (through data or control
    inputs): what TensorFlow runs once it has pruned the function's dead code."""
    seen, stack = set(), [t.op for t in concrete.outputs]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack += [t.op for t in op.inputs] + list(op.control_inputs)
    return [op for op in concrete.graph.get_operations() if op.name in seen]
