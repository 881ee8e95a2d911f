"""Run identity: what a fine-tuning run in an output directory is, recorded in
`run.json` before training, so that a rerun resumes only the same run.

The identity holds what decides the trained weights: the training and
validation rows (a sha256 over texts, pairs and label names, so it is about
content, not file names), the label vocabulary, the pretrained model, the
tokenizer (vocabulary hash and settings), the packing (max_length,
truncation, pairs), the head, and the optimisation settings (learning rate,
batch size, accumulation steps, warm-up, weight decay, clipping, layer decay,
class weights, seed, precision) and, for LoRA runs, the rank, alpha and
targets. It leaves out what only says how long or how a run goes: epochs (a
rerun with more epochs resumes and continues; the learning-rate schedule is
stretched to the new total from the step reached), early stopping and its
monitor, the strategy, jit_compile, `deterministic` (op determinism changes
which kernels run, not what the run is), verbosity, the test set (only
evaluated at the end) and the output directory itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from keras_bert_ft.errors import DataError
from keras_bert_ft.infra import atomic_write

if TYPE_CHECKING:
    from keras_bert_ft.data.readers import TextDataset
    from keras_bert_ft.training.finetune import FinetuneSettings

RUN_FILE = "run.json"
PREVIOUS_RUN = "previous-run"
RUN_FORMAT = 1
# Everything `finetune` writes into an output directory; set aside together.
RUN_ENTRIES = ("checkpoints", "model.keras", "labels.json", "settings.json", "report", "logs",
               RUN_FILE, "adapter.npz")  # fmt: skip
_FIX = (
    "pass --no-resume (resume=False) to start over in this directory, "
    "or choose another --output-dir"
)


class RunMismatchError(DataError):
    """The output directory holds another run, or one that cannot be verified."""


def data_fingerprint(data: TextDataset) -> dict:
    """Rows, kind, sha256 over the content (texts, pairs, label names) and source of `data`."""
    labels = None
    if data.labels is not None and data.label_vocab is not None:
        names = data.label_vocab.names
        if data.labels.ndim == 2:  # multi-label: each row's list of names
            labels = [[names[j] for j in row.nonzero()[0]] for row in data.labels]
        else:
            labels = [names[int(i)] for i in data.labels]
    content = json.dumps({"texts": list(data.texts), "pairs": data.pairs, "labels": labels})
    return {
        "rows": len(data),
        "pairs": data.is_pair,
        "sha256": hashlib.sha256(content.encode("utf-8")).hexdigest(),
        "source": data.source,
    }


def describe_run(
    settings: FinetuneSettings, train: TextDataset, validation: TextDataset | None, tokenizer
) -> dict:
    """The identity of a run (see the module docstring for what is in it and why)."""
    s = settings
    vocab = "\n".join(tokenizer.get_vocab()).encode("utf-8")
    identity = {
        "data": {
            "train": data_fingerprint(train),
            "validation": data_fingerprint(validation) if validation is not None else None,
        },
        "labels": list(train.label_vocab.names),
        "model": {"source": _model_source(s.model), "num_layers": s.num_layers},
        "tokenizer": {
            "vocab_sha256": hashlib.sha256(vocab).hexdigest(),
            **tokenizer.get_config(),
        },  # fmt: skip
        "packing": {
            "max_length": s.max_length,
            "truncation": s.truncation,
            "pairs": train.is_pair,
        },  # fmt: skip
        "head": {
            "num_classes": len(train.label_vocab.names),
            "pooling": s.pooling,
            "hidden_units": list(s.hidden_units),
            "dropout": s.dropout,
            "binary_sigmoid": s.binary_sigmoid,
            "train_encoder_layers": s.train_encoder_layers,
        },
        "training": {
            "learning_rate": s.learning_rate,
            "batch_size": s.batch_size,
            "accumulate_steps": s.accumulate_steps,
            "warmup_ratio": s.warmup_ratio,
            "weight_decay": s.weight_decay,
            "clipnorm": s.clipnorm,
            "layer_decay": s.layer_decay,
            "class_weight": s.class_weight,
            "seed": s.seed,
            "precision": s.precision,
        },
    }
    if s.lora_rank is not None:
        # Only LoRA runs have this entry, so the identities of other runs are unchanged.
        identity["lora"] = {"rank": s.lora_rank, "alpha": s.lora_alpha,
                            "targets": list(s.lora_targets)}
    return json.loads(json.dumps(identity))  # tuples to lists: compares equal to a reread


def _model_source(model: str) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def run_differences(old: dict, new: dict) -> list[str]:
    """Short "field: old -> new" phrases for every identity field that differs."""
    diffs = []
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for split in sorted(set(old_data) | set(new_data)):
        a, b = old_data.get(split), new_data.get(split)
        if _content(a) != _content(b):
            diffs.append(f"{split} data: {_describe_data(a)} -> {_describe_data(b)}")
    flat_old = _flatten({k: v for k, v in old.items() if k != "data"})
    flat_new = _flatten({k: v for k, v in new.items() if k != "data"})
    for key in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(key, "(none)"), flat_new.get(key, "(none)")
        if a != b:
            diffs.append(f"{key}: {_short(a)} -> {_short(b)}")
    return diffs


def _content(entry: dict | None) -> dict | None:
    return None if entry is None else {k: v for k, v in entry.items() if k != "source"}


def _describe_data(entry: dict | None) -> str:
    if entry is None:
        return "none"
    kind = "pairs" if entry.get("pairs") else "texts"
    source = f" from {entry['source']}" if entry.get("source") else ""
    return f"{entry.get('rows')} {kind}{source} (sha256 {str(entry.get('sha256'))[:12]})"


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _short(value, limit: int = 60) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_run(out: str | os.PathLike) -> dict | None:
    """The identity recorded in `out`/run.json; None when there is no run.json.

    Raises `RunMismatchError` when run.json cannot be read.
    """
    path = Path(out) / RUN_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        record = None
    if (
        not isinstance(record, dict)
        or record.get("format") != RUN_FORMAT
        or not isinstance(record.get("identity"), dict)
    ):
        raise RunMismatchError("unreadable or from an unknown version; this run cannot be "
                               "verified", path=path, hint=_FIX)  # fmt: skip
    identity = record["identity"]
    # Runs recorded before gradient accumulation existed applied every batch.
    if isinstance(identity.get("training"), dict):
        identity["training"].setdefault("accumulate_steps", 1)
    return identity


def write_run(out: str | os.PathLike, identity: dict) -> Path:
    """Write `out`/run.json atomically."""
    record = {
        "format": RUN_FORMAT,
        "identity": identity,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return atomic_write(Path(out) / RUN_FILE, json.dumps(record, indent=2) + "\n")


def prepare_output_dir(
    out: str | os.PathLike,
    identity: dict,
    *,
    resume: bool = True,
    write: bool = True,
    log: Callable[[str], None] = print,
) -> bool:
    """Check that `out` holds this run (or none) and record it; returns True when
    an earlier run of the same identity is there to resume.

    - No run in `out`: write run.json.
    - `resume` and run.json describes this run: nothing is written; training resumes.
    - `resume` and run.json describes another run, cannot be read, or is missing
      while `out` holds files of a run (an older version wrote none): raise
      `RunMismatchError` with one line naming the differing fields. Nothing in
      `out` is written, modified or deleted.
    - not `resume` and `out` holds a run: the earlier run's files move to
      `out`/previous-run/ (where they stay until this run finishes, see
      `finish_run`), then run.json is written. No old checkpoint is left where
      a later resume could pick it up.

    With `write=False` (non-chief workers) only the check is made.
    """
    root = Path(out)
    used = any((root / name).exists() for name in RUN_ENTRIES)
    if resume and used:
        old = read_run(root)
        if old is None:
            raise RunMismatchError(
                f"holds files of a training run but no {RUN_FILE} (an older version's run); "
                "it cannot be verified to be this run",
                path=root,
                hint=_FIX,
            )
        diffs = run_differences(old, identity)
        if diffs:
            raise RunMismatchError("holds a different run: " + "; ".join(diffs), path=root,
                                   hint=_FIX)  # fmt: skip
        return True
    if not write:
        return False
    if used:
        _set_aside(root, log)
    write_run(root, identity)
    return False


def _has_products(root: Path) -> bool:
    checkpoints = root / "checkpoints"
    has_epochs = checkpoints.is_dir() and any(p.name.startswith("epoch-")
                                              for p in checkpoints.iterdir())  # fmt: skip
    return has_epochs or (root / "model.keras").exists()


def _set_aside(root: Path, log: Callable[[str], None]) -> None:
    present = [root / name for name in RUN_ENTRIES if (root / name).exists()]
    previous = root / PREVIOUS_RUN
    if previous.exists() and not _has_products(root):
        # An earlier start-over was interrupted before it produced anything:
        # keep the run it set aside, drop its leftovers.
        for p in present:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        log(f"Starting over in {root}; the earlier run stays in {previous} until this one ends")
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{PREVIOUS_RUN}.", dir=root))
    for p in present:  # checkpoints first: never resumable beside a new run.json
        os.replace(p, staging / p.name)
    if previous.exists():
        shutil.rmtree(previous)
    os.replace(staging, previous)
    log(f"Starting over in {root}; the earlier run moved to {previous} until this one ends")


def finish_run(out: str | os.PathLike, log: Callable[[str], None] = print) -> None:
    """Delete the run set aside by a start-over, now that the new run has finished."""
    root = Path(out)
    previous = root / PREVIOUS_RUN
    if previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
        log(f"Removed the earlier run set aside in {previous}")
    for stale in root.glob(f".{PREVIOUS_RUN}.*"):  # left by a kill while setting aside
        shutil.rmtree(stale, ignore_errors=True)
