"""Low-rank adaptation (LoRA) of a `BertClassifier`'s encoder.

`enable_lora(model, rank=8, alpha=16)` freezes every encoder weight and gives
each chosen projection two small trainable factors, A (in, rank) and B (rank,
out), so that the projection's kernel becomes `W + alpha / rank * A @ B`; the
head keeps training. B starts at zero, so the model starts as the base model.

The factors are Keras' own (`Dense.enable_lora`): `Dense.kernel` then returns
the sum above, and the transformer's fused 2-D path reads `Dense.kernel`, so it
computes with the adapted kernels and gradients reach A and B; a layer called
as a layer (a quantized one) uses Keras' LoRA call. What Keras does not suit is
saving: its `Dense` saves the merged kernel and zeroes both factors on load,
which after a resume would leave A = B = 0 and no gradient to either. The
adapted layers are therefore `LoraDense`, which saves kernel, bias, A and B as
they are.

An adapter file (`save_adapter`) holds the factors and the head, with a JSON
header naming the base model, a sha256 of its config and of the adapted base
kernels, and the rank, alpha and targets; `load_adapter` refuses another base.
Several adapters can be loaded in turn over one base model. `merge_lora` folds
the factors into the kernels for good; `merged_lora` does so for the length of
a block (an export serves plain kernels, with no LoRA ops or variables).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_bert_ft.errors import KerasBertFtError, require_positive_whole
from keras_bert_ft.infra import atomic_write

# Projection names in each transformer block, as `targets`.
ALL_TARGETS = ("query", "key", "value", "attention_output", "intermediate", "output")
DEFAULT_TARGETS = ("query", "key", "value", "attention_output")
ADAPTER_FILE = "adapter.npz"  # its name in a fine-tuning output directory
ADAPTER_FORMAT = "keras_bert_ft.lora_adapter"
ADAPTER_VERSION = 1
_HEADER_KEY = "__header__"


class AdapterError(KerasBertFtError, ValueError):
    """An adapter file that cannot be used: unreadable, or made for another base model or head."""


@dataclass(frozen=True)
class LoraSettings:
    """What a LoRA model adapts: factor rank, scale numerator, projections, base model name."""

    rank: int
    alpha: float
    targets: tuple[str, ...]
    base_model: str | None = None

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class LoraDense(keras.layers.Dense):
    """A `Dense` with LoRA enabled that saves its factors unmerged.

    Keras' `Dense` saves `W + s·A·B` as the kernel and zeroes A and B on load;
    this class saves and loads kernel, bias, A and B each as it is, so a
    checkpoint resumes the same adapter. Made by `enable_lora` from a `Dense`.
    """

    def _unmerged_variables(self) -> list:
        return [v for v in (self._kernel, self.bias, self.lora_kernel_a, self.lora_kernel_b)
                if v is not None]

    def save_own_variables(self, store):
        if not self.lora_enabled or self.quantization_mode is not None:
            return super().save_own_variables(store)
        for i, variable in enumerate(self._unmerged_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        if not self.lora_enabled or self.quantization_mode is not None:
            return super().load_own_variables(store)
        variables = self._unmerged_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"layer {self.path}: the saved weights hold {len(store.keys())} arrays, this "
                f"LoRA layer has {len(variables)} (kernel, bias, LoRA A and B); load them into "
                "a model with the same LoRA settings")
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])


# --------------------------------------------------------------------------- targets


def _encoder(model: keras.Model) -> keras.Model:
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "blocks"):
        raise ValueError(f"{type(encoder).__name__} does not expose its transformer blocks; "
                         "LoRA needs a BertEncoder (e.g. from load_pretrained)")
    return encoder


def _block_projections(block) -> dict[str, keras.layers.Dense]:
    return {"query": block.attention.query, "key": block.attention.key,
            "value": block.attention.value, "attention_output": block.attention.output_dense,
            "intermediate": block.intermediate, "output": block.output_dense}


def check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """`targets` as a tuple in canonical order; `ValueError` for unknown or no names."""
    targets = tuple(targets)
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown or not targets:
        raise ValueError(f"LoRA targets must be some of {', '.join(ALL_TARGETS)}; "
                         f"got {', '.join(targets) or 'none'}")
    return tuple(t for t in ALL_TARGETS if t in targets)


def target_layers(model: keras.Model, targets: Sequence[str]) -> dict[str, keras.layers.Dense]:
    """The projections `targets` of every transformer block, keyed "layer_<i>/<target>".

    Blocks shared across layers (ALBERT-style) are listed once.
    """
    layers, seen = {}, set()
    for i, block in enumerate(_encoder(model).blocks):
        if id(block) in seen:
            continue
        seen.add(id(block))
        projections = _block_projections(block)
        for target in check_targets(targets):
            layers[f"layer_{i}/{target}"] = projections[target]
    return layers


def lora_settings(model: keras.Model) -> LoraSettings | None:
    """The model's LoRA settings, or None when it has no adapter."""
    return getattr(model, "_lora_settings", None)


def lora_layers(model: keras.Model) -> dict[str, keras.layers.Dense]:
    """The adapted projections of `model` (empty without LoRA)."""
    settings = lora_settings(model)
    return {} if settings is None else target_layers(model, settings.targets)


def lora_variables(model: keras.Model) -> list:
    """The LoRA factors of `model`, A then B of each adapted projection."""
    return [v for layer in lora_layers(model).values()
            for v in (layer.lora_kernel_a, layer.lora_kernel_b)]


def trainable_fraction(model: keras.Model) -> tuple[int, int]:
    """(trainable parameters, all parameters) of `model`."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return trainable, sum(int(np.prod(v.shape)) for v in model.weights)


# --------------------------------------------------------------------------- enabling


def enable_lora(model: keras.Model, rank: int = 8, alpha: float = 16,
                targets: Sequence[str] = DEFAULT_TARGETS,
                base_model: str | None = None) -> LoraSettings:
    """Add rank-`rank` factors to the `targets` projections and freeze the rest of the encoder.

    The head (every layer outside `model.encoder`) keeps its trainable state.
    `base_model` names the pretrained weights (e.g. "all-minilm-l6-v2") in
    adapter files. Compile the model after this (Keras fixes the trainable
    set at compile); a later `set_encoder_trainable` would unfreeze the
    encoder again. Raises `ValueError` when LoRA is already enabled.
    """
    require_positive_whole(rank, "LoRA rank")
    if not alpha > 0:
        raise ValueError(f"LoRA alpha must be positive, got {alpha!r}")
    if lora_settings(model) is not None:
        raise ValueError("LoRA is already enabled on this model; remove_lora or merge_lora first")
    settings = LoraSettings(int(rank), float(alpha), check_targets(targets), base_model)
    encoder = _encoder(model)
    for name, layer in target_layers(model, settings.targets).items():
        if type(layer) is not keras.layers.Dense:
            raise ValueError(f"{name} is a {type(layer).__name__}; LoRA adapts plain Dense "
                             "layers")
        layer.enable_lora(settings.rank, lora_alpha=settings.alpha)
        layer.__class__ = LoraDense
    model._lora_settings = settings
    factors = {id(v) for v in lora_variables(model)}
    for variable in encoder.weights:
        variable.trainable = id(variable) in factors
    _reset_compiled_functions(model)
    return settings


def _reset_compiled_functions(model: keras.Model) -> None:
    # Traced train/test/predict functions hold the old variables and scale.
    for name in ("train_function", "test_function", "predict_function"):
        if hasattr(model, name):
            setattr(model, name, None)


def _detach(layer: keras.layers.Dense) -> tuple:
    """Take the factors off `layer` (a plain frozen `Dense` after); returns them."""
    a, b = layer.lora_kernel_a, layer.lora_kernel_b
    for name, variable in (("lora_kernel_a", a), ("lora_kernel_b", b)):
        layer._untrack_variable(variable)
        object.__delattr__(layer, name)
    layer.lora_enabled = False
    layer.lora_rank = layer.lora_alpha = None
    layer.__class__ = keras.layers.Dense
    return a, b


def _attach(layer: keras.layers.Dense, a, b, settings: LoraSettings) -> None:
    """Put factors taken off by `_detach` back."""
    layer._tracker.unlock()
    layer.lora_kernel_a, layer.lora_kernel_b = a, b
    layer._tracker.lock()
    layer.lora_enabled = True
    layer.lora_rank, layer.lora_alpha = settings.rank, settings.alpha
    layer.__class__ = LoraDense


def _merged_kernel(layer: keras.layers.Dense, settings: LoraSettings):
    # In float32 from the variables (`Dense.kernel` would cast to the compute dtype).
    delta = tf.matmul(layer.lora_kernel_a, layer.lora_kernel_b) * settings.scale
    return tf.convert_to_tensor(layer._kernel) + tf.cast(delta, layer._kernel.dtype)


def merge_lora(model: keras.Model) -> None:
    """Fold each adapter into its kernel (`W += alpha / rank * A @ B`) and drop the factors.

    The model is then a plain model with the same outputs and no LoRA ops; its
    encoder weights stay frozen (`set_encoder_trainable(None)` trains them).
    """
    settings = lora_settings(model)
    if settings is None:
        raise ValueError("this model has no LoRA adapter to merge")
    for layer in lora_layers(model).values():
        layer._kernel.assign(_merged_kernel(layer, settings))
        _detach(layer)
    model._lora_settings = None
    _reset_compiled_functions(model)


def remove_lora(model: keras.Model) -> None:
    """Drop the factors without merging: the encoder is the base model again (still frozen)."""
    if lora_settings(model) is None:
        raise ValueError("this model has no LoRA adapter to remove")
    for layer in lora_layers(model).values():
        _detach(layer)
    model._lora_settings = None
    _reset_compiled_functions(model)


@contextlib.contextmanager
def merged_lora(model: keras.Model) -> Iterator[None]:
    """Within this block the model has merged kernels and no LoRA factors (for an
    export); afterwards the base kernels and the factors are back exactly."""
    settings = lora_settings(model)
    if settings is None:
        yield
        return
    layers = list(lora_layers(model).values())
    saved = []
    for layer in layers:
        base = layer._kernel.numpy()
        layer._kernel.assign(_merged_kernel(layer, settings))
        saved.append((layer, base, *_detach(layer)))
    model._lora_settings = None
    _reset_compiled_functions(model)
    try:
        yield
    finally:
        for layer, base, a, b in saved:
            layer._kernel.assign(base)
            _attach(layer, a, b, settings)
        model._lora_settings = settings
        _reset_compiled_functions(model)


# --------------------------------------------------------------------------- adapter files


def base_fingerprint(model: keras.Model, targets: Sequence[str]) -> dict:
    """sha256 of the encoder config and of the base kernels of `targets` (what an
    adapter is relative to)."""
    encoder = _encoder(model)
    config = getattr(encoder, "config", None)
    config_dict = config.to_dict() if config is not None else encoder.get_config()
    digest = hashlib.sha256()
    for name, layer in target_layers(model, targets).items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(layer._kernel.numpy(), np.float32).tobytes())
    return {"base_config_sha256": hashlib.sha256(
                json.dumps(config_dict, sort_keys=True).encode()).hexdigest(),
            "base_weights_sha256": digest.hexdigest()}  # fmt: skip


def _head_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """The weights outside the encoder, keyed "head/<layer>/<weight>"."""
    encoder = getattr(model, "encoder", None)
    out = {}
    for layer in model.layers:
        if layer is encoder:
            continue
        for variable in layer.weights:
            out[f"head/{layer.name}/{variable.name}"] = variable
    return out


def save_adapter(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write the model's LoRA factors and head to `path` (.npz with a JSON header), atomically."""
    settings = lora_settings(model)
    if settings is None:
        raise ValueError("this model has no LoRA adapter to save (enable_lora first)")
    arrays = {}
    for name, layer in lora_layers(model).items():
        arrays[f"lora/{name}/a"] = layer.lora_kernel_a.numpy()
        arrays[f"lora/{name}/b"] = layer.lora_kernel_b.numpy()
    for name, variable in _head_variables(model).items():
        arrays[name] = np.asarray(variable.numpy())
    header = {
        "format": ADAPTER_FORMAT, "version": ADAPTER_VERSION,
        **asdict(settings), "targets": list(settings.targets),
        **base_fingerprint(model, settings.targets),
        "label_names": list(getattr(model, "label_names", None) or []) or None,
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{_HEADER_KEY: np.array(json.dumps(header))}, **arrays)
    return atomic_write(path, buffer.getvalue())


def read_adapter(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of an adapter file; `AdapterError` when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data[_HEADER_KEY]))
            arrays = {k: data[k] for k in data.files if k != _HEADER_KEY}
    except FileNotFoundError:
        raise AdapterError(f"{path}: no such adapter file") from None
    except (OSError, ValueError, KeyError) as err:
        raise AdapterError(f"{path}: not a LoRA adapter file ({err})") from None
    if header.get("format") != ADAPTER_FORMAT or header.get("version") != ADAPTER_VERSION:
        raise AdapterError(f"{path}: not a version-{ADAPTER_VERSION} LoRA adapter file "
                           f"(format {header.get('format')!r}, version {header.get('version')!r})")
    missing = set(header["arrays"]) - set(arrays)
    if missing:
        raise AdapterError(f"{path}: missing arrays {', '.join(sorted(missing))}")
    return header, arrays


def load_adapter(model: keras.Model, path: str | os.PathLike) -> LoraSettings:
    """Put the adapter in `path` (factors and head) on `model`, replacing any adapter it had.

    `model` must hold the same base model (config and adapted kernels) and a
    head of the same shape; otherwise `AdapterError` says what differs, and
    the model is left as it was. Compile again before training.
    """
    header, arrays = read_adapter(path)
    settings = LoraSettings(int(header["rank"]), float(header["alpha"]),
                            check_targets(header["targets"]), header.get("base_model"))
    base = f"base model {settings.base_model or '(unnamed)'}"
    try:
        fingerprint = base_fingerprint(model, settings.targets)
    except ValueError as err:
        raise AdapterError(f"{path}: {err}") from None
    if fingerprint["base_config_sha256"] != header["base_config_sha256"]:
        raise AdapterError(f"{path}: the adapter was trained on {base}, whose encoder config "
                           "differs from this model's (another architecture or size)")
    if fingerprint["base_weights_sha256"] != header["base_weights_sha256"]:
        raise AdapterError(f"{path}: the adapter was trained on {base}, whose weights differ "
                           "from this model's encoder (another checkpoint, or merged kernels)")
    head = _head_variables(model)
    wanted = {k: tuple(v) for k, v in header["arrays"].items() if k.startswith("head/")}
    have = {k: tuple(v.shape) for k, v in head.items()}
    if wanted != have:
        diff = sorted(set(wanted.items()) ^ set(have.items()))
        raise AdapterError(f"{path}: the adapter's head differs from this model's "
                           f"(first difference: {diff[0][0]} {diff[0][1]})")
    current = lora_settings(model)
    if current != settings:
        if current is not None:
            remove_lora(model)
        enable_lora(model, settings.rank, settings.alpha, settings.targets,
                    settings.base_model)
    for name, layer in lora_layers(model).items():
        layer.lora_kernel_a.assign(arrays[f"lora/{name}/a"])
        layer.lora_kernel_b.assign(arrays[f"lora/{name}/b"])
    for name, variable in head.items():
        variable.assign(arrays[name])
    if header.get("label_names") and hasattr(model, "label_names"):
        model.label_names = tuple(header["label_names"])
    _reset_compiled_functions(model)
    return settings
