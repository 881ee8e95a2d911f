"""Hugging Face directories: `config.json`, `model.safetensors` or
`pytorch_model.bin`, and `vocab.txt` or (as `transformers` 5 writes them) only a
`tokenizer.json`. BERT, DistilBERT and ELECTRA models (`model_type`).

A checkpoint format module (see `keras_bert_ft.checkpoints`): detect, read_config,
read_vocab, load, save."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np

from keras_bert_ft.checkpoints._common import (
    VocabSource,
    Vocabulary,
    apply_options,
    assign_weights,
    check_vocab,
)
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.infra import atomic_write

NAME = "hf"
TITLE = "Hugging Face directory"
REQUIRED_FILES = ("config.json", "model.safetensors or pytorch_model.bin",
                  "vocab.txt or tokenizer.json")  # fmt: skip


def detect(path: str) -> bool:
    """Whether the directory `path` holds a Hugging Face model (config + weight file)."""
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, f)) for f in ("model.safetensors", "pytorch_model.bin")
    )


# DistilBERT's module names for the parts of a canonical (BERT) layer.
_DISTILBERT_PARTS = {
    "attention/self/query": "attention.q_lin",
    "attention/self/key": "attention.k_lin",
    "attention/self/value": "attention.v_lin",
    "attention/output/dense": "attention.out_lin",
    "attention/output/LayerNorm": "sa_layer_norm",
    "intermediate/dense": "ffn.lin1",
    "output/dense": "ffn.lin2",
    "output/LayerNorm": "output_layer_norm",
}
# The prefix of the base model inside task models (BertForSequenceClassification, ...).
_MODEL_PREFIXES = {"bert": ("bert.", "model."), "distilbert": ("distilbert.",),
                   "electra": ("electra.",)}  # fmt: skip


def hf_name(canonical: str, model_type: str = "bert") -> str:
    """The Hugging Face parameter name of a canonical weight name (no model prefix)."""
    if model_type == "electra" and canonical.startswith("encoder/embedding_hidden_mapping_in/"):
        return "embeddings_project." + hf_name(canonical).rsplit(".", 1)[1]
    if model_type == "distilbert":
        m = re.fullmatch(r"encoder/layer_(\d+)/(.+)/(\w+)", canonical)
        if m:
            suffix = hf_name(canonical).rsplit(".", 1)[1]
            return f"transformer.layer.{m.group(1)}.{_DISTILBERT_PARTS[m.group(2)]}.{suffix}"
    *parts, last = canonical.split("/")
    suffix = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}.get(last)
    if suffix is None:  # an embedding table: the name itself is the module
        parts, suffix = [*parts, last], "weight"
    return re.sub(r"layer_(\d+)", r"layer.\1", ".".join(parts)) + "." + suffix


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """All tensors of a HF directory's weight file, as float32 numpy arrays."""
    st = os.path.join(path, "model.safetensors")
    if os.path.isfile(st):
        try:
            from safetensors.numpy import load_file

            state = load_file(st)
        except (TypeError, ValueError):  # bfloat16 has no numpy dtype
            from safetensors.tensorflow import load_file

            state = {k: v.numpy() for k, v in load_file(st).items()}
        return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
    bin_path = os.path.join(path, "pytorch_model.bin")
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{bin_path} is a PyTorch pickle and reading it needs torch, which is not "
            "installed. Install torch (the CPU build is enough), or convert the "
            "directory to model.safetensors."
        ) from e
    # weights_only=True: never run code from the pickle.
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _is_transposed(canonical: str) -> bool:
    # torch Linear stores (out, in); Keras Dense (in, out).
    return canonical.endswith("/kernel")


def load_hf_weights(encoder, state: dict[str, np.ndarray], where: str) -> None:
    """Assign a HF state dict of the encoder's family (with or without the task models'
    `bert.` / `distilbert.` / `electra.` prefix) to `encoder`."""
    model_type = encoder.config.model_type
    prefix = next(
        (p for p in ("", *_MODEL_PREFIXES[model_type])
         if p + "embeddings.word_embeddings.weight" in state),
        "",
    )  # fmt: skip

    def fetch(canonical):
        name = prefix + hf_name(canonical, model_type)
        value = state.get(name)
        if value is None:  # old checkpoints call LayerNorm parameters gamma / beta
            legacy = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta"
            )
            value = state.get(legacy)
        transposed = _is_transposed(canonical)
        if value is not None and transposed:
            value = value.T
        return name, value, transposed

    assign_weights(encoder, fetch, where)


def read_config(path: str) -> BertConfig:
    """The encoder config of a HF directory; `do_lower_case` from its tokenizer files."""
    config = BertConfig.from_json_file(os.path.join(path, "config.json"), fmt="hf")
    tok_cfg = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(tok_cfg):
        with open(tok_cfg, encoding="utf-8") as f:
            config.do_lower_case = bool(json.load(f).get("do_lower_case", config.do_lower_case))
    vocab = read_vocab(path)
    if isinstance(vocab, Vocabulary):  # tokenizer.json: its normalizer is what HF applies
        config.do_lower_case = vocab.lowercase
    return config


def read_vocab(path: str) -> VocabSource | None:
    """The vocabulary of a HF directory: `vocab.txt`, else the one in `tokenizer.json`,
    else None."""
    vocab_txt = os.path.join(path, "vocab.txt")
    if os.path.isfile(vocab_txt):
        return vocab_txt
    tokenizer_json = os.path.join(path, "tokenizer.json")
    if os.path.isfile(tokenizer_json):
        return read_tokenizer_json(tokenizer_json)
    return None


def read_tokenizer_json(path: str) -> Vocabulary:
    """The WordPiece vocabulary and BERT normalisation of a `tokenizers` `tokenizer.json`.

    Raises CheckpointFormatError for other tokenizer models (BPE, Unigram, ...) and
    normalizers this package's tokenizer cannot reproduce.
    """
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointFormatError(f"{path}: not a valid JSON file ({e})") from None
    model = spec.get("model") or {}
    kind = model.get("type")
    if kind != "WordPiece":
        raise CheckpointFormatError(
            f"{path}: a {kind or 'unknown'} tokenizer is not supported; only WordPiece "
            "(BERT) tokenizers can be loaded. The model is probably not a BERT model."
        )
    by_id = {int(i): token for token, i in model.get("vocab", {}).items()}
    tokens = [by_id.get(i) for i in range(len(by_id))]
    if not tokens or None in tokens:
        raise CheckpointFormatError(
            f"{path}: the WordPiece vocabulary ids are not 0..{len(by_id) - 1}"
        )
    extra = sorted({t["content"] for t in spec.get("added_tokens") or []} - set(tokens))
    if extra:
        raise CheckpointFormatError(
            f"{path}: added tokens outside the WordPiece vocabulary are not supported: "
            f"{', '.join(map(repr, extra[:5]))}"
        )
    lowercase, strip_accents = _bert_normalizer(spec.get("normalizer"), path)
    pre_tokenizer = (spec.get("pre_tokenizer") or {}).get("type")
    if pre_tokenizer != "BertPreTokenizer":
        raise CheckpointFormatError(
            f"{path}: the pre-tokenizer {pre_tokenizer!r} is not supported; only "
            "BertPreTokenizer (BERT's split on whitespace and punctuation) is"
        )
    vocab = Vocabulary(
        tokens=tuple(tokens), source=path, lowercase=lowercase, strip_accents=strip_accents,
        unk_token=model.get("unk_token", "[UNK]"),
        continuation_prefix=model.get("continuing_subword_prefix", "##"),
        max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
    )  # fmt: skip
    missing = [t for t in (vocab.unk_token, "[CLS]", "[SEP]") if t not in set(tokens)]
    if missing:
        raise CheckpointFormatError(f"{path}: the vocabulary lacks the BERT tokens {missing}")
    return vocab


def _bert_normalizer(normalizer: dict | None, path: str) -> tuple[bool, bool | None]:
    # (lowercase, strip_accents) of a BertNormalizer. The package's tokenizer always
    # cleans text and splits CJK characters, as BERT does, so those must be on.
    normalizer = normalizer or {}
    if normalizer.get("type") != "BertNormalizer" or not (
        normalizer.get("clean_text", True) and normalizer.get("handle_chinese_chars", True)
    ):
        raise CheckpointFormatError(
            f"{path}: the normalizer {json.dumps(normalizer)} is not supported; only "
            "BertNormalizer with clean_text and handle_chinese_chars (BERT's) is"
        )
    return bool(normalizer.get("lowercase", True)), normalizer.get("strip_accents")


def load(path: str, num_layers: int | None = None, **overrides):
    """A `BertEncoder` of the model's family filled from the HF directory `path`; returns
    `(encoder, config, vocab)`, the config cut to `num_layers` and with `overrides` set."""
    from keras_bert_ft.layers import BertEncoder

    config = apply_options(read_config(path), num_layers, overrides)
    encoder = BertEncoder(config)
    vocab = read_vocab(path)
    load_hf_weights(encoder, read_state_dict(path), where=path)
    check_vocab(vocab, config.vocab_size)
    return encoder, config, vocab


_TOKENIZER_CLASSES = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer",
                      "electra": "ElectraTokenizer"}  # fmt: skip


def save(encoder, path: str, vocab_file: str | None = None) -> None:
    """Write `encoder` as a HF directory that `transformers` loads as the family's model
    (`BertModel`, `DistilBertModel` or `ElectraModel`)."""
    from safetensors.numpy import save_file

    os.makedirs(path, exist_ok=True)
    config = encoder.config
    if vocab_file is not None:
        check_vocab(vocab_file, config.vocab_size)
        atomic_write(os.path.join(path, "vocab.txt"), lambda tmp: shutil.copyfile(vocab_file, tmp))
    state = {}
    for name, var in encoder.weight_map().items():
        value = np.asarray(var.numpy(), dtype=np.float32)
        value = value.T if _is_transposed(name) else value
        state[hf_name(name, config.model_type)] = np.ascontiguousarray(value)
    atomic_write(
        os.path.join(path, "model.safetensors"),
        lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}),
    )
    _write_json(os.path.join(path, "config.json"), config.to_hf_dict())
    _write_json(
        os.path.join(path, "tokenizer_config.json"),
        {"do_lower_case": config.do_lower_case,
         "tokenizer_class": _TOKENIZER_CLASSES[config.model_type]},
    )


def _write_json(path: str, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2))
