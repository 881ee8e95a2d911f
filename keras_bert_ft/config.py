"""`BertConfig`: the hyperparameters of a BERT encoder, read from any supported format.

Each checkpoint format spells the same hyperparameters differently, and one of
them, the activation, changes meaning between formats: Hugging Face's "gelu" is
the exact erf form while Google BERT, TF Model Garden and TF-Hub mean the tanh
approximation by the same word. `BertConfig.hidden_act` therefore holds an
unambiguous name ("gelu_exact" or "gelu_tanh", or "relu" / "silu"), and every
reader translates the source's word into it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from keras_bert_ft.errors import CheckpointError

ACTIVATIONS = ("gelu_exact", "gelu_tanh", "relu", "silu")

# What each format means by its activation names.
_HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
_GOOGLE_ACTIVATIONS = {
    "gelu": "gelu_tanh",
    "gelu_exact": "gelu_exact",  # written by this package for exact-GELU models
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


def _translate(name: str, table: dict[str, str], source: str) -> str:
    if name in ACTIVATIONS:
        return name
    if name not in table:
        raise CheckpointError(
            f"unsupported hidden_act {name!r} in the {source} config; supported: "
            f"{', '.join(sorted(table))}"
        )
    return table[name]


@dataclasses.dataclass
class BertConfig:
    """Hyperparameters of a BERT encoder.

    `embedding_size` different from `hidden_size` gives ALBERT-style factorised
    embeddings (a projection after the embedding LayerNorm); `share_layers`
    applies one transformer block `num_layers` times (ALBERT cross-layer sharing).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_exact"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    embedding_size: int | None = None
    share_layers: bool = False
    do_lower_case: bool = True

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.embedding_size == self.hidden_size:
            self.embedding_size = None

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables (`embedding_size`, or `hidden_size`)."""
        return self.embedding_size or self.hidden_size

    def replace(self, **changes: Any) -> BertConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From this class's own `to_dict` form."""
        return cls(**d)

    # ---- Hugging Face config.json -------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From a Hugging Face `config.json` of a BERT model."""
        model_type = d.get("model_type", "bert")
        if model_type != "bert":
            raise CheckpointError(
                f"model_type {model_type!r} is not supported: only BERT models "
                "(model_type 'bert', e.g. bert-base-uncased, all-MiniLM-L6-v2, BioBERT) can be "
                "loaded; RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa and others are different "
                "architectures"
            )
        position = d.get("position_embedding_type", "absolute")
        if position != "absolute":
            raise CheckpointError(
                f"position_embedding_type {position!r} is not supported (only 'absolute')"
            )
        return cls._from_bert_keys(d, _HF_ACTIVATIONS, "Hugging Face")

    @classmethod
    def _from_bert_keys(cls, d: dict[str, Any], activations: dict[str, str],
                        source: str) -> BertConfig:
        # Hugging Face and Google share these keys; only what "gelu" means differs.
        return cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=d["num_attention_heads"],
            intermediate_size=d["intermediate_size"],
            hidden_act=_translate(d.get("hidden_act", "gelu"), activations, source),
            hidden_dropout=d.get("hidden_dropout_prob", 0.1),
            attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
            max_position_embeddings=d.get("max_position_embeddings", 512),
            type_vocab_size=d.get("type_vocab_size", 2),
            layer_norm_eps=d.get("layer_norm_eps", 1e-12),
            initializer_range=d.get("initializer_range", 0.02),
            embedding_size=d.get("embedding_size"),
            share_layers=d.get("kbf_share_layers", False),
        )

    def _bert_keys(self, hidden_act: str) -> dict[str, Any]:
        """The keys Hugging Face and Google configs share, with `hidden_act` as given."""
        d = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": hidden_act,
            "hidden_dropout_prob": self.hidden_dropout,
            "attention_probs_dropout_prob": self.attention_dropout,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
        }
        # Not readable by transformers' BertModel; kept so this package reads them back.
        if self.embedding_size:
            d["embedding_size"] = self.embedding_size
        if self.share_layers:
            d["kbf_share_layers"] = True
        return d

    def to_hf_dict(self) -> dict[str, Any]:
        """As a Hugging Face `config.json` (model_type "bert")."""
        hidden_act = {"gelu_exact": "gelu", "gelu_tanh": "gelu_new"}.get(
            self.hidden_act, self.hidden_act)
        return {"architectures": ["BertModel"], "model_type": "bert",
                **self._bert_keys(hidden_act),
                "position_embedding_type": "absolute", "pad_token_id": 0}

    # ---- Google bert_config.json --------------------------------------------------
    @classmethod
    def from_google_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From Google's `bert_config.json`, where "gelu" means the tanh form."""
        return cls._from_bert_keys(d, _GOOGLE_ACTIVATIONS, "Google")

    def to_google_dict(self) -> dict[str, Any]:
        """As Google's `bert_config.json` ("gelu" there means the tanh form)."""
        return self._bert_keys({"gelu_tanh": "gelu"}.get(self.hidden_act, self.hidden_act))

    # ---- keras-hub BertBackbone ---------------------------------------------------
    @classmethod
    def from_keras_hub_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From a keras-hub `BertBackbone` config (bare, or a preset's `config.json`).

        keras-hub's BertBackbone always uses the tanh-approximated GELU.
        """
        if "config" in d and "class_name" in d:
            d = d["config"]
        return cls(
            vocab_size=d["vocabulary_size"],
            hidden_size=d["hidden_dim"],
            num_layers=d["num_layers"],
            num_heads=d["num_heads"],
            intermediate_size=d["intermediate_dim"],
            hidden_act="gelu_tanh",
            hidden_dropout=d.get("dropout", 0.1),
            attention_dropout=d.get("dropout", 0.1),
            max_position_embeddings=d.get("max_sequence_length", 512),
            type_vocab_size=d.get("num_segments", 2),
        )

    def to_keras_hub_dict(self) -> dict[str, Any]:
        """As keyword arguments of keras-hub's `BertBackbone`."""
        if self.embedding_size or self.share_layers:
            raise ValueError("keras-hub BertBackbone has no factorised or shared layers")
        return {
            "vocabulary_size": self.vocab_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_size,
            "intermediate_dim": self.intermediate_size,
            "dropout": self.hidden_dropout,
            "max_sequence_length": self.max_position_embeddings,
            "num_segments": self.type_vocab_size,
        }

    # ---- files --------------------------------------------------------------------
    @classmethod
    def from_json_file(cls, path: str | os.PathLike, fmt: str | None = None) -> BertConfig:
        """Read a config file; `fmt` is "hf", "google" or "keras_hub", else guessed.

        The guess: keras-hub configs name `vocabulary_size`, Hugging Face ones a
        `model_type`; a file called `bert_config.json` is Google's.
        """
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a valid JSON file ({e})") from None
        if not isinstance(d, dict):
            raise CheckpointError(f"{path}: expected a JSON object, found {type(d).__name__}")
        if fmt is None:
            inner = d.get("config", d) if isinstance(d.get("config"), dict) else d
            if "vocabulary_size" in inner:
                fmt = "keras_hub"
            elif "model_type" in d or os.path.basename(str(path)) == "config.json":
                fmt = "hf"
            else:
                fmt = "google"
        readers = {
            "hf": cls.from_hf_dict,
            "google": cls.from_google_dict,
            "keras_hub": cls.from_keras_hub_dict,
            "kbf": cls.from_dict,
        }
        if fmt not in readers:
            raise ValueError(f"unknown config format {fmt!r}; expected one of {list(readers)}")
        try:
            return readers[fmt](d)
        except ValueError as e:  # CheckpointError, or an inconsistent config
            raise CheckpointError(f"{path}: {e}") from None
        except KeyError as e:
            raise CheckpointError(f"{path}: the config has no {e.args[0]!r}") from None
