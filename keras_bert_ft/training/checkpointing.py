"""Epoch checkpoints written atomically, and resuming from the latest one.

A checkpoint is a folder `epoch-NNNN/` holding the model weights
(`model.weights.h5`), the optimizer's variables (`optimizer.npz`: Adam
moments and the iteration count, which drives the learning-rate schedule)
and `state.json` (epoch, iterations, logs). It is written into a hidden
temporary folder and renamed into place only when complete; then the
`latest` pointer file is replaced atomically. A run killed at any moment
therefore leaves the previous checkpoint as the latest one, never a
half-written folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_bert_ft.atomic import atomic_write

_EPOCH_DIR = re.compile(r"^epoch-(\d+)$")
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"
LATEST_FILE = "latest"


def _is_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in (WEIGHTS_FILE, STATE_FILE))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    model: keras.Model, directory: str | os.PathLike, epoch: int, logs: dict | None = None
) -> Path:
    """Write the checkpoint after `epoch` (1-based count of finished epochs) atomically."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch-{epoch:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
    try:
        model.save_weights(str(tmp / WEIGHTS_FILE))
        optimizer = getattr(model, "optimizer", None)
        iterations = 0
        if optimizer is not None and optimizer.built:
            values = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
            np.savez(tmp / OPTIMIZER_FILE, **values)
            iterations = int(optimizer.iterations.numpy())
        state = {
            "epoch": int(epoch),
            "iterations": iterations,
            "logs": {k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)},
        }
        atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if final.exists():  # the same epoch again (e.g. a re-run): move the old one away first
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=root))
            os.replace(final, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(root / LATEST_FILE, final.name + "\n")
    return final


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first (temporary folders are ignored)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _EPOCH_DIR.match(p.name)
        if m and p.is_dir() and _is_complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint named by the `latest` file, else the newest complete one, else None."""
    root = Path(directory)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        candidate = root / pointer.read_text(encoding="utf-8").strip()
        if _EPOCH_DIR.match(candidate.name) and _is_complete(candidate):
            return candidate
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_state(checkpoint: str | os.PathLike) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8"))


def restore_checkpoint(model: keras.Model, checkpoint: str | os.PathLike) -> dict:
    """Load weights and optimizer state from `checkpoint` into a compiled model.

    Returns the checkpoint's state (its "epoch" is the `initial_epoch` for `fit`).
    Call it inside the strategy scope the model was built in.
    """
    path = Path(checkpoint)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(str(path / WEIGHTS_FILE))
    state = read_state(path)
    opt_file = path / OPTIMIZER_FILE
    if optimizer is not None and opt_file.is_file():
        with np.load(opt_file) as data:
            values = [data[k] for k in sorted(data.files)]
        if len(values) != len(optimizer.variables):
            raise ValueError(
                f"{opt_file}: {len(values)} optimizer variables saved, the optimizer has "
                f"{len(optimizer.variables)}; was the model or its frozen layers changed?"
            )
        for var, value in zip(optimizer.variables, values, strict=True):
            var.assign(value)
    return state


def clean_partial(directory: str | os.PathLike) -> None:
    """Remove temporary folders left by a run killed while saving."""
    root = Path(directory)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".epoch-") and p.suffix in (".partial", ".old"):
                shutil.rmtree(p, ignore_errors=True)


class EpochCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch; keep the newest `keep` of them.

    With `save=False` (non-chief workers) it does nothing.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2, save: bool = True):
        super().__init__()
        self.directory = Path(directory)
        self.keep = max(1, int(keep))
        self.save = save

    def on_train_begin(self, logs=None):
        if self.save:
            clean_partial(self.directory)

    def on_epoch_end(self, epoch, logs=None):
        if not self.save:
            return
        save_checkpoint(self.model, self.directory, epoch + 1, logs)
        for old in list_checkpoints(self.directory)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
