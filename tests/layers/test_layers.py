"""BERT layers and BertEncoder on small random configs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers import (
    BertEmbeddings,
    BertEncoder,
    MultiHeadSelfAttention,
    Pooler,
    TransformerBlock,
    padding,
)

TINY = dict(vocab_size=97, hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64,
            max_position_embeddings=40)


def batch(seed=0, batch_size=3, seq=11, vocab=97):
    rng = np.random.default_rng(seed)
    lengths = [seq, 7, 3][:batch_size]
    mask = np.array([[1] * n + [0] * (seq - n) for n in lengths], "int32")
    ids = rng.integers(1, vocab, (batch_size, seq)).astype("int32") * mask
    types = np.zeros_like(ids)
    types[:, 4:] = 1
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types * mask}


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_encoder_outputs():
    enc = BertEncoder(BertConfig(**TINY))
    out = enc(batch())
    assert set(out) == {"sequence_output", "pooled_output", "encoder_outputs",
                        "first_token_output", "first_token_pooled_output"}
    assert tuple(out["sequence_output"].shape) == (3, 11, 32)
    assert tuple(out["pooled_output"].shape) == (3, 32)
    assert len(out["encoder_outputs"]) == 3
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])
    assert {i.name for i in enc.inputs} == {"input_word_ids", "input_mask", "input_type_ids"}
    # 5 embedding weights, 16 per block, 2 pooler weights, each named exactly once.
    assert len(enc.weight_map()) == 5 + 16 * 3 + 2 == len(enc.weights)


@pytest.mark.parametrize("packed", [True, False])
def test_padding_is_ignored(packed, monkeypatch):
    # 36 % of batch() is padding: the blocks skip it unless told never to.
    monkeypatch.setattr(padding, "MIN_PADDING_FRACTION", 0.0 if packed else 1.01)
    enc = BertEncoder(BertConfig(**TINY))
    x = batch()
    y = {k: v.copy() for k, v in x.items()}
    y["input_word_ids"][1, 7:] = 5  # change only padded positions
    a, b = enc(x)["sequence_output"].numpy(), enc(y)["sequence_output"].numpy()
    np.testing.assert_allclose(a[1, :7], b[1, :7], atol=1e-6)
    if packed:  # padded rows are never computed
        assert not a[1, 7:].any() and not b[1, 7:].any()
    else:  # they are computed, from the changed inputs
        assert np.abs(a[1, 7:] - b[1, 7:]).max() > 1e-3
    # The same sentence alone, without padding, gives the same vectors.
    alone = {k: v[1:2, :7] for k, v in x.items()}
    np.testing.assert_allclose(enc(alone)["sequence_output"][0], a[1, :7], atol=1e-5)


def test_dropout_only_in_training():
    enc = BertEncoder(BertConfig(**TINY))
    x = batch()
    np.testing.assert_array_equal(enc(x)["pooled_output"], enc(x)["pooled_output"])
    a = enc(x, training=True)["pooled_output"]
    b = enc(x, training=True)["pooled_output"]
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize(
    "layer",
    [
        BertEmbeddings(50, 16, 20, 2, embedding_size=8, dropout=0.2, name="e"),
        MultiHeadSelfAttention(16, 4, dropout=0.3, name="a"),
        TransformerBlock(16, 2, 32, hidden_act="gelu_tanh", dropout=0.0, name="t"),
        Pooler(16, initializer_range=0.1, name="p"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in layer.weights]


def test_keras_file_round_trip(tmp_path):
    enc = BertEncoder(BertConfig(**TINY, hidden_act="gelu_tanh", embedding_size=16))
    x = batch()
    path = tmp_path / "enc.keras"
    enc.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again, BertEncoder)
    assert again.config == enc.config
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(again(x)[key], enc(x)[key])


def test_gelu_is_the_configured_one():
    # Wide initial weights, so that activations reach where the two GELUs differ.
    exact = BertEncoder(BertConfig(**TINY, initializer_range=0.5))
    tanh = BertEncoder(BertConfig(**TINY, initializer_range=0.5, hidden_act="gelu_tanh"))
    tanh.set_weights(exact.get_weights())
    x = batch()
    diff = np.abs(exact(x)["sequence_output"] - tanh(x)["sequence_output"]).max()
    assert 1e-6 < diff < 1e-1
    block = exact.blocks[0]
    v = np.linspace(-3, 3, 7, dtype="float32")
    from math import erf

    want = [0.5 * t * (1 + erf(t / np.sqrt(2))) for t in v]
    np.testing.assert_allclose(block.activation(v), want, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    ref = BertEncoder(BertConfig(**TINY))
    keras.mixed_precision.set_global_policy(policy)
    enc = BertEncoder(BertConfig(**TINY))
    enc.set_weights(ref.get_weights())
    assert all(w.dtype == "float32" for w in enc.weights)
    x = batch()
    out = enc(x)
    assert out["sequence_output"].dtype == policy.split("_")[1]
    got = tf.cast(out["sequence_output"], tf.float32).numpy()
    assert np.isfinite(got).all()
    tol = 2e-2 if policy == "mixed_float16" else 1e-1
    np.testing.assert_allclose(got, ref(x)["sequence_output"], atol=tol)
    # A training step under the policy gives finite gradients for every weight.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(enc(x, training=True)["pooled_output"], tf.float32))
    grads = tape.gradient(loss, enc.trainable_variables)
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g)).all() for g in grads)


def test_jit_compile_matches_eager():
    enc = BertEncoder(BertConfig(**TINY))
    x = batch()
    compiled = tf.function(lambda inputs: enc(inputs), jit_compile=True)
    got = compiled(x)
    # At real tokens: XLA keeps the padded path, eager skips the padding (zero there).
    real = x["input_mask"] == 1
    np.testing.assert_allclose(got["sequence_output"].numpy()[real],
                               enc(x)["sequence_output"].numpy()[real], atol=1e-5)
    # And through Keras' own compile path.
    enc.compile(jit_compile=True)
    pred = enc.predict(x, verbose=0)
    np.testing.assert_allclose(pred["pooled_output"], enc(x)["pooled_output"], atol=1e-5)


def test_factorised_embeddings():
    enc = BertEncoder(BertConfig(**TINY, embedding_size=8))
    names = enc.weight_map()
    assert tuple(names["embeddings/word_embeddings"].shape) == (97, 8)
    assert tuple(names["encoder/embedding_hidden_mapping_in/kernel"].shape) == (8, 32)
    assert tuple(enc(batch())["sequence_output"].shape) == (3, 11, 32)


def test_shared_layers():
    shared = BertEncoder(BertConfig(**TINY, share_layers=True))
    plain = BertEncoder(BertConfig(**TINY))
    # One block's weights however deep.
    assert len(shared.weights) == len(plain.weights) - 2 * 16
    assert not any(n.startswith("encoder/layer_1/") for n in shared.weight_map())
    outs = shared(batch())["encoder_outputs"]
    assert len(outs) == 3
    assert np.abs(outs[0] - outs[1]).max() > 1e-3  # applied again, not copied
    # Applying the one block by hand reproduces the stack.
    x = batch()
    h = shared.embeddings(x["input_word_ids"], x["input_type_ids"])
    for _ in range(3):
        h = shared.blocks[0](h, x["input_mask"])
    np.testing.assert_allclose(h, outs[-1], atol=1e-5)


def test_gradients_reach_every_weight():
    enc = BertEncoder(BertConfig(**TINY))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(enc(batch(), training=True)["pooled_output"] ** 2)
    grads = tape.gradient(loss, enc.trainable_variables)
    assert len(grads) == len(enc.weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_config_readers_translate_gelu():
    hf = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 16, "hidden_act": "gelu", "model_type": "bert"}
    assert BertConfig.from_hf_dict(hf).hidden_act == "gelu_exact"
    assert BertConfig.from_hf_dict({**hf, "hidden_act": "gelu_new"}).hidden_act == "gelu_tanh"
    assert BertConfig.from_google_dict(hf).hidden_act == "gelu_tanh"
    c = BertConfig.from_hf_dict(hf)
    assert BertConfig.from_hf_dict(c.to_hf_dict()) == c
    assert BertConfig.from_google_dict(c.to_google_dict()) == c
    kh = {"vocabulary_size": 10, "num_layers": 1, "num_heads": 2, "hidden_dim": 8,
          "intermediate_dim": 16, "dropout": 0.0, "max_sequence_length": 64, "num_segments": 2}
    k = BertConfig.from_keras_hub_dict({"class_name": "BertBackbone", "config": kh})
    assert (k.vocab_size, k.hidden_act, k.max_position_embeddings) == (10, "gelu_tanh", 64)
    with pytest.raises(ValueError, match="not divisible"):
        BertConfig(hidden_size=10, num_heads=3)
    with pytest.raises(ValueError, match="model_type"):
        BertConfig.from_hf_dict({**hf, "model_type": "roberta"})


def reference_attention(layer: MultiHeadSelfAttention, x, mask):
    """Textbook attention with the layer's four Dense weights, in NumPy (float64)."""
    def dense(d, v):
        return v @ np.asarray(d.kernel, np.float64) + np.asarray(d.bias, np.float64)

    b, s, h = x.shape
    n, d = layer.num_heads, layer.head_size

    def heads(v):
        return v.reshape(b, s, n, d).transpose(0, 2, 1, 3)

    x = x.astype(np.float64)
    q, k, v = (heads(dense(p, x)) for p in (layer.query, layer.key, layer.value))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
    return dense(layer.output_dense, context)


def test_fused_attention_matches_reference():
    layer = MultiHeadSelfAttention(32, 4, dropout=0.0)
    rng = np.random.default_rng(1)
    for v in layer.weights:  # non-zero biases, so a misplaced bias would show
        v.assign(rng.normal(0, 0.2, v.shape).astype("float32"))
    x = rng.normal(size=(3, 11, 32)).astype("float32")
    mask = batch()["input_mask"]
    got = np.asarray(layer(x, mask))
    np.testing.assert_allclose(got, reference_attention(layer, x, mask), atol=1e-5)
    # Eager and graph agree (the graph gets oneDNN's fused kernels).
    graph = tf.function(lambda x, m: layer(x, m))(tf.constant(x), tf.constant(mask))
    np.testing.assert_allclose(np.asarray(graph), got, atol=1e-5)


def test_block_is_2d_matmuls_with_bias_add():
    """Each block runs 4 2-D MatMul + BiasAdd (fused q/k/v, attention output, FFN in and
    out), the pattern TF's oneDNN rewrite fuses; no Einsum/tensordot, no float32 softmax.
    The block's two paths (padding skipped or not, layers/padding.py) are the two branch
    functions of its `If`; each has the pattern."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    block = TransformerBlock(32, 4, 64)
    spec = (tf.TensorSpec([None, None, 32], tf.bfloat16), tf.TensorSpec([None, None], tf.int32))
    graph_def = tf.function(lambda x, m: block(x, m)).get_concrete_function(
        *spec).graph.as_graph_def()
    branches = [f.node_def for f in graph_def.library.function
                if any(n.op == "MatMul" for n in f.node_def)]
    assert len(branches) == 2
    for nodes in branches:
        ops = [n.op for n in nodes]
        assert ops.count("MatMul") == 4 and ops.count("BiasAdd") == 4
        assert ops.count("BatchMatMulV2") == 2  # scores and context
        assert "Einsum" not in ops and ops.count("Transpose") == 2  # q/k/v together, context
        softmax = [n for n in nodes if n.op == "Softmax"]
        assert len(softmax) == 1 and softmax[0].attr["T"].type == tf.bfloat16.as_datatype_enum


def test_mixed_precision_casts_looked_up_embedding_rows_not_whole_tables():
    """Under mixed_bfloat16 the output is bfloat16, equal to the float32 layer's output at
    bfloat16 precision, and the graph never casts a whole table (vocabulary or positions)."""
    from keras_bert_ft.layers import BertEmbeddings

    ids = tf.constant([[5, 17, 3, 999]])
    types = tf.constant([[0, 0, 1, 1]])
    plain = BertEmbeddings(1000, 16, max_position_embeddings=32, dropout=0.0)
    mixed = BertEmbeddings(1000, 16, max_position_embeddings=32, dropout=0.0,
                           dtype="mixed_bfloat16")
    mixed.set_weights(plain.get_weights())
    fn = tf.function(lambda: mixed(ids, types))
    out = fn()
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32), plain(ids, types), atol=3e-2)
    casts = [op.outputs[0].shape.as_list()
             for op in fn.get_concrete_function().graph.get_operations() if op.type == "Cast"]
    assert casts and [1000, 16] not in casts and [32, 16] not in casts and [2, 16] not in casts
