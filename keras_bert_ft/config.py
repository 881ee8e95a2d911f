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

from keras_bert_ft.errors import CheckpointFormatError

ACTIVATIONS = ("gelu_exact", "gelu_tanh", "relu", "silu")

# The WordPiece encoder families this package can load and save. They differ in
# structure (token types, pooler, factorised embeddings) and in weight names.
MODEL_TYPES = ("bert", "distilbert", "electra")

# keras-hub backbone class -> model_type.
KERAS_HUB_FAMILIES = {
    "BertBackbone": "bert",
    "DistilBertBackbone": "distilbert",
    "ElectraBackbone": "electra",
}
# keras-hub backbones of families recognised but not supported.
_KERAS_HUB_UNSUPPORTED = {
    "RobertaBackbone": "roberta",
    "XLMRobertaBackbone": "xlm-roberta",
    "DebertaV3Backbone": "deberta-v2",
    "AlbertBackbone": "albert",
}

# Families recognised but not supported: what each needs that this package lacks.
_UNSUPPORTED_FAMILIES = {
    "roberta": "RoBERTa needs a byte-level BPE tokenizer (vocab.json + merges.txt) and "
               "position ids that start after the padding id; neither is supported",
    "xlm-roberta": "XLM-RoBERTa needs a SentencePiece tokenizer (sentencepiece.bpe.model) and "
                   "position ids that start after the padding id; neither is supported",
    "camembert": "CamemBERT needs a SentencePiece tokenizer and RoBERTa-style position ids; "
                 "neither is supported",
    "deberta": "DeBERTa needs a byte-level BPE tokenizer and disentangled (relative-position) "
               "attention; neither is supported",
    "deberta-v2": "DeBERTa-v2/v3 needs a SentencePiece tokenizer (spm.model) and disentangled "
                  "(relative-position) attention; neither is supported",
    "albert": "ALBERT needs a SentencePiece tokenizer (spiece.model), which is not supported "
              "(its shared layers and factorised embeddings are)",
    "mpnet": "MPNet needs relative position buckets and its own special tokens; neither is "
             "supported",
    "xlnet": "XLNet needs a SentencePiece tokenizer and two-stream relative attention; neither "
             "is supported",
    "longformer": "Longformer needs a byte-level BPE tokenizer and sliding-window attention; "
                  "neither is supported",
}


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


def unsupported_family(model_type: str, source: str | None = None) -> CheckpointFormatError:
    """The error for a model family this package cannot load, saying which part is missing.

    `source` names what declared the family (e.g. "keras-hub RobertaBackbone").
    """
    where = f"{source}: " if source else ""
    why = _UNSUPPORTED_FAMILIES.get(model_type)
    return CheckpointFormatError(
        f"{where}model_type {model_type!r} is not supported: only BERT models and the "
        "WordPiece families DistilBERT and ELECTRA load" + (f". {why}" if why else "")
    )


def _translate(name: str, table: dict[str, str], source: str) -> str:
    if name in ACTIVATIONS:
        return name
    if name not in table:
        raise CheckpointFormatError(
            f"unsupported hidden_act {name!r} in the {source} config; supported: "
            f"{', '.join(sorted(table))}"
        )
    return table[name]


@dataclasses.dataclass
class BertConfig:
    """Hyperparameters of a BERT encoder.

    `embedding_size` different from `hidden_size` gives ALBERT-style factorised
    embeddings (a projection after the embedding LayerNorm; ELECTRA's
    `embeddings_project`); `share_layers` applies one transformer block
    `num_layers` times (ALBERT cross-layer sharing). `type_vocab_size=0` means no
    token-type embeddings (DistilBERT; `input_type_ids` is then ignored), and
    `pooler=False` no dense+tanh pooler (DistilBERT, Hugging Face ELECTRA; the
    encoder then has no `pooled_output`). `model_type` names the family, which
    decides the weight names in each format.
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
    model_type: str = "bert"
    pooler: bool = True

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be >= 0, got {self.type_vocab_size}")
        self._check_family()
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.embedding_size == self.hidden_size:
            self.embedding_size = None

    def _check_family(self) -> None:
        # What each family's formats can hold; anything else could not be saved back.
        problems = []
        if self.model_type == "distilbert":
            if self.type_vocab_size:
                problems.append("has no token types (type_vocab_size=0)")
            if self.pooler:
                problems.append("has no pooler (pooler=False)")
            if self.embedding_size not in (None, self.hidden_size):
                problems.append("has no factorised embeddings (embedding_size=None)")
        if self.model_type in ("distilbert", "electra") and self.share_layers:
            problems.append("has no shared layers (share_layers=False)")
        if self.model_type in ("bert", "electra") and not self.type_vocab_size:
            problems.append("needs token types (type_vocab_size >= 1)")
        if self.model_type == "bert" and not self.pooler:
            problems.append("has a pooler (pooler=True)")
        if problems:
            raise ValueError(f"model_type {self.model_type!r} " + "; ".join(problems))

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
        """From this class's own `to_dict` form (older forms lack the family fields)."""
        return cls(**d)

    # ---- Hugging Face config.json -------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From a Hugging Face `config.json` of a BERT, DistilBERT or ELECTRA model."""
        model_type = d.get("model_type", "bert")
        if model_type not in MODEL_TYPES:
            raise unsupported_family(model_type)
        if model_type == "distilbert":
            return cls._from_distilbert_keys(d)
        position = d.get("position_embedding_type", "absolute")
        if position != "absolute":
            raise CheckpointFormatError(
                f"position_embedding_type {position!r} is not supported (only 'absolute')"
            )
        config = cls._from_bert_keys(d, _HF_ACTIVATIONS, "Hugging Face")
        if model_type == "electra":  # HF's ElectraModel has no pooler; tables 128 wide
            config = config.replace(model_type="electra", pooler=False,
                                    embedding_size=d.get("embedding_size", 128))
        return config

    @classmethod
    def _from_distilbert_keys(cls, d: dict[str, Any]) -> BertConfig:
        # DistilBERT's LayerNorm epsilon is fixed at 1e-12 in transformers, not configured.
        return cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["dim"],
            num_layers=d["n_layers"],
            num_heads=d["n_heads"],
            intermediate_size=d["hidden_dim"],
            hidden_act=_translate(d.get("activation", "gelu"), _HF_ACTIVATIONS, "Hugging Face"),
            hidden_dropout=d.get("dropout", 0.1),
            attention_dropout=d.get("attention_dropout", 0.1),
            max_position_embeddings=d.get("max_position_embeddings", 512),
            type_vocab_size=0,
            layer_norm_eps=1e-12,
            initializer_range=d.get("initializer_range", 0.02),
            model_type="distilbert",
            pooler=False,
        )

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
        """As a Hugging Face `config.json` of a `BertModel`, `DistilBertModel` or
        `ElectraModel` (after `model_type`)."""
        hidden_act = {"gelu_exact": "gelu", "gelu_tanh": "gelu_new"}.get(
            self.hidden_act, self.hidden_act)
        if self.model_type == "distilbert":
            return self._distilbert_keys(hidden_act)
        architecture = {"bert": "BertModel", "electra": "ElectraModel"}[self.model_type]
        d = {"architectures": [architecture], "model_type": self.model_type,
             **self._bert_keys(hidden_act),
             "position_embedding_type": "absolute", "pad_token_id": 0}
        if self.model_type == "electra":  # ElectraModel reads embedding_size (default 128)
            d["embedding_size"] = self.embedding_width
        return d

    def _distilbert_keys(self, hidden_act: str) -> dict[str, Any]:
        if self.layer_norm_eps != 1e-12:
            raise ValueError(
                f"DistilBERT's LayerNorm epsilon is fixed at 1e-12; this config has "
                f"{self.layer_norm_eps}"
            )
        return {
            "architectures": ["DistilBertModel"],
            "model_type": "distilbert",
            "vocab_size": self.vocab_size,
            "dim": self.hidden_size,
            "n_layers": self.num_layers,
            "n_heads": self.num_heads,
            "hidden_dim": self.intermediate_size,
            "activation": hidden_act,
            "dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "max_position_embeddings": self.max_position_embeddings,
            "initializer_range": self.initializer_range,
            "sinusoidal_pos_embds": False,
            "pad_token_id": 0,
        }

    # ---- Google bert_config.json --------------------------------------------------
    @classmethod
    def from_google_dict(cls, d: dict[str, Any]) -> BertConfig:
        """From Google's `bert_config.json`, where "gelu" means the tanh form."""
        return cls._from_bert_keys(d, _GOOGLE_ACTIVATIONS, "Google")

    def to_google_dict(self) -> dict[str, Any]:
        """As Google's `bert_config.json` ("gelu" there means the tanh form)."""
        return self._bert_keys({"gelu_tanh": "gelu"}.get(self.hidden_act, self.hidden_act))

    # ---- keras-hub backbones ------------------------------------------------------
    @classmethod
    def from_keras_hub_dict(cls, d: dict[str, Any], class_name: str | None = None) -> BertConfig:
        """From a keras-hub `BertBackbone`, `DistilBertBackbone` or `ElectraBackbone` config
        (bare with its `class_name`, or a preset's `config.json`).

        keras-hub's BERT and ELECTRA backbones use the tanh-approximated GELU, its
        DistilBERT backbone the exact one.
        """
        if "config" in d and "class_name" in d:
            class_name, d = d["class_name"], d["config"]
        class_name = (class_name or "BertBackbone").rsplit(">", 1)[-1]
        model_type = KERAS_HUB_FAMILIES.get(class_name)
        if model_type is None:
            family = _KERAS_HUB_UNSUPPORTED.get(class_name)
            if family is not None:
                raise unsupported_family(family, f"keras-hub {class_name}")
            raise CheckpointFormatError(
                f"keras-hub {class_name} is not supported; supported backbones: "
                f"{', '.join(KERAS_HUB_FAMILIES)}"
            )
        common = dict(
            num_layers=d["num_layers"],
            num_heads=d["num_heads"],
            hidden_size=d["hidden_dim"],
            intermediate_size=d["intermediate_dim"],
            hidden_dropout=d.get("dropout", 0.1),
            attention_dropout=d.get("dropout", 0.1),
            max_position_embeddings=d.get("max_sequence_length", 512),
            model_type=model_type,
        )
        if model_type == "distilbert":
            return cls(vocab_size=d["vocabulary_size"], hidden_act="gelu_exact",
                       type_vocab_size=0, pooler=False, **common)
        if model_type == "electra":
            return cls(vocab_size=d["vocab_size"], hidden_act="gelu_tanh",
                       type_vocab_size=d.get("num_segments", 2),
                       embedding_size=d.get("embedding_dim"), **common)
        return cls(vocab_size=d["vocabulary_size"], hidden_act="gelu_tanh",
                   type_vocab_size=d.get("num_segments", 2), **common)

    @property
    def keras_hub_class(self) -> str:
        """The keras-hub backbone class of this family."""
        return {v: k for k, v in KERAS_HUB_FAMILIES.items()}[self.model_type]

    def to_keras_hub_dict(self) -> dict[str, Any]:
        """As keyword arguments of the family's keras-hub backbone (`keras_hub_class`)."""
        if self.share_layers or (self.embedding_size and self.model_type == "bert"):
            raise ValueError(
                f"keras-hub {self.keras_hub_class} has no factorised or shared layers")
        d = {
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_size,
            "intermediate_dim": self.intermediate_size,
            "dropout": self.hidden_dropout,
            "max_sequence_length": self.max_position_embeddings,
        }
        if self.model_type == "distilbert":
            return {"vocabulary_size": self.vocab_size, **d}
        if self.model_type == "electra":
            return {"vocab_size": self.vocab_size, "embedding_dim": self.embedding_width,
                    "num_segments": self.type_vocab_size, **d}
        return {"vocabulary_size": self.vocab_size, "num_segments": self.type_vocab_size, **d}

    # ---- files --------------------------------------------------------------------
    @classmethod
    def from_json_file(cls, path: str | os.PathLike, fmt: str | None = None) -> BertConfig:
        """Read a config file; `fmt` is "hf", "google" or "keras_hub", else guessed.

        The guess: keras-hub configs name a backbone `class_name` (or
        `vocabulary_size`), Hugging Face ones a `model_type`; a file called
        `bert_config.json` is Google's.
        """
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointFormatError(f"{path}: not a valid JSON file ({e})") from None
        if not isinstance(d, dict):
            raise CheckpointFormatError(f"{path}: expected a JSON object, found {type(d).__name__}")
        if fmt is None:
            inner = d.get("config", d) if isinstance(d.get("config"), dict) else d
            if "vocabulary_size" in inner or ("class_name" in d and inner is not d):
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
        except ValueError as e:  # CheckpointFormatError, or an inconsistent config
            raise CheckpointFormatError(f"{path}: {e}") from None
        except KeyError as e:
            raise CheckpointFormatError(f"{path}: the config has no {e.args[0]!r}") from None
