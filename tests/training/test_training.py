"""Training: schedule, AdamW details, atomic checkpoints, resume after a kill,
MirroredStrategy == one device, and a two-worker MultiWorkerMirroredStrategy run."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import keras
import numpy as np
import pytest
from tiny import (
    PYTHON,
    REPO_ROOT,
    SUPPORT,
    save_tiny_hf,
    subprocess_env,
    texts_and_labels,
    tiny_encoder,
    tiny_trained_classifier,
)
from tiny import write_csv as write_tiny_csv

from keras_bert_ft.models import BertClassifier
from keras_bert_ft.training import (
    AdamW,
    WarmupLinearDecay,
    compile_classifier,
    create_optimizer,
    latest_checkpoint,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from keras_bert_ft.training import checkpointing as ckpt_module

SCRIPT = SUPPORT / "train_script.py"


def test_warmup_linear_decay_values_and_serialisation():
    s = WarmupLinearDecay(1e-3, total_steps=10, warmup_steps=4, end_learning_rate=1e-4)
    lr = [float(s(i)) for i in range(12)]
    np.testing.assert_allclose(lr[:4], [2.5e-4, 5e-4, 7.5e-4, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(lr[4], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(lr[7], 1e-3 - 0.5 * 9e-4, rtol=1e-6)
    np.testing.assert_allclose(lr[10:], [1e-4, 1e-4], rtol=1e-6)
    assert all(a >= b for a, b in zip(lr[4:-1], lr[5:], strict=True))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(again, WarmupLinearDecay) and again.get_config() == s.get_config()


def test_optimizer_config_round_trip_and_clipping():
    opt = create_optimizer(5e-5, 100, warmup_ratio=0.1, weight_decay=0.01, clipnorm=1.0)
    cfg = keras.saving.serialize_keras_object(opt)
    again = keras.saving.deserialize_keras_object(cfg)
    assert isinstance(again, AdamW) and again.global_clipnorm == 1.0
    assert again.no_decay_names == ("gamma", "beta", "bias")
    assert again.learning_rate_schedule if hasattr(again, "learning_rate_schedule") else True
    assert isinstance(again._learning_rate, WarmupLinearDecay)
    assert again._learning_rate.warmup_steps == 10


def test_no_weight_decay_on_layer_norm_and_bias():
    model = BertClassifier(tiny_encoder(), 2)
    opt = AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.build(model.trainable_variables)
    before = [v.numpy().copy() for v in model.trainable_variables]
    # Zero gradients: Adam moves nothing, so only decoupled weight decay acts.
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    for v, b in zip(model.trainable_variables, before, strict=True):
        decayed = not np.allclose(v.numpy(), b)
        excluded = any(n in v.name for n in ("gamma", "beta", "bias"))
        assert decayed != excluded or not b.any(), v.path


def test_layerwise_factors_scale_weight_decay_too():
    model = BertClassifier(tiny_encoder(), 2)
    kernels = [v for v in model.trainable_variables if v.name == "kernel"]
    slow, normal = kernels[0], kernels[-1]
    bias = next(v for v in model.trainable_variables if v.name == "bias")
    opt = AdamW(learning_rate=0.1, weight_decay=0.5, lr_multipliers=[(slow, 0.25), (bias, 0.25)])
    opt.build(model.trainable_variables)
    before = {id(v): v.numpy().copy() for v in (slow, normal, bias)}
    # Zero gradients: only decoupled weight decay moves anything.
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    np.testing.assert_allclose(slow.numpy(), before[id(slow)] * (1 - 0.5 * 0.1 * 0.25), rtol=1e-6)
    np.testing.assert_allclose(normal.numpy(), before[id(normal)] * (1 - 0.5 * 0.1), rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), before[id(bias)])  # biases never decay


def test_gradient_clipping_bounds_the_update():
    v = keras.Variable(np.zeros(3, "float32"))
    opt = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
    opt.apply_gradients([(np.array([30.0, 40.0, 0.0], "float32"), v)])
    np.testing.assert_allclose(v.numpy(), [-0.6, -0.8, 0.0], rtol=1e-6)
    assert create_optimizer(1e-3, 10, clipnorm=0.5).global_clipnorm == 0.5


@pytest.mark.parametrize("layer_decay", [None, 0.8])
def test_fused_update_equals_the_keras_reference_update(layer_decay):
    """A few fit steps with the fused update give Keras' own AdamW result (to 1e-6):
    the schedule, decay only where allowed, layer-wise factors and clipping included.

    (The two differ in rounding only: TF's kernel forms 1 - beta_2 in float32, Keras
    in float64, a 1e-5 relative difference in the velocity's step.)"""
    from tiny import tiny_tokenizer

    from keras_bert_ft.data import make_dataset

    texts, labels = texts_and_labels(16)
    ds = make_dataset(texts, np.array(labels), tiny_tokenizer(), batch_size=4)
    results = {}
    for fused in (False, True):
        model = BertClassifier(tiny_encoder(seed=3), 2, dropout=0.0)
        multipliers = model.layerwise_lr_multipliers(layer_decay) if layer_decay else None
        opt = create_optimizer(1e-3, 4, warmup_ratio=0.25, weight_decay=0.1, clipnorm=0.5,
                               lr_multipliers=multipliers)
        opt.fused = fused
        model.compile(optimizer=opt, loss=model.default_loss())
        model.fit(ds.take(4), epochs=1, verbose=0, shuffle=False)
        assert int(opt.iterations.numpy()) == 4
        results[fused] = ([v.numpy() for v in model.trainable_variables],
                          [v.numpy() for v in opt.variables])
    start = [v.numpy() for v in BertClassifier(tiny_encoder(seed=3), 2).trainable_variables]
    moved = sum(not np.array_equal(a, b) for a, b in zip(start, results[True][0], strict=True))
    assert moved > len(start) // 2  # the comparison is about real updates
    for ref, new in zip(results[False][0] + results[False][1],
                        results[True][0] + results[True][1], strict=True):
        np.testing.assert_allclose(new, ref, rtol=1e-6, atol=1e-6)


def test_checkpoint_round_trip_restores_optimizer_state(tmp_path):
    model = tiny_trained_classifier()
    path = save_checkpoint(model, tmp_path, epoch=1, logs={"loss": 0.5})
    assert latest_checkpoint(tmp_path) == path
    assert json.loads((path / "state.json").read_text())["iterations"] == 2
    weights = [w.numpy().copy() for w in model.weights]
    moments = [v.numpy().copy() for v in model.optimizer.variables]
    fresh = BertClassifier(tiny_encoder(seed=5), 2)
    compile_classifier(fresh, total_steps=8, learning_rate=1e-3)
    state = restore_checkpoint(fresh, path)
    assert state["epoch"] == 1
    for a, b in zip(weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    for a, b in zip(moments, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_interrupted_save_never_becomes_the_latest(tmp_path, monkeypatch):
    model = tiny_trained_classifier()
    first = save_checkpoint(model, tmp_path, epoch=1)

    def crash(*args, **kwargs):
        # All but the manifest is on disk (weights, state) when the "kill" comes.
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(ckpt_module, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, tmp_path, epoch=2)
    assert latest_checkpoint(tmp_path) == first
    assert list_checkpoints(tmp_path) == [first]
    assert not (tmp_path / "epoch-0002").exists()
    # A partial folder left by a real SIGKILL is ignored, then cleaned up.
    partial = tmp_path / ".epoch-0002.abc.partial"
    partial.mkdir()
    (partial / "model.weights.h5").write_bytes(b"\0" * 10)
    (tmp_path / "latest").write_text("epoch-0002\n")  # even a pointer to a missing folder
    assert latest_checkpoint(tmp_path) == first
    ckpt_module.clean_partial(tmp_path)
    assert not partial.exists()


def _run_script(*args, env=None, check=True):
    proc = subprocess.run([PYTHON, str(SCRIPT), *map(str, args)], cwd=SCRIPT.parent,
                          env=env or subprocess_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def _load(path):
    with np.load(path) as d:
        return [d[k] for k in sorted(d.files, key=lambda k: int(k.split("_")[1]))]


def test_resume_after_kill_continues_without_repeating_or_losing_steps(tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed.mkdir()
    reference.mkdir()
    # 3 epochs x 4 steps. Die (SIGKILL) after global step 10, in the third epoch.
    proc = _run_script("resume", killed, 10, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    latest = latest_checkpoint(killed / "ckpt")
    assert latest is not None and latest.name == "epoch-0002"
    assert json.loads((latest / "state.json").read_text())["iterations"] == 8
    first_run = [int(s) for s in (killed / "steps.txt").read_text().split()]
    assert first_run == list(range(1, 11))
    # Rerun the same command: it resumes from epoch 2 (step 8).
    _run_script("resume", killed)
    steps = [int(s) for s in (killed / "steps.txt").read_text().split()]
    assert steps[10:] == [9, 10, 11, 12], "resumed at the checkpoint's step, once each"
    assert latest_checkpoint(killed / "ckpt").name == "epoch-0003"
    # The interrupted + resumed run ends exactly where an uninterrupted run ends.
    _run_script("resume", reference)
    assert [int(s) for s in (reference / "steps.txt").read_text().split()] == list(range(1, 13))
    for a, b in zip(_load(killed / "final.npz"), _load(reference / "final.npz"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mirrored_two_devices_equals_one_device(tmp_path):
    _run_script("mirrored", tmp_path)
    assert (tmp_path / "replicas.txt").read_text() == "2"
    moved, total = map(int, (tmp_path / "layer_decay_moved.txt").read_text().split())
    assert moved == total > 0  # every trainable weight updated under layer-wise rates
    single, mirrored = _load(tmp_path / "single.npz"), _load(tmp_path / "mirrored.npz")
    assert len(single) == len(mirrored) > 0
    for a, b in zip(single, mirrored, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_worker_training_completes(tmp_path):
    model_dir = save_tiny_hf(tmp_path / "tiny_bert")
    data = write_tiny_csv(tmp_path / "train.csv", 16)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = [PYTHON, "-m", "keras_bert_ft.cli", "train", "--train", str(data),
               "--model", str(model_dir), "--strategy", "multi_worker", "--epochs", "2",
               "--batch-size", "8", "--learning-rate", "1e-3", "--validation-split", "0.25",
               "--max-length", "32", "--output-dir", str(tmp_path / f"out{i}")]  # fmt: skip
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(TF_CONFIG=tf_config),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(out)
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert "(2 replicas)" in out and "Epoch 2/2" in out
    # Only the chief (worker 0) writes the model, the report and checkpoints.
    assert (tmp_path / "out0" / "model.keras").is_file()
    assert (tmp_path / "out0" / "report" / "metrics.json").is_file()
    assert (tmp_path / "out0" / "checkpoints" / "epoch-0002").is_dir()
    assert not (tmp_path / "out1" / "model.keras").exists()
    assert os.path.exists(tmp_path / "out0" / "logs")
