"""Weights of the pretraining heads (masked LM, next sentence) in the checkpoint formats
that carry them: Hugging Face (`cls.predictions.*`, `cls.seq_relationship.*`, with the
encoder under `bert.`) and Google (`cls/predictions/*`, `cls/seq_relationship/*`).

A source without a head leaves it freshly initialised, and the loader says so.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from keras_bert_ft.checkpoints import google, huggingface
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.infra import atomic_write

# Google's name (the canonical one) -> (Hugging Face name, stored transposed in HF,
# stored transposed in Google). Keras kernels are (in, out).
MLM_NAMES = {
    "cls/predictions/transform/dense/kernel": ("cls.predictions.transform.dense.weight", True,
                                               False),
    "cls/predictions/transform/dense/bias": ("cls.predictions.transform.dense.bias", False, False),
    "cls/predictions/transform/LayerNorm/gamma": ("cls.predictions.transform.LayerNorm.weight",
                                                  False, False),
    "cls/predictions/transform/LayerNorm/beta": ("cls.predictions.transform.LayerNorm.bias",
                                                 False, False),
    "cls/predictions/output_bias": ("cls.predictions.bias", False, False),
}
NSP_NAMES = {
    "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", True, True),
    "cls/seq_relationship/output_bias": ("cls.seq_relationship.bias", False, False),
}
# Other names Hugging Face checkpoints use for the same tensors.
_HF_ALIASES = {
    "cls.predictions.bias": ("cls.predictions.decoder.bias",),
    "cls.predictions.transform.LayerNorm.weight": ("cls.predictions.transform.LayerNorm.gamma",),
    "cls.predictions.transform.LayerNorm.bias": ("cls.predictions.transform.LayerNorm.beta",),
}


def head_weight_map(pretrainer) -> dict:
    """Every head variable of a `BertPretrainer` under its Google name."""
    mlm, nsp = pretrainer.mlm_head, pretrainer.nsp_head
    return {
        "cls/predictions/transform/dense/kernel": mlm.dense.kernel,
        "cls/predictions/transform/dense/bias": mlm.dense.bias,
        "cls/predictions/transform/LayerNorm/gamma": mlm.layer_norm.gamma,
        "cls/predictions/transform/LayerNorm/beta": mlm.layer_norm.beta,
        "cls/predictions/output_bias": mlm.output_bias,
        "cls/seq_relationship/output_weights": nsp.dense.kernel,
        "cls/seq_relationship/output_bias": nsp.dense.bias,
    }


def notice(message: str) -> None:
    """A one-line notice on stderr."""
    print(f"notice: {message}", file=sys.stderr, flush=True)


def _hf_tensors(path: str) -> dict[str, np.ndarray]:
    """Head tensors of a HF directory under their Google names, in Keras layout."""
    state = huggingface.read_state_dict(path)
    found = {}
    for canonical, (name, transposed, _) in {**MLM_NAMES, **NSP_NAMES}.items():
        for candidate in (name, *_HF_ALIASES.get(name, ())):
            if candidate in state:
                value = state[candidate]
                found[canonical] = value.T if transposed else value
                break
    return found


def _google_tensors(path: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(google.checkpoint_prefix(path))
    shapes = reader.get_variable_to_shape_map()
    found = {}
    for canonical, (_, _, transposed) in {**MLM_NAMES, **NSP_NAMES}.items():
        if canonical in shapes:
            value = reader.get_tensor(canonical)
            found[canonical] = value.T if transposed else value
    return found


def read_head_tensors(path: str) -> dict[str, np.ndarray]:
    """The head tensors a checkpoint directory holds (maybe none), in Keras layout."""
    if huggingface.detect(path):
        return _hf_tensors(path)
    if google.detect(path):
        return _google_tensors(path)
    return {}


def _assign(variables: dict, tensors: dict, names, where: str) -> None:
    for name in names:
        var, value = variables[name], np.asarray(tensors[name])
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointFormatError(f"{where}: head weight {name!r} has the wrong shape: "
                                  f"expected {tuple(var.shape)}, found {tuple(value.shape)}")
        var.assign(value.astype("float32"))


def load_head_weights(pretrainer, path: str | None) -> dict[str, bool]:
    """Fill the heads of `pretrainer` from the checkpoint directory `path`.

    Returns which heads were loaded, e.g. `{"mlm": True, "nsp": False}`. A head
    the source lacks (entirely) stays freshly initialised, with a notice; a head
    present only in part, or misshapen, raises CheckpointFormatError.
    """
    tensors = read_head_tensors(path) if path is not None and os.path.isdir(path) else {}
    variables = head_weight_map(pretrainer)
    where = path or "the source"
    loaded = {}
    for head, names in (("mlm", MLM_NAMES), ("nsp", NSP_NAMES)):
        present = [n for n in names if n in tensors]
        if not present:
            loaded[head] = False
            if head == "mlm" or pretrainer.nsp:
                kind = "masked-LM" if head == "mlm" else "next-sentence"
                notice(f"{where} has no {kind} head; starting it fresh"
                       + (" (its output projection is tied to the word embeddings)"
                          if head == "mlm" else ""))
            continue
        missing = [n for n in names if n not in tensors]
        if missing:
            raise CheckpointFormatError(
                f"{where}: the {head} head is incomplete; missing {missing}"
            )
        _assign(variables, tensors, names, where)
        loaded[head] = True
    return loaded


def save_hf_pretraining(pretrainer, path: str, vocab_file: str | None = None) -> None:
    """Write encoder and heads as a HF directory that `BertForPreTraining` loads.

    The encoder's weights sit under `bert.` as `BertForPreTraining` names them;
    `BertModel` and this package's loader read that layout too.
    """
    from safetensors.numpy import save_file

    encoder = pretrainer.encoder
    huggingface.save(encoder, path, vocab_file)  # config, vocab, tokenizer config
    state = {}
    for name, var in encoder.weight_map().items():
        value = np.asarray(var.numpy(), dtype=np.float32)
        transposed = name.endswith("/kernel")
        state["bert." + huggingface.hf_name(name)] = value.T if transposed else value
    for name, var in head_weight_map(pretrainer).items():
        hf, transposed, _ = {**MLM_NAMES, **NSP_NAMES}[name]
        value = np.asarray(var.numpy(), dtype=np.float32)
        state[hf] = value.T if transposed else value
    # The decoder is the word-embedding table (tied); written for readers that expect it.
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    state = {k: np.ascontiguousarray(v) for k, v in state.items()}
    atomic_write(os.path.join(path, "model.safetensors"),
                 lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    _add_architecture(os.path.join(path, "config.json"))


def _add_architecture(config_path: str) -> None:
    import json

    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["architectures"] = ["BertForPreTraining"]
    atomic_write(config_path, json.dumps(config, indent=2))


def save_google_pretraining(pretrainer, path: str, vocab_file: str | None = None) -> None:
    """Write encoder and heads as a Google checkpoint (`bert/*` and `cls/*` variables)."""
    import tensorflow as tf

    google.save(pretrainer.encoder, path, vocab_file)  # config, vocab
    items = [(google.PREFIX + n, v) for n, v in pretrainer.encoder.weight_map().items()]
    items = [(n, v.numpy()) for n, v in items]
    for name, var in head_weight_map(pretrainer).items():
        _, _, transposed = {**MLM_NAMES, **NSP_NAMES}[name]
        items.append((name, var.numpy().T if transposed else var.numpy()))
    items.sort(key=lambda item: item[0])
    # Written over the encoder-only checkpoint google.save just wrote, as it writes it.
    tf.raw_ops.SaveV2(
        prefix=os.path.join(path, "bert_model.ckpt"),
        tensor_names=[n for n, _ in items],
        shape_and_slices=[""] * len(items),
        tensors=[np.asarray(v, dtype=np.float32) for _, v in items],
    )
