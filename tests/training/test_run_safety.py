"""No silent wrong results from an output directory: run identity (run.json),
verified checkpoints with fallback, optimizer state stored once, model.keras
without the optimizer."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from run_safety_script import run_data, run_settings
from tiny import (
    PYTHON,
    SUPPORT,
    save_tiny_hf,
    subprocess_env,
    tiny_encoder,
    tiny_trained_classifier,
)
from tiny import write_csv as write_tiny_csv

from keras_bert_ft.infra import write_manifest
from keras_bert_ft.models import BertClassifier
from keras_bert_ft.training import (
    CheckpointError,
    RunMismatchError,
    compile_classifier,
    restore_checkpoint,
    save_checkpoint,
)
from keras_bert_ft.training.checkpointing import (
    EpochCheckpoint,
    checkpoint_problem,
    epoch_folders,
    read_state,
)
from keras_bert_ft.training.finetune import finetune
from keras_bert_ft.training.runs import PREVIOUS_RUN, prepare_output_dir, read_run

SCRIPT = SUPPORT / "run_safety_script.py"
TEXTS = ["a good movie", "awful film", "very nice film"]
QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return save_tiny_hf(root / "tiny"), save_tiny_hf(root / "tiny_other", seed=1)


@pytest.fixture(scope="module")
def finished(models, tmp_path_factory):
    """A finished 2-epoch run (template: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = finetune(run_data(), settings=run_settings(models[0], out), **QUIET)
    assert result.train_examples_seen == 64
    return out, result.model.predict_texts(TEXTS)


def _copy(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    return out


def _tree(root: Path) -> dict:
    """Every file and folder under `root` with its bytes' sha256 and mtime."""
    snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            snapshot[str(p.relative_to(root))] = (digest, p.stat().st_mtime_ns)
    return snapshot


def _epochs_trained(result) -> int:
    return result.train_examples_seen // 32


def test_rerun_with_more_epochs_resumes_and_continues(finished, models, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    run_json = (out / "run.json").read_bytes()
    result = finetune(run_data(), settings=run_settings(models[0], out, epochs=3, verbose=2),
                      **QUIET)  # fmt: skip
    assert _epochs_trained(result) == 1  # only epoch 3
    assert f"Resuming from {out / 'checkpoints' / 'epoch-0002'}" in capsys.readouterr().out
    state = read_state(out / "checkpoints" / "epoch-0003")
    assert state["epoch"] == 3 and state["iterations"] == 12  # the step count carried on
    assert (out / "run.json").read_bytes() == run_json


CHANGES = {
    "data": (dict(change_text=True), {}, "train data: 32 texts from memory (sha256 "),
    "labels": (dict(names=("bad", "good")), {}, 'labels: ["neg", "pos"] -> ["bad", "good"]'),
    "max_length": ({}, dict(max_length=24), "packing.max_length: 16 -> 24"),
    "model": ({}, dict(model="OTHER"), "model.source: "),
    "learning_rate": ({}, dict(learning_rate=2e-3), "training.learning_rate: 0.001 -> 0.002"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_different_run_is_refused_and_nothing_is_touched(finished, models, tmp_path, change):
    out = _copy(finished, tmp_path)
    data_kw, settings_kw, expected = CHANGES[change]
    if settings_kw.get("model") == "OTHER":
        settings_kw = dict(model=str(models[1]))
    before = _tree(out)
    with pytest.raises(RunMismatchError) as e:
        finetune(run_data(**data_kw), settings=run_settings(models[0], out, **settings_kw),
                 **QUIET)  # fmt: skip
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{out}: holds a different run: ")
    assert expected in message
    assert "pass --no-resume" in message and "another --output-dir" in message
    assert _tree(out) == before


def test_a_directory_without_run_json_is_refused_then_no_resume_starts_over(
    finished, models, tmp_path
):
    out = _copy(finished, tmp_path)
    (out / "run.json").unlink()  # as an older version left it
    before = _tree(out)
    with pytest.raises(RunMismatchError, match="cannot be verified"):
        finetune(run_data(), settings=run_settings(models[0], out), **QUIET)
    assert _tree(out) == before
    result = finetune(run_data(), settings=run_settings(models[0], out, resume=False), **QUIET)
    assert _epochs_trained(result) == 2
    assert read_run(out) is not None and not (out / PREVIOUS_RUN).exists()


def test_no_resume_starts_over_with_the_new_identity(finished, models, tmp_path):
    out = _copy(finished, tmp_path)
    old_identity = read_run(out)
    settings = run_settings(models[0], out, max_length=24, resume=False)
    result = finetune(run_data(), settings=settings, **QUIET)
    assert _epochs_trained(result) == 2  # from scratch, not from the old run's epoch 2
    assert read_run(out)["packing"]["max_length"] == 24 != old_identity["packing"]["max_length"]
    state = read_state(out / "checkpoints" / "epoch-0002")
    assert state["iterations"] == 8
    assert not (out / PREVIOUS_RUN).exists()  # removed once the new run finished
    # The new run is now the one this directory resumes.
    again = finetune(run_data(), settings=run_settings(models[0], out, max_length=24), **QUIET)
    assert _epochs_trained(again) == 0


def test_start_over_sets_the_old_run_aside_until_the_new_one_finishes(finished, tmp_path):
    out = _copy(finished, tmp_path)
    old = _tree(out)
    identity = {**read_run(out), "labels": ["x", "y"]}
    assert prepare_output_dir(out, identity, resume=False, log=lambda *_: None) is False
    # No old checkpoint is left where a resume could pick it up beside the new run.json.
    assert sorted(p.name for p in out.iterdir()) == [PREVIOUS_RUN, "run.json"]
    aside = _tree(out / PREVIOUS_RUN)
    assert {k: v[0] for k, v in aside.items()} == {k: v[0] for k, v in old.items()}
    # Killed before producing anything, then started over again: the old run is kept.
    assert prepare_output_dir(out, identity, resume=False, log=lambda *_: None) is False
    assert {k: v[0] for k, v in _tree(out / PREVIOUS_RUN).items()} == {
        k: v[0] for k, v in old.items()
    }
    assert prepare_output_dir(out, identity, resume=True) is True  # same identity resumes


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _garble(path: Path) -> None:
    size = path.stat().st_size  # same size: only the hash can tell
    path.write_bytes(b"{garbage" + b"!" * (size - 8))


DAMAGE = {
    "truncated": (lambda c: _truncate(c / "model.weights.h5"), "model.weights.h5 has "),
    "bit-flipped": (lambda c: _flip_bit(c / "model.weights.h5"),
                    "model.weights.h5 differs from the sha256 in the manifest"),
    "no manifest": (lambda c: (c / "manifest.json").unlink(), "manifest.json is missing"),
    "garbage state": (lambda c: _garble(c / "state.json"),
                      "state.json differs from the sha256 in the manifest"),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(
    finished, models, tmp_path, capsys, damage
):
    out = _copy(finished, tmp_path)
    newest = out / "checkpoints" / "epoch-0002"
    harm, reason = DAMAGE[damage]
    harm(newest)
    result = finetune(run_data(), settings=run_settings(models[0], out, verbose=2), **QUIET)
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert f"checkpoint {newest} is damaged ({reason}" in warnings[0]
    assert f"Resuming from {out / 'checkpoints' / 'epoch-0001'}" in captured.out
    assert _epochs_trained(result) == 1  # epoch 2 again, from epoch 1's state
    assert checkpoint_problem(newest) is None  # rewritten whole
    assert read_state(newest)["iterations"] == 8


def test_unreadable_state_json_with_a_consistent_manifest_is_damaged(finished, tmp_path):
    out = _copy(finished, tmp_path)
    newest = out / "checkpoints" / "epoch-0002"
    (newest / "state.json").write_text("{garbage")
    write_manifest(newest)
    assert checkpoint_problem(newest) == "state.json is unreadable"


def test_all_checkpoints_damaged_is_a_clear_error(finished, models, tmp_path):
    out = _copy(finished, tmp_path)
    for name in ("epoch-0001", "epoch-0002"):
        _truncate(out / "checkpoints" / name / "model.weights.h5")
    before = _tree(out)
    with pytest.raises(CheckpointError) as e:
        finetune(run_data(), settings=run_settings(models[0], out), **QUIET)
    message = str(e.value)
    assert "\n" not in message and "no intact checkpoint to resume from" in message
    assert "epoch-0002: model.weights.h5 has" in message and "epoch-0001:" in message
    assert "--no-resume" in message
    assert _tree(out) == before


@pytest.mark.parametrize("where", ["manifest", "pointer"])
def test_kill_while_writing_a_checkpoint_leaves_a_usable_one(models, tmp_path, capsys, where):
    out = tmp_path / "run"
    proc = subprocess.run([PYTHON, str(SCRIPT), str(models[0]), str(out), where],
                          cwd=SCRIPT.parent, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]
    ckpts = out / "checkpoints"
    assert checkpoint_problem(ckpts / "epoch-0001") is None
    assert (ckpts / "latest").read_text().strip() == "epoch-0001"
    if where == "manifest":
        assert not (ckpts / "epoch-0002").exists()
        assert [p.name for p in ckpts.glob(".epoch-0002.*.partial")]
        resumed_from, epochs_left = "epoch-0001", 1
    else:  # the folder is complete, only the pointer lags: the newest intact one wins
        assert checkpoint_problem(ckpts / "epoch-0002") is None
        resumed_from, epochs_left = "epoch-0002", 0
    result = finetune(run_data(), settings=run_settings(models[0], out, verbose=2), **QUIET)
    captured = capsys.readouterr()
    assert f"Resuming from {ckpts / resumed_from}" in captured.out
    assert "warning:" not in captured.err
    assert _epochs_trained(result) == epochs_left
    assert not list(ckpts.glob(".epoch-*"))  # temporary folders cleaned up
    assert read_state(ckpts / "epoch-0002")["iterations"] == 8


def test_checkpoint_holds_the_optimizer_state_once(tmp_path):
    model = tiny_trained_classifier()
    path = save_checkpoint(model, tmp_path, epoch=1)
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json", "model.weights.h5", "state.json"]  # fmt: skip
    state = read_state(path)
    with h5py.File(path / "model.weights.h5", "r") as h5:
        saved = h5["optimizer"]["vars"]
        assert len(saved) == state["optimizer_variables"] == len(model.optimizer.variables)
    moments = [v.numpy().copy() for v in model.optimizer.variables]
    fresh = BertClassifier(tiny_encoder(seed=5), 2)
    compile_classifier(fresh, total_steps=8, learning_rate=1e-3)
    assert restore_checkpoint(fresh, path)["iterations"] == 2
    for a, b in zip(moments, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


MISFITS = {
    # Same variables, another head shape: Keras' own load error, in one line.
    "3 classes": (3, {}, "model.weights.h5: cannot load into this model: "),
    # Fewer optimizer variables: Keras would skip the optimizer with a warning only.
    "frozen encoder": (2, dict(train_encoder_layers=0), "83 optimizer variables saved, this "),
    "extra layer": (2, dict(hidden_units=(8,)), "83 optimizer variables saved, this "),
}


def test_saving_an_epoch_removes_later_checkpoints_of_a_superseded_course(tmp_path):
    model = tiny_trained_classifier()
    for epoch in (1, 2, 3):
        save_checkpoint(model, tmp_path, epoch=epoch)
    _truncate(tmp_path / "epoch-0003" / "model.weights.h5")  # skipped on resume, say
    callback = EpochCheckpoint(tmp_path, keep=2)
    callback.set_model(model)
    callback.on_epoch_end(1)  # epoch 2 trained again from epoch 1
    assert [p.name for p in epoch_folders(tmp_path)] == ["epoch-0001", "epoch-0002"]
    callback.on_epoch_end(2)
    assert [p.name for p in epoch_folders(tmp_path)] == ["epoch-0002", "epoch-0003"]
    assert checkpoint_problem(tmp_path / "epoch-0003") is None


@pytest.mark.parametrize("misfit", sorted(MISFITS))
def test_a_checkpoint_that_does_not_fit_the_model_is_a_clear_error(tmp_path, misfit):
    path = save_checkpoint(tiny_trained_classifier(), tmp_path, epoch=1)
    num_classes, head, expected = MISFITS[misfit]
    different = BertClassifier(tiny_encoder(), num_classes, **head)
    compile_classifier(different, total_steps=8, learning_rate=1e-3)
    with pytest.raises(CheckpointError) as e:
        restore_checkpoint(different, path)
    message = str(e.value)
    assert "\n" not in message and "--no-resume" in message
    assert message.startswith(str(path)) and expected in message


RELOAD = """
import sys, json
import numpy as np, keras
import keras_bert_ft.models
model = keras.saving.load_model(sys.argv[1])
assert not hasattr(model, "optimizer") or model.optimizer is None
print(json.dumps(np.asarray(model.predict_texts(json.loads(sys.argv[2]))).tolist()))
"""


def test_model_keras_has_no_optimizer_and_reloads_in_a_fresh_process(finished):
    path = finished[0] / "model.keras"
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json")).get("compile_config") in (None, {})
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            assert "optimizer" not in h5 and "layers" in h5
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(path), json.dumps(TEXTS)],
                          env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(reloaded, finished[1], atol=1e-6)


def test_cli_refuses_another_run_in_one_line_then_no_resume_trains(models, tmp_path, capsys):
    from keras_bert_ft.cli import main

    csv = write_tiny_csv(tmp_path / "train.csv", 8)
    out = tmp_path / "out"
    args = ["train", "--train", str(csv), "--model", str(models[0]), "--epochs", "1",
            "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "16",
            "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    before = _tree(out)
    assert main([*args[:-2], "--max-length", "24", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {out}: holds a different run: packing.max_length: 16 -> 24")
    assert err.endswith("Fix: pass --no-resume (resume=False) to start over in this directory, "
                        "or choose another --output-dir")  # fmt: skip
    assert _tree(out) == before
    assert main([*args[:-2], "--max-length", "24", "--output-dir", str(out), "--no-resume"]) == 0
    assert read_run(out)["packing"]["max_length"] == 24


def test_resume_under_a_mirrored_strategy_restores_the_optimizer_state(models, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([PYTHON, str(SCRIPT), str(models[0]), str(out), "mirrored"],
                          cwd=SCRIPT.parent, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"checkpoint": str(out / "checkpoints" / "epoch-0001"),
                    "same_optimizer_state": True, "replicas": 2, "examples_seen": 32}  # fmt: skip
    assert read_state(out / "checkpoints" / "epoch-0002")["iterations"] == 8
