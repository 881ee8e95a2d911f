"""Epoch checkpoints written atomically, verified, and resumed from.

A checkpoint is a folder `epoch-NNNN/` holding
- `model.weights.h5`: the model weights and, for a compiled model, the
  optimizer's variables (Adam moments and the iteration count, which drives
  the learning-rate schedule). Keras 3 `save_weights` stores the optimizer
  of a compiled model in the same file, so the optimizer state is kept there
  once and nowhere else;
- `state.json`: epoch, iterations, how many optimizer variables were saved, logs;
- `manifest.json`: name, size and sha256 of the two files above, written last.

The folder is written under a hidden temporary name and renamed into place
only when complete; then the `latest` pointer file is replaced atomically. A
run killed at any moment therefore leaves the previous checkpoint in place.
Resume (`find_resume_checkpoint`) checks each checkpoint against its manifest,
newest first, and falls back past damaged ones with a warning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from keras_bert_ft.errors import DataError
from keras_bert_ft.infra import MANIFEST_FILE, atomic_write, check_manifest, write_manifest

_EPOCH_DIR = re.compile(r"^epoch-(\d+)$")
WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
LATEST_FILE = "latest"

_FIX = "pass --no-resume (resume=False) to start over, or choose another --output-dir"


class CheckpointError(DataError):
    """No checkpoint can be resumed from: all are damaged, or one does not fit the model."""


def print_warning(message: str) -> None:
    """Print a one-line warning on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _is_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in (WEIGHTS_FILE, STATE_FILE, MANIFEST_FILE))


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
        # Holds the optimizer variables too when the model is compiled (Keras 3).
        model.save_weights(str(tmp / WEIGHTS_FILE))
        optimizer = getattr(model, "optimizer", None)
        built = optimizer is not None and optimizer.built
        state = {
            "epoch": int(epoch),
            "iterations": int(optimizer.iterations.numpy()) if built else 0,
            "optimizer_variables": len(optimizer.variables) if built else 0,
            "logs": {k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)},
        }
        atomic_write(tmp / STATE_FILE, json.dumps(state, indent=2) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        write_manifest(tmp)  # last: a folder without it is not a finished checkpoint
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


def epoch_folders(directory: str | os.PathLike) -> list[Path]:
    """Every `epoch-NNNN` folder, complete or not, oldest first (temporary folders ignored)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _EPOCH_DIR.match(p.name) and p.is_dir()]
    return sorted(found, key=_epoch_number)


def _epoch_number(path: Path) -> int:
    return int(_EPOCH_DIR.match(path.name).group(1))


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint folders with all their files present, oldest first (contents not verified)."""
    return [p for p in epoch_folders(directory) if _is_complete(p)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint named by the `latest` file, else the newest complete one, else None.

    Its contents are not verified; `find_resume_checkpoint` does that.
    """
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


def checkpoint_problem(checkpoint: str | os.PathLike) -> str | None:
    """Why `checkpoint` cannot be resumed from (missing manifest, a file that is
    missing or differs from the manifest, an unreadable state.json), or None."""
    path = Path(checkpoint)
    problem = check_manifest(path)
    if problem is not None:
        return problem
    for name in (WEIGHTS_FILE, STATE_FILE):
        if not (path / name).is_file():
            return f"{name} is missing"
    try:
        state = read_state(path)
        int(state["epoch"]), int(state["iterations"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{STATE_FILE} is unreadable"
    return None


def find_resume_checkpoint(
    directory: str | os.PathLike, warn: Callable[[str], None] = print_warning
) -> Path | None:
    """The newest checkpoint in `directory` that matches its manifest, or None when
    there are no checkpoints at all.

    Each newer damaged checkpoint is reported through `warn` (one line: which and
    why). Raises `CheckpointError` when checkpoints exist but none is intact, so a
    run never silently starts over.
    """
    folders = epoch_folders(directory)
    damaged = []
    for path in reversed(folders):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        damaged.append(f"{path.name}: {problem}")
        warn(f"checkpoint {path} is damaged ({problem}); trying an older one")
    if damaged:
        raise CheckpointError(
            "no intact checkpoint to resume from (" + "; ".join(damaged) + ")",
            path=directory,
            hint=_FIX,
        )
    return None


def restore_checkpoint(model: keras.Model, checkpoint: str | os.PathLike) -> dict:
    """Load weights and optimizer state from `checkpoint` into a compiled model.

    Returns the checkpoint's state (its "epoch" is the `initial_epoch` for `fit`).
    Raises `CheckpointError` when the checkpoint does not fit the model. Call it
    inside the strategy scope the model was built in.
    """
    path = Path(checkpoint)
    state = read_state(path)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved = int(state.get("optimizer_variables", 0))
    # Keras skips an optimizer state of the wrong size with only a warning: check first.
    if optimizer is not None and saved and saved != len(optimizer.variables):
        raise CheckpointError(
            f"{saved} optimizer variables saved, this model's optimizer has "
            f"{len(optimizer.variables)}: the checkpoint is from a different model or "
            "different frozen layers",
            path=path,
            hint=_FIX,
        )
    try:
        model.load_weights(str(path / WEIGHTS_FILE))
    except Exception as e:  # noqa: BLE001 - h5py, Keras and shape errors alike
        raise CheckpointError(
            f"cannot load into this model: {_one_line(e)}", path=path / WEIGHTS_FILE, hint=_FIX
        ) from e
    if optimizer is not None and saved:
        step = int(optimizer.iterations.numpy())
        if step != int(state["iterations"]):
            raise CheckpointError(
                f"the optimizer state did not load (step {step}, the checkpoint says "
                f"{state['iterations']})",
                path=path,
                hint=_FIX,
            )
    return state


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        # Folders numbered after this epoch are from a superseded course of training
        # (a damaged checkpoint skipped on resume, a run started over): a resume must
        # never pick them. Of the rest, the newest `keep` stay.
        folders = epoch_folders(self.directory)
        current = [p for p in folders if _epoch_number(p) <= epoch + 1]
        stale = [p for p in folders if _epoch_number(p) > epoch + 1] + current[: -self.keep]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
