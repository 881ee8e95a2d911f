"""What this CPU needs from TensorFlow to run the encoder fast.

oneDNN: TensorFlow 2.21 turns its oneDNN kernels on by default only on CPUs with
neural-network instructions (AVX512-VNNI, AVX512-BF16, AMX and the like); elsewhere
(AVX2-only CPUs) its matmuls fall back to Eigen's, built for AVX without FMA. On an
AVX2-only EPYC oneDNN made our training step 1.55x and `predict` 1.7x faster
(docs/speed.md, round 12), so importing the package turns it on for the process
(`prefer_onednn`), unless TF_ENABLE_ONEDNN_OPTS is set or TensorFlow is already loaded
(it reads the variable once, at import).

bfloat16:
TensorFlow's bfloat16 matmuls gain on a CPU only through oneDNN's bfloat16 kernels,
which use AVX512-BF16, AMX or AVX-NE-CONVERT. On the AVX2-only EPYC of docs/speed.md
(round 12) a bfloat16 export ran at 0.67x and mixed_bfloat16 training at 0.66x of
float32, on top of the lower precision; so both warn on a CPU without those
instructions.

Frozen weights: with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS set, oneDNN keeps the first
weights each matmul reads. A server of a bfloat16 export gains from it (docs/serving.md);
training would silently stop changing the model, so `refuse_frozen_weights` stops it.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

# /proc/cpuinfo's names for the instructions oneDNN's bfloat16 kernels use.
BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16", "avx_ne_convert")


class CpuInfo(NamedTuple):
    model_name: str
    flags: frozenset[str]


@functools.cache
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo | None:
    """The first processor's model name and feature flags; None where `path` is
    unreadable or lists no flags (not Linux, or a restricted container)."""
    name, flags = "unknown", None
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown":
                    name = value.strip()
                elif key == "flags" and flags is None:
                    flags = frozenset(value.split())
    except OSError:
        return None
    return None if flags is None else CpuInfo(name, flags)


def bfloat16_instructions(info: CpuInfo | None = None) -> tuple[str, ...] | None:
    """The bfloat16 instruction sets this CPU has (of `BFLOAT16_FLAGS`), empty when it
    has none; None when its features cannot be read."""
    info = info if info is not None else cpu_info()
    if info is None:
        return None
    return tuple(flag for flag in BFLOAT16_FLAGS if flag in info.flags)


def warn_if_bfloat16_is_slow(what: str, info: CpuInfo | None = None) -> bool:
    """Warn that `what` (e.g. "a bfloat16 export") will be slower than float32 on this
    CPU when it has no bfloat16 instructions; return whether it warned."""
    info = info if info is not None else cpu_info()
    if bfloat16_instructions(info) != ():
        return False
    warnings.warn(
        f"{what}: this CPU ({info.model_name}) has none of the bfloat16 instructions "
        f"oneDNN uses ({', '.join(BFLOAT16_FLAGS)}), so bfloat16 runs slower than "
        "float32 on it; use float32 here, bfloat16 on a CPU that has them",
        stacklevel=3)
    return True


# TensorFlow's oneDNN matmuls take the weights they first read as constant and reuse
# their reordered copy: right for a server (bfloat16 exports served 1.2-1.3x faster
# on an AMX CPU, docs/serving.md), silently wrong where weights change.
FROZEN_WEIGHTS_VARIABLE = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"


def refuse_frozen_weights(what: str, environ: dict | None = None) -> None:
    """Raise RuntimeError when TF_ONEDNN_ASSUME_FROZEN_WEIGHTS is on: `what` (training)
    would update weights that TensorFlow's oneDNN matmuls no longer read."""
    environ = os.environ if environ is None else environ
    value = environ.get(FROZEN_WEIGHTS_VARIABLE, "").strip().lower()
    if value not in ("1", "true"):
        return
    raise RuntimeError(
        f"{what} with {FROZEN_WEIGHTS_VARIABLE}={environ[FROZEN_WEIGHTS_VARIABLE]} in the "
        "environment: TensorFlow's oneDNN matmuls then keep the first weights they read, "
        "so the updates would not change what the model computes. Unset it for training; "
        "set it only for a process that serves an export (docs/serving.md)")


def _x86_64_linux() -> bool:
    # Where TF_ENABLE_ONEDNN_OPTS picks between oneDNN and Eigen (TensorFlow's x86 builds).
    return sys.platform == "linux" and platform.machine() == "x86_64"


def prefer_onednn(environ: dict | None = None) -> bool:
    """Set TF_ENABLE_ONEDNN_OPTS=1 on x86-64 Linux when nobody chose and TensorFlow is
    not loaded yet; return whether it was set. (Where TensorFlow already enables
    oneDNN by default this changes nothing.)"""
    environ = os.environ if environ is None else environ
    if ONEDNN_VARIABLE in environ or "tensorflow" in sys.modules:
        return False
    if not _x86_64_linux():
        return False
    environ[ONEDNN_VARIABLE] = "1"
    return True


def warn_if_onednn_is_off() -> bool:
    """Warn when TensorFlow was loaded before the package with its oneDNN kernels off
    by its default on this CPU; return whether it warned."""
    if ONEDNN_VARIABLE in os.environ or "tensorflow" not in sys.modules:
        return False
    if not _x86_64_linux():
        return False
    try:  # (a private module: if a TensorFlow release moves it, stay quiet)
        from tensorflow.python.util import _pywrap_util_port

        if _pywrap_util_port.IsMklEnabled():
            return False
    except (ImportError, AttributeError):
        return False
    warnings.warn(
        "TensorFlow was imported before keras_bert_ft with its oneDNN kernels off (its "
        "default on CPUs without instructions such as AVX512-VNNI, AVX512-BF16 or AMX); "
        "the encoder trained 1.55x faster with them on an AVX2 CPU: set "
        "TF_ENABLE_ONEDNN_OPTS=1 before importing tensorflow (or keras), or import "
        "keras_bert_ft first", stacklevel=3)
    return True
