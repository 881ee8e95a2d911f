"""Faults and misuse around an earlier run, through the real `keras-bert-ft` command.

One tiny run is trained and exported first. Each case then runs the command in a
subprocess against it (or against a copy, when the case damages files on purpose)
and asserts the exit status, that stderr holds no traceback, and that the earlier
outputs (the run folder and its export) are byte-for-byte unchanged. Faults:
`kill -9` during training, during a checkpoint write and during an export;
truncated and bit-flipped checkpoint files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tiny import PYTHON, save_tiny_hf, subprocess_env, write_csv

from keras_bert_ft.cli.app import main

TRAIN = "--epochs 2 --batch-size 8 --max-length 16 --learning-rate 1e-3 --validation-split 0"


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (folders as "dir"), keyed by relative path."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            found[str(p.relative_to(root))] = digest
    return found


def earlier_outputs(earlier: dict) -> tuple[dict, dict]:
    """Digests of the earlier run folder and of its export."""
    return tree_digest(earlier["run"]), tree_digest(earlier["exports"])


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> dict:
    """A finished 2-epoch run, its export (version 1), and the files the cases use."""
    d = tmp_path_factory.mktemp("faults")
    paths = {"d": d, "tiny": save_tiny_hf(d / "tiny"), "tiny_other": save_tiny_hf(d / "other", 1)}
    paths["data"] = write_csv(d / "train.csv", 8)
    paths["other_data"] = write_csv(d / "other.csv", 12)
    (d / "pairs.csv").write_text("premise,hypothesis,label\na,b,pos\nc,d,neg\n", encoding="utf-8")
    paths["pairs"] = d / "pairs.csv"
    paths["run"], paths["exports"] = d / "run", d / "exports" / "tiny"
    args = f"train --train {paths['data']} --model {paths['tiny']} {TRAIN} --output-dir {d}/run"
    assert main(args.split()) == 0
    assert main(["export", str(paths["run"]), "--export-dir", str(paths["exports"])]) == 0
    assert (paths["exports"] / "1" / "saved_model.pb").is_file()
    paths["digest"] = earlier_outputs(paths)
    return paths


def run_cli(args: str, cwd: Path, prefix: str = "") -> subprocess.CompletedProcess:
    """`python -m keras_bert_ft.cli ARGS`, or with `prefix` Python code run before `main`."""
    code = f"{prefix}\nimport sys\nfrom keras_bert_ft import cli\nsys.exit(cli.main(sys.argv[1:]))"
    env = subprocess_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([PYTHON, "-c", code, *args.split()], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def copy_run(earlier: dict, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(earlier["run"], out)
    return out


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def newest_weights(run: Path) -> Path:
    return run / "checkpoints" / "epoch-0002" / "model.weights.h5"


# ---------------------------------------------------------------- refusals (exit 2)
# name -> (arguments, a text the error line must hold). `{key}` is a path of `earlier`.
REFUSALS = {
    "train_other_data_into_the_run": (
        "train --train {other_data} --model {tiny} " + TRAIN + " --output-dir {run}",
        "holds a different run"),
    "train_other_max_length_into_the_run": (
        "train --train {data} --model {tiny} " + TRAIN.replace("16", "32") + " --output-dir {run}",
        "packing.max_length: 16 -> 32"),
    "train_other_model_into_the_run": (
        "train --train {data} --model {tiny_other} " + TRAIN + " --output-dir {run}",
        "model.source"),
    "train_pairs_into_the_run": (
        "train --train {pairs} --text-column premise --pair-column hypothesis --model {tiny} "
        + TRAIN + " --output-dir {run}", "holds a different run"),
    "export_single_model_as_pairs": (
        "export {run} --export-dir {exports} --pairs", "trained on single texts"),
    "export_over_an_existing_version": (
        "export {run} --export-dir {exports} --version 1", "never overwritten"),
    "predict_pairs_with_a_single_text_export": (
        "predict {exports} a --pair b", "single texts"),
    "evaluate_single_model_on_pairs": (
        "evaluate {run} --data {pairs} --text-column premise --pair-column hypothesis",
        "classifies single texts"),
    "evaluate_with_a_missing_data_file": (
        "evaluate {run} --data {d}/missing.csv", "missing.csv"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_leaves_earlier_outputs_unchanged(case, earlier, tmp_path):
    args, expected = REFUSALS[case]
    proc = run_cli(args.format(**earlier), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert earlier_outputs(earlier) == earlier["digest"]


def test_all_checkpoints_damaged_is_refused_and_nothing_changes(earlier, tmp_path):
    run = copy_run(earlier, tmp_path)
    for epoch in ("epoch-0001", "epoch-0002"):
        truncate(run / "checkpoints" / epoch / "model.weights.h5")
    before = tree_digest(run)
    more = TRAIN.replace("--epochs 2", "--epochs 3")
    proc = run_cli(f"train --train {earlier['data']} --model {earlier['tiny']} {more} "
                   f"--output-dir {run}", tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "no intact checkpoint" in proc.stderr
    assert tree_digest(run) == before
    assert earlier_outputs(earlier) == earlier["digest"]


# ---------------------------------------------------------------- recoveries (exit 0)
@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit_flipped"])
def test_damaged_newest_checkpoint_resumes_from_the_previous_one(damage, earlier, tmp_path):
    run = copy_run(earlier, tmp_path)
    damage(newest_weights(run))
    args = f"train --train {earlier['data']} --model {earlier['tiny']} {TRAIN} --output-dir {run}"
    proc = run_cli(args.replace("--epochs 2", "--epochs 3"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch-0002" in proc.stderr and "warning" in proc.stderr.lower()
    assert "Resuming from" in proc.stdout and "epoch-0001" in proc.stdout
    assert (run / "checkpoints" / "epoch-0003").is_dir()
    assert earlier_outputs(earlier) == earlier["digest"]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the command ended before the moment to kill it"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_kill_during_training_then_rerun_resumes(earlier, tmp_path):
    out = tmp_path / "run"
    args = f"train --train {earlier['data']} --model {earlier['tiny']} {TRAIN} --output-dir {out}"
    env = subprocess_env()
    many = args.replace("--epochs 2", "--epochs 500").split()
    proc = subprocess.Popen([PYTHON, "-m", "keras_bert_ft.cli", *many], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(out / "checkpoints" / "epoch-0001" / "manifest.json", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "model.keras").exists()  # it died mid-training
    rerun = run_cli(args.replace("--epochs 2", "--epochs 3"), tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr and "Resuming from" in rerun.stdout
    assert (out / "model.keras").is_file()
    assert earlier_outputs(earlier) == earlier["digest"]


# The process kills itself in the middle of a checkpoint write (weights written,
# manifest not yet) of epoch 2.
KILL_IN_CHECKPOINT = """
import os, signal
from keras_bert_ft.training import checkpointing
real = checkpointing.write_manifest
def write_manifest(directory):
    if "epoch-0002" in str(directory):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(directory)
checkpointing.write_manifest = write_manifest
"""


def test_kill_during_a_checkpoint_write_then_rerun_resumes(earlier, tmp_path):
    out = tmp_path / "run"
    args = f"train --train {earlier['data']} --model {earlier['tiny']} {TRAIN} --output-dir {out}"
    killed = run_cli(args, tmp_path, prefix=KILL_IN_CHECKPOINT)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "checkpoints" / "epoch-0002").exists()
    rerun = run_cli(args, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert "Resuming from" in rerun.stdout and "epoch-0001" in rerun.stdout
    assert (out / "checkpoints" / "epoch-0002" / "manifest.json").is_file()
    assert earlier_outputs(earlier) == earlier["digest"]


# The process kills itself once the SavedModel is written, before it is published.
KILL_IN_EXPORT = """
import os, signal
import tensorflow as tf
real = tf.saved_model.save
def save(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
tf.saved_model.save = save
"""


def test_kill_during_export_leaves_no_version_and_the_next_export_cleans_up(earlier, tmp_path):
    exports = tmp_path / "exports"
    shutil.copytree(earlier["exports"], exports)
    killed = run_cli(f"export {earlier['run']} --export-dir {exports}", tmp_path,
                     prefix=KILL_IN_EXPORT)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in exports.iterdir() if not p.name.startswith(".")) == ["1"]
    assert [p for p in exports.iterdir() if p.name.startswith(".export-")]  # the leftover
    proc = run_cli(f"export {earlier['run']} --export-dir {exports}", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in exports.iterdir()) == ["1", "2"]  # leftover removed
    assert tree_digest(exports / "1") == tree_digest(earlier["exports"] / "1")
    assert earlier_outputs(earlier) == earlier["digest"]
