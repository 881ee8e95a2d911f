"""TF Serving configuration files written next to an export.

`tensorflow_model_server` takes a model list (`--model_config_file`, a text
protobuf `ModelServerConfig`) and, with `--enable_batching`, the batching
settings (`--batching_parameters_file`, a text protobuf `BatchingParameters`).
`write_serving_config` writes both into the export root, the folder that holds
one base folder per model (`saved_models/` for `saved_models/<name>/<version>/`):

    tensorflow_model_server --model_config_file=saved_models/models.config \\
        --enable_batching --batching_parameters_file=saved_models/batching_parameters.txt

The model list names every model folder under the root that has a numeric
version folder, so exporting a second model adds it. The batching values suit
CPU serving of these models; docs/serving.md ("CPU tuning") says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keras_bert_ft.infra import atomic_write

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"


@dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's batching settings (the fields of its `BatchingParameters` proto).

    Defaults for CPU serving of a small BERT, from
    bench/results/serving_latency_cpu_tuning.md (docs/serving.md, "CPU tuning"):
    batches of at most 8 texts (83% of batch 32's texts/s at under a third of its
    latency); a 2 ms wait for a batch to fill (a small part of a batch-1 call); one
    batch thread per core and a queue of as many batches, TF Serving's starting
    point for CPU-only servers (a bounded queue answers "unavailable" quickly under
    overload instead of letting every request wait). `pad_variable_length_inputs`
    lets requests of the id signature
    (ids of different lengths) share a batch; the text signature takes 1-D strings.
    """

    max_batch_size: int = 8
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 0  # 0: one per CPU core of this machine
    max_enqueued_batches: int = 0  # 0: as many as num_batch_threads
    pad_variable_length_inputs: bool = True

    def resolved(self) -> BatchingParameters:
        """The parameters with the 0 (automatic) values filled in."""
        threads = self.num_batch_threads or (os.cpu_count() or 1)
        return BatchingParameters(
            max_batch_size=self.max_batch_size,
            batch_timeout_micros=self.batch_timeout_micros,
            num_batch_threads=threads,
            max_enqueued_batches=self.max_enqueued_batches or threads,
            pad_variable_length_inputs=self.pad_variable_length_inputs,
        )

    def to_text(self) -> str:
        """The text protobuf that `--batching_parameters_file` reads."""
        p = self.resolved()
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(p, name) < 1:
                raise ValueError(f"batching {name} must be at least 1, got {getattr(p, name)}")
        if p.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be 0 or more, got "
                             f"{p.batch_timeout_micros}")  # fmt: skip
        # The numeric fields are google.protobuf.Int64Value wrappers, hence `{ value: }`.
        return (
            f"max_batch_size {{ value: {p.max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {p.batch_timeout_micros} }}\n"
            f"max_enqueued_batches {{ value: {p.max_enqueued_batches} }}\n"
            f"num_batch_threads {{ value: {p.num_batch_threads} }}\n"
            f"pad_variable_length_inputs: {'true' if p.pad_variable_length_inputs else 'false'}\n"
        )


def models_config_text(models: dict[str, str]) -> str:
    """The text protobuf `ModelServerConfig` for `{name: base_path}` (TensorFlow models)."""
    entries = "".join(
        "  config {\n"
        f"    name: {_quote(name)}\n"
        f"    base_path: {_quote(path)}\n"
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name, path in sorted(models.items())
    )
    return "model_config_list {\n" + entries + "}\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def served_models(root: str | os.PathLike) -> dict[str, str]:
    """`{folder name: absolute path}` of every model folder under `root` that holds a
    numeric version folder (what TF Serving can load)."""
    found = {}
    base = Path(root)
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if entry.is_dir() and any(p.is_dir() and p.name.isdigit() for p in entry.iterdir()):
            found[entry.name] = str(entry.resolve())
    return found


def write_serving_config(
    export_dir: str | os.PathLike,
    batching: BatchingParameters | None = None,
    *,
    server_root: str | None = None,
) -> tuple[Path, Path]:
    """Write `models.config` and `batching_parameters.txt` into the parent of
    `export_dir` (a model's base folder, `saved_models/<name>`), atomically.

    The model list holds every exported model under that parent, this one included.
    Base paths are absolute: this machine's, or under `server_root` where the server
    sees the export root elsewhere (a Docker mount: `server_root="/models"`).
    Returns both paths.
    """
    model_dir = Path(export_dir).resolve()
    root = model_dir.parent
    models = served_models(root)
    models.setdefault(model_dir.name, str(model_dir))
    if server_root is not None:
        if not server_root.startswith("/"):
            raise ValueError(f"server_root must be an absolute path, got {server_root!r}")
        models = {name: f"{server_root.rstrip('/')}/{name}" for name in models}
    text = (batching or BatchingParameters()).to_text()
    return (atomic_write(root / MODELS_CONFIG, models_config_text(models)),
            atomic_write(root / BATCHING_PARAMETERS, text))  # fmt: skip
