"""LoRA on a tiny random BERT: what trains, gradients on the fused path (and on the
quantized layer-call path), merging, saving (weights, .keras, adapter files),
several adapters over one base, the export, and `train --lora-rank`."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import save_tiny_hf, texts_and_labels, tiny_encoder, tiny_tokenizer, write_csv

from keras_bert_ft import lora
from keras_bert_ft.models import BertClassifier


def classifier(seed: int = 0, **kwargs) -> BertClassifier:
    return BertClassifier(tiny_encoder(seed), 2, tokenizer=tiny_tokenizer(), max_length=16,
                          pooling="mean", pairs=False, label_names=["neg", "pos"], **kwargs)


def batch(model):
    texts, _ = texts_and_labels(4)
    return model.encode(texts)


def randomize_factors(model, seed: int = 1) -> None:
    """B starts at zero (the adapter does nothing); give it values, as training would."""
    rng = np.random.default_rng(seed)
    for layer in lora.lora_layers(model).values():
        layer.lora_kernel_b.assign(rng.normal(0, 0.2, layer.lora_kernel_b.shape))


def base_kernels(model) -> list[np.ndarray]:
    return [layer._kernel.numpy().copy() for layer in lora.target_layers(model, lora.ALL_TARGETS)
            .values()]


def fit_a_little(model, labels, steps: int = 3, lr: float = 5e-3) -> None:
    from keras_bert_ft.training import compile_classifier

    compile_classifier(model, total_steps=steps, learning_rate=lr, warmup_ratio=0.0)
    x = batch(model)
    model.fit(x, np.array(labels), batch_size=8, epochs=steps, verbose=0)


def test_only_the_factors_and_the_head_train():
    model = classifier()
    before = base_kernels(model)
    settings = lora.enable_lora(model, rank=4, alpha=8, targets=("query", "value"))
    assert settings.scale == 2.0
    names = sorted({v.name for v in model.trainable_weights})
    assert names == ["bias", "kernel", "lora_kernel_a", "lora_kernel_b"]  # factors + logits
    heads = [v for v in model.trainable_weights if "lora" not in v.name]
    assert all(v.path.startswith("logits/") for v in heads), [v.path for v in heads]
    num_layers = len(model.encoder.blocks)
    assert len(lora.lora_variables(model)) == 2 * 2 * num_layers
    trainable, total = lora.trainable_fraction(model)
    assert trainable == sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable < 0.05 * total
    # B = 0: the adapted model computes what the base computes.
    x = batch(model)
    plain = classifier()
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x, verbose=0),
                               atol=1e-6)

    texts, labels = texts_and_labels(4)
    fit_a_little(model, labels)
    # The fused AdamW (with weight decay) updated the factors and left the base alone.
    for old, new in zip(before, base_kernels(model), strict=True):
        np.testing.assert_array_equal(old, new)
    assert all(np.abs(layer.lora_kernel_b.numpy()).max() > 0
               for layer in lora.lora_layers(model).values())
    assert model.optimizer.fused
    assert len(model.optimizer._momentums) == len(model.trainable_weights)


def test_bad_settings_are_refused():
    model = classifier()
    with pytest.raises(ValueError, match="targets must be some of"):
        lora.enable_lora(model, targets=("qurey",))
    with pytest.raises(ValueError, match="rank must be a positive"):
        lora.enable_lora(model, rank=0)
    lora.enable_lora(model, rank=2)
    with pytest.raises(ValueError, match="already enabled"):
        lora.enable_lora(model, rank=2)
    with pytest.raises(ValueError, match="freezes the encoder"):
        classifier(lora_rank=2, train_encoder_layers=1)


def factor_gradients(model) -> list[float]:
    x = batch(model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=False)[:, 0])
    grads = tape.gradient(loss, lora.lora_variables(model))
    return [0.0 if g is None else float(tf.norm(g)) for g in grads]


def test_gradients_reach_every_factor_on_the_fused_path():
    model = classifier()
    lora.enable_lora(model, rank=2, targets=lora.ALL_TARGETS)
    randomize_factors(model)  # with B = 0, A gets no gradient
    grads = factor_gradients(model)
    assert len(grads) == 2 * 6 * len(model.encoder.blocks)
    assert min(grads) > 0


def test_gradients_reach_the_factors_when_layers_are_called_quantized():
    # int8 Dense layers are called as layers (not read as kernels): Keras' LoRA call.
    model = classifier()
    model.quantize("int8")
    lora.enable_lora(model, rank=2)
    randomize_factors(model)
    grads = factor_gradients(model)
    assert min(grads) > 0


def test_merged_and_unmerged_models_agree():
    model = classifier()
    lora.enable_lora(model, rank=4, targets=lora.ALL_TARGETS)
    randomize_factors(model)
    x = batch(model)
    unmerged = model.predict(x, verbose=0)
    base = classifier().predict(x, verbose=0)
    assert np.abs(unmerged - base).max() > 1e-3  # the adapter changes the outputs
    kernels = base_kernels(model)
    weights = len(model.weights)
    with lora.merged_lora(model):
        assert lora.lora_settings(model) is None and not lora.lora_variables(model)
        assert len(model.weights) == weights - 2 * 6 * len(model.encoder.blocks)
        np.testing.assert_allclose(model.predict(x, verbose=0), unmerged, atol=1e-5)
    # Afterwards: the base kernels and the adapter are back exactly.
    for old, new in zip(kernels, base_kernels(model), strict=True):
        np.testing.assert_array_equal(old, new)
    assert len(model.weights) == weights
    np.testing.assert_array_equal(model.predict(x, verbose=0), unmerged)
    assert {v.name for v in model.trainable_weights} >= {"lora_kernel_a", "lora_kernel_b"}

    lora.merge_lora(model)
    assert lora.lora_settings(model) is None
    assert len(model.weights) == weights - 2 * 6 * len(model.encoder.blocks)
    assert all(type(layer) is keras.layers.Dense
               for layer in lora.target_layers(model, lora.ALL_TARGETS).values())
    np.testing.assert_allclose(model.predict(x, verbose=0), unmerged, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        lora.merge_lora(model)


def test_weights_round_trip_keeps_the_factors(tmp_path):
    # Keras' own Dense saves merged kernels and zeroes A and B on load, which would
    # leave a resumed run with no gradient to the factors; LoraDense keeps them.
    model = classifier(lora_rank=2)
    randomize_factors(model)
    x = batch(model)
    expected = model.predict(x, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    other = classifier(lora_rank=2)
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(lora.lora_variables(model), lora.lora_variables(other), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(base_kernels(model), base_kernels(other), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(other.predict(x, verbose=0), expected, atol=1e-6)
    plain = classifier()
    with pytest.raises(ValueError):
        plain.load_weights(tmp_path / "w.weights.h5")


def test_keras_file_round_trip_is_a_lora_model(tmp_path):
    from keras_bert_ft.training.finetune import save_model

    model = classifier(lora_rank=2, lora_alpha=4, lora_targets=("value",),
                       lora_base_model="tiny")
    randomize_factors(model)
    x = batch(model)
    save_model(model, tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert lora.lora_settings(loaded) == lora.LoraSettings(2, 4.0, ("value",), "tiny")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_adapter_file_is_small_and_loads_onto_a_fresh_base(tmp_path):
    model = classifier()
    lora.enable_lora(model, rank=2, base_model="tiny-bert")
    _, labels = texts_and_labels(4)
    fit_a_little(model, labels)
    path = lora.save_adapter(model, tmp_path / "a.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary file left
    header, arrays = lora.read_adapter(path)
    assert header["base_model"] == "tiny-bert" and header["rank"] == 2
    assert header["targets"] == list(lora.DEFAULT_TARGETS)
    assert set(arrays) == set(header["arrays"])
    stored = sum(a.size for a in arrays.values())
    assert stored == lora.trainable_fraction(model)[0]
    assert path.stat().st_size < 4 * stored + 20_000  # float32 values and a small header

    fresh = classifier()
    settings = lora.load_adapter(fresh, path)
    assert settings == lora.lora_settings(model)
    x = batch(model)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_an_adapter_for_another_base_is_refused(tmp_path):
    model = classifier(lora_rank=2, lora_base_model="tiny-bert")
    path = lora.save_adapter(model, tmp_path / "a.npz")
    with pytest.raises(lora.AdapterError, match="tiny-bert, whose weights differ"):
        lora.load_adapter(classifier(seed=5), path)
    other_shape = BertClassifier(tiny_encoder(num_layers=1), 2, pooling="mean")
    with pytest.raises(lora.AdapterError, match="encoder config"):
        lora.load_adapter(other_shape, path)
    three_classes = BertClassifier(tiny_encoder(), 3, pooling="mean")
    with pytest.raises(lora.AdapterError, match="head differs"):
        lora.load_adapter(three_classes, path)
    merged = classifier(lora_rank=2)
    randomize_factors(merged)
    lora.merge_lora(merged)
    with pytest.raises(lora.AdapterError, match="merged kernels"):
        lora.load_adapter(merged, path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(lora.AdapterError, match="not a LoRA adapter file"):
        lora.load_adapter(model, tmp_path / "junk.npz")
    with pytest.raises(lora.AdapterError, match="no such adapter"):
        lora.load_adapter(model, tmp_path / "missing.npz")


def test_several_adapters_over_one_base(tmp_path):
    _, labels = texts_and_labels(4)
    flipped = [1 - y for y in labels]
    trained = {}
    for name, targets, rank, ys in (("a", ("query", "value"), 2, labels),
                                    ("b", lora.ALL_TARGETS, 3, flipped)):
        model = classifier()
        lora.enable_lora(model, rank=rank, targets=targets)
        fit_a_little(model, ys)
        trained[name] = (model, lora.save_adapter(model, tmp_path / f"{name}.npz"))
    x = batch(trained["a"][0])
    expected = {k: m.predict(x, verbose=0) for k, (m, _) in trained.items()}
    assert np.abs(expected["a"] - expected["b"]).max() > 1e-3

    base = classifier()  # one loaded base, adapters swapped in turn
    for name in ("a", "b", "a"):
        lora.load_adapter(base, trained[name][1])
        np.testing.assert_allclose(base.predict(x, verbose=0), expected[name], atol=1e-6)


def test_export_serves_merged_weights(tmp_path):
    from keras_bert_ft.serving.export import TEXT_SIGNATURE, export_for_serving
    from keras_bert_ft.serving.op_check import unsupported_ops

    model = classifier(lora_rank=2, lora_targets=lora.ALL_TARGETS)
    randomize_factors(model)
    texts, _ = texts_and_labels(4)
    expected = model.predict(model.encode(texts), verbose=0)
    path = export_for_serving(model, None, tmp_path / "lora")
    assert lora.lora_settings(model) is not None  # the model keeps its adapter
    np.testing.assert_array_equal(model.predict(model.encode(texts), verbose=0), expected)
    served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](text=tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert unsupported_ops(path) == []

    lora.merge_lora(model)
    plain = export_for_serving(model, None, tmp_path / "plain")
    # The same graph node for node and the same stored values: no LoRA ops or factors.
    assert op_counts(path) == op_counts(plain)
    assert stored_values(path) == stored_values(plain) == model.count_params()


def op_counts(export_dir) -> dict:
    from collections import Counter

    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    counts = Counter()
    for meta in proto.meta_graphs:
        counts.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            counts.update(node.op for node in function.node_def)
    return dict(counts)


def stored_values(version_dir) -> int:
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    return sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
               if name != "_CHECKPOINTABLE_OBJECT_GRAPH")


def test_train_with_lora_rank_writes_an_adapter(tmp_path, capsys):
    from keras_bert_ft import cli

    model_dir = save_tiny_hf(tmp_path / "bert")
    data = write_csv(tmp_path / "train.csv", 8)
    out = tmp_path / "run"
    argv = ["train", "--train", str(data), "--model", str(model_dir), "--epochs", "1",
            "--batch-size", "8", "--max-length", "16", "--lora-rank", "2",
            "--lora-targets", "value,query", "--output-dir", str(out)]
    assert cli.main(argv) == 0
    assert "fine-tune=LoRA rank 2" in capsys.readouterr().out
    header, _ = lora.read_adapter(out / "adapter.npz")
    assert header["targets"] == ["query", "value"] and header["base_model"] == str(model_dir)
    run = json.loads((out / "run.json").read_text())["identity"]
    assert run["lora"] == {"rank": 2, "alpha": 16.0, "targets": ["query", "value"]}
    settings = json.loads((out / "settings.json").read_text())
    assert settings["lora_rank"] == 2 and settings["learning_rate"] == cli.FROZEN_LEARNING_RATE
    loaded = keras.saving.load_model(out / "model.keras")
    assert lora.lora_settings(loaded).rank == 2

    # Another rank is another run: refused, nothing touched.
    assert cli.main([*argv[:-2], "--lora-rank", "3", "--output-dir", str(out)]) == 2
    assert "lora" in capsys.readouterr().err
    assert cli.main([*argv, "--fine-tune", "frozen"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lora-rank" in err[0] and "--fine-tune frozen" in err[0]
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage line and the error
        cli.main([*argv, "--lora-targets", "qurey"])
    assert exit_info.value.code == 2
    assert "--lora-targets: LoRA targets must be some of" in capsys.readouterr().err
