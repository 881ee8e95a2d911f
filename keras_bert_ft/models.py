"""`BertClassifier`: a BERT encoder with a classification or regression head.

The model takes the three id tensors of the encoder (`input_word_ids`,
`input_mask`, `input_type_ids`), so sentence pairs need nothing special here:
the tokenizer packs them as `[CLS] a [SEP] b [SEP]` with segment ids.

The label names and the tokenizer (its settings in the config, its vocabulary
as an asset file) travel with the model, so a reloaded `.keras` file can turn
raw text into label strings on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_bert_ft.layers.encoder import INPUT_NAMES
from keras_bert_ft.tokenizers.options import PackingOptions, TokenizerOptions
from keras_bert_ft.tokenizers.preprocessor import TextPreprocessor
from keras_bert_ft.tokenizers.wordpiece import text_batch

POOLINGS = ("pooled", "cls", "mean")

# Each family's own classification head, as in its Hugging Face *ForSequenceClassification:
# BERT: pooler (dense+tanh) -> classifier; DistilBERT: [CLS] -> pre_classifier (dense+ReLU)
# -> classifier; ELECTRA: [CLS] -> dense + exact GELU -> out_proj. `None` units: hidden size.
FAMILY_HEADS = {
    "bert": {"pooling": "pooled", "hidden_units": (), "hidden_activation": "gelu"},
    "distilbert": {"pooling": "cls", "hidden_units": (None,), "hidden_activation": "relu"},
    "electra": {"pooling": "cls", "hidden_units": (None,), "hidden_activation": "gelu"},
}


def family_head(head: str, encoder: keras.Model) -> dict:
    """`pooling`, `hidden_units`, `hidden_activation` of a family's own head.

    `head` is a family name ("bert", "distilbert", "electra") or "family" for the
    encoder's own (`encoder.config.model_type`).
    """
    config = getattr(encoder, "config", None)
    if head == "family":
        if config is None:
            raise ValueError(f"head='family' needs an encoder with a config; "
                             f"{type(encoder).__name__} has none")
        head = config.model_type
    if head not in FAMILY_HEADS:
        raise ValueError(f"head must be 'family' or one of {tuple(FAMILY_HEADS)}, got {head!r}")
    spec = dict(FAMILY_HEADS[head])
    if None in spec["hidden_units"]:
        if config is None:
            raise ValueError(f"head={head!r} needs the encoder's hidden size; "
                             f"{type(encoder).__name__} has no config")
        spec["hidden_units"] = tuple(config.hidden_size if u is None else u
                                     for u in spec["hidden_units"])
    return spec


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of `sequence_output` over the real (mask = 1) positions."""

    def call(self, sequence, input_mask):
        m = keras.ops.cast(keras.ops.expand_dims(input_mask, -1), sequence.dtype)
        total = keras.ops.sum(sequence * m, axis=1)
        count = keras.ops.maximum(keras.ops.sum(m, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, sequence_shape, input_mask_shape):
        return (sequence_shape[0], sequence_shape[2])


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class FirstToken(keras.layers.Layer):
    """The raw `[CLS]` vector: position 0 of `sequence_output`, without the pooler."""

    def call(self, sequence):
        return sequence[:, 0, :]

    def compute_output_shape(self, sequence_shape):
        return (sequence_shape[0], sequence_shape[2])


def first_token_features(outputs: dict, pooling: str):
    """The head's input from the encoder's first-token outputs (`BertEncoder`'s), which
    leave all but the `[CLS]` query of the last block out of the graph; None where the
    pooling reads other positions or the encoder has no such outputs."""
    name = {"pooled": "first_token_pooled_output", "cls": "first_token_output"}.get(pooling)
    return outputs.get(name)


def _pooled_features(outputs: dict, pooling: str, input_mask):
    """The head's input from the encoder's whole `sequence_output` (or its pooler's)."""
    if pooling == "pooled":
        return outputs["pooled_output"]
    if pooling == "cls":
        return FirstToken(name="cls_token")(outputs["sequence_output"])
    return MaskedMeanPooling(name="mean_pooling")(outputs["sequence_output"], input_mask)


def _packing_option(field: str) -> property:
    """A `BertClassifier` attribute that reads and sets one field of its packing options."""

    def get(model):
        return getattr(model.preprocessor.packing, field)

    def set_(model, value) -> None:
        model._set_packing(**{field: value})

    return property(get, set_, doc=f"The preprocessor's packing `{field}`.")


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class BertClassifier(keras.Model):
    """A classifier (or regressor) over a BERT encoder.

    Args:
      encoder: a `BertEncoder` (or any Keras model with the TF-Hub BERT inputs
        and outputs, e.g. from `load_pretrained`).
      num_classes: number of classes; 0 for a regression head (one linear output).
      pooling: "pooled" (the encoder's dense+tanh pooler over `[CLS]`), "cls"
        (the raw `[CLS]` vector) or "mean" (mean over real tokens; the natural
        choice for sentence-transformer weights such as all-MiniLM-L6-v2).
        Encoders without a pooler (DistilBERT, ELECTRA) need "cls" or "mean".
      hidden_units: sizes of an optional MLP between the pooled vector and the output.
      hidden_activation: activation of that MLP.
      head: a family's own head shape instead of `pooling`, `hidden_units` and
        `hidden_activation`: "family" (the encoder's `config.model_type`), or
        "bert" (pooler), "distilbert" ([CLS], dense of hidden size + ReLU) or
        "electra" ([CLS], dense of hidden size + exact GELU). The resolved
        values are what the config saves.
      dropout: dropout rate before each dense layer of the head.
      binary_sigmoid: with `num_classes=2`, one sigmoid unit instead of a 2-way softmax.
      multi_label: independent sigmoid per class (targets are 0/1 vectors).
      train_encoder_layers: None trains everything; 0 freezes the whole encoder
        (only the head trains); N trains the top N transformer layers (and the
        pooler) and freezes the embeddings and all lower layers.
      label_names: class names in index order, kept with the model.
      thresholds: multi-label only: one decision threshold per label (tuned on
        validation data, see `keras_bert_ft.training.thresholds`); None means
        0.5 for every label. Kept in the config, so `predict_labels`, saved
        models and exports use them.
      tokenizer: a `WordPieceTokenizer`; its settings and vocabulary are saved
        with the model.
      max_length, truncation: how texts are encoded for this model.
      head_tokens: with truncation "head_tail", the wordpieces kept from the start
        (None: a quarter of max_length - 2); see `keras_bert_ft.long_documents`.
      window_stride: None (default) truncates long texts; an int makes
        `predict_texts` (and the export) cut each single text into overlapping
        windows sharing `window_stride` wordpieces and pool their scores.
      window_pooling: "mean" or "max" of the windows' probabilities per text.
      preprocessor: a `TextPreprocessor` (or its config dict) instead of
        `tokenizer`, `tokenizer_config`, `max_length`, `truncation`,
        `head_tokens` and `window_stride`, which otherwise build it. The model
        reads its tokenizer and packing from `self.preprocessor`.
      pairs: True when the model classifies sentence pairs, False for single
        texts, None when unknown (models saved before this was recorded).
        Evaluation, prediction and export read it and refuse input of the
        other kind.
      lora_rank: train low-rank adapters of this rank instead of the encoder
        (`keras_bert_ft.lora.enable_lora`: the encoder frozen, the factors and
        the head trained); None (default) for no LoRA.
      lora_alpha, lora_targets, lora_base_model: the LoRA scale numerator, the
        projections adapted (default `lora.DEFAULT_TARGETS`) and the base
        model's name for adapter files.
    """

    def __init__(
        self,
        encoder: keras.Model,
        num_classes: int,
        *,
        pooling: str = "pooled",
        hidden_units: Sequence[int] = (),
        hidden_activation: str = "gelu",
        dropout: float = 0.1,
        binary_sigmoid: bool = False,
        multi_label: bool = False,
        train_encoder_layers: int | None = None,
        label_names: Sequence[str] | None = None,
        tokenizer=None,
        tokenizer_config: dict | None = None,
        max_length: int = 128,
        truncation: str = "longest_first",
        pairs: bool | None = None,
        head: str | None = None,
        lora_rank: int | None = None,
        lora_alpha: float = 16,
        lora_targets: Sequence[str] | None = None,
        lora_base_model: str | None = None,
        thresholds: Sequence[float] | None = None,
        head_tokens: int | None = None,
        window_stride: int | None = None,
        window_pooling: str = "mean",
        preprocessor: TextPreprocessor | dict | None = None,
        name: str = "bert_classifier",
        **kwargs,
    ):
        if head is not None:
            spec = family_head(head, encoder)
            pooling, hidden_units = spec["pooling"], spec["hidden_units"]
            hidden_activation = spec["hidden_activation"]
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_classes < 0 or num_classes == 1:
            raise ValueError(
                f"num_classes must be 0 (regression) or at least 2, got {num_classes}"
            )
        if binary_sigmoid and num_classes != 2:
            raise ValueError("binary_sigmoid needs num_classes=2")
        if multi_label and num_classes < 2:
            raise ValueError("multi_label needs num_classes >= 2")
        if label_names is not None and len(label_names) != num_classes:
            raise ValueError(f"{len(label_names)} label names for {num_classes} classes")

        inputs = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in INPUT_NAMES}
        outputs = encoder(inputs)
        if pooling == "pooled" and "pooled_output" not in outputs:
            family = getattr(getattr(encoder, "config", None), "model_type", "this")
            raise ValueError(
                f"pooling='pooled' needs the encoder's pooler, but the {family} encoder "
                "has none; use pooling='cls' or 'mean' (or head='family')"
            )
        x = first_token_features(outputs, pooling)
        if x is None:
            x = _pooled_features(outputs, pooling, inputs["input_mask"])
        for i, units in enumerate(hidden_units):
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
            x = keras.layers.Dense(units, activation=hidden_activation, name=f"head_hidden_{i}")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        head_type = _head_type(num_classes, binary_sigmoid, multi_label)
        units = 1 if head_type in ("binary", "regression") else num_classes
        # Outputs stay float32 under mixed precision: stable losses and exports.
        logits = keras.layers.Dense(units, name="logits", dtype="float32")(x)
        activation = {"softmax": "softmax", "regression": "linear"}.get(head_type, "sigmoid")
        probs = keras.layers.Activation(activation, name="scores", dtype="float32")(logits)
        super().__init__(inputs=inputs, outputs=probs, name=name, **kwargs)

        self.encoder = encoder
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.hidden_activation = hidden_activation
        self.dropout = float(dropout)
        self.binary_sigmoid = bool(binary_sigmoid)
        self.multi_label = bool(multi_label)
        self.head_type = head_type
        self.label_names = None if label_names is None else tuple(str(n) for n in label_names)
        if isinstance(preprocessor, dict):
            preprocessor = TextPreprocessor.from_config(preprocessor)
        if preprocessor is None:
            preprocessor = TextPreprocessor(
                tokenizer,
                PackingOptions(max_length, truncation, head_tokens=head_tokens,
                               stride=window_stride),
                TokenizerOptions.from_config(tokenizer_config) if tokenizer_config else None)
        self.preprocessor = preprocessor
        self.pairs = None if pairs is None else bool(pairs)
        if self.pairs and preprocessor.packing.windows:
            preprocessor.packing.check_pairs()
        self.window_pooling = _check_window_pooling(window_pooling)
        self.train_encoder_layers = None
        self.set_encoder_trainable(train_encoder_layers)
        if lora_rank is not None:
            from keras_bert_ft import lora

            if train_encoder_layers is not None:
                raise ValueError("lora_rank freezes the encoder; leave train_encoder_layers unset")
            lora.enable_lora(self, lora_rank, lora_alpha, lora_targets or lora.DEFAULT_TARGETS,
                             lora_base_model)
        self.thresholds = None
        if thresholds is not None:
            self.set_thresholds(thresholds)

    def set_thresholds(self, thresholds: Sequence[float] | None) -> None:
        """Set the per-label decision thresholds of a multi-label head (None: 0.5 each)."""
        if thresholds is None:
            self.thresholds = None
            return
        if self.head_type != "multi_label":
            raise ValueError("thresholds are for multi-label heads only")
        values = tuple(float(t) for t in np.asarray(thresholds, dtype=np.float32).ravel())
        if len(values) != self.num_classes:
            raise ValueError(f"{len(values)} thresholds for {self.num_classes} labels")
        if not all(0.0 <= t <= 1.0 for t in values):
            raise ValueError("thresholds must lie in [0, 1]")
        self.thresholds = values

    def decision_thresholds(self) -> np.ndarray:
        """The multi-label decision thresholds as float32 [num_classes] (0.5 when unset)."""
        if self.thresholds is None:
            return np.full(self.num_classes, 0.5, dtype=np.float32)
        return np.asarray(self.thresholds, dtype=np.float32)

    # ------------------------------------------------------------------ freezing
    def encoder_layer_groups(self) -> list[list[keras.layers.Layer]]:
        """The encoder's layers from bottom to top: [embeddings], [block 0], ..., [pooler]
        (the last group empty for encoders without a pooler).

        Raises for encoders that do not expose their blocks (e.g. a TF-Hub layer).
        """
        enc = self.encoder
        if not all(hasattr(enc, a) for a in ("embeddings", "blocks")):
            raise ValueError(
                f"{type(enc).__name__} does not expose its transformer layers; only "
                "train_encoder_layers=None (everything) or 0 (frozen) work with it"
            )
        pooler = [enc.pooler] if hasattr(enc, "pooler") else []
        return [[enc.embeddings], *([b] for b in enc.blocks), pooler]

    def set_encoder_trainable(self, train_encoder_layers: int | None) -> None:
        """Choose what trains: None everything, 0 only the head, N the top N layers + head.

        Call `compile` again after changing it (Keras fixes the trainable set at compile).
        """
        enc = self.encoder
        if train_encoder_layers is None:
            enc.trainable = True
            for layer in enc.layers:
                layer.trainable = True
        elif train_encoder_layers == 0:
            enc.trainable = False
        else:
            groups = self.encoder_layer_groups()
            blocks = groups[1:-1]
            if not 0 < train_encoder_layers <= len(blocks):
                raise ValueError(
                    f"train_encoder_layers={train_encoder_layers}, but the encoder has "
                    f"{len(blocks)} layers"
                )
            if enc.config.share_layers:
                raise ValueError("with shared layers, train all layers (None) or none (0)")
            enc.trainable = True
            first_trained = len(blocks) - train_encoder_layers
            groups[0][0].trainable = False
            for i, (block,) in enumerate(blocks):
                block.trainable = i >= first_trained
            for layer in groups[-1]:
                layer.trainable = True
        if self.pooling != "pooled" and hasattr(enc, "pooler"):
            # The pooler gets no gradient when the head does not read it.
            enc.pooler.trainable = False
        self.train_encoder_layers = train_encoder_layers

    def layerwise_lr_multipliers(self, decay: float) -> list[tuple[keras.Variable, float]]:
        """Learning-rate factors for layer-wise decay, as (variable, factor) pairs.

        The head and the pooler get 1; transformer block i of L gets
        `decay ** (L - i)`; the embeddings get `decay ** (L + 1)`. Feed the
        result to `keras_bert_ft.training.AdamW(lr_multipliers=...)`.
        """
        if not 0 < decay <= 1:
            raise ValueError(f"layer-wise decay must be in (0, 1], got {decay}")
        groups = self.encoder_layer_groups()
        depth = len(groups) - 2  # transformer blocks
        factors: dict[int, tuple[keras.Variable, float]] = {}
        for level, group in enumerate(groups[:-1]):
            for layer in group:
                for v in layer.trainable_weights:
                    factors[id(v)] = (v, decay ** (depth + 1 - level))
        return [factors.get(id(v), (v, 1.0)) for v in self.trainable_weights]

    # ------------------------------------------------------------------ texts
    def encode(self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None) -> dict:
        """Tokenize texts (and pairs) with the model's own tokenizer and settings.

        A bare string (or bytes) is one text, not a sequence of characters.
        """
        return self.preprocessor.encode(texts, pairs)

    def predict_texts(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None,
        batch_size: int = 32,
    ) -> np.ndarray:
        """Scores for raw texts: class probabilities, sigmoid scores, or regression values.

        A bare string is one text (one row of scores). A model trained on pairs
        needs `pairs`, one trained on single texts refuses them (`ValueError`).
        """
        from keras_bert_ft.data.pipeline import make_dataset

        tokenizer = self.preprocessor.require_tokenizer()
        packing = self.preprocessor.packing
        self._check_pairs(pairs)
        texts = text_batch(texts)
        pairs = None if pairs is None else text_batch(pairs)
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        if packing.windows:
            return self._predict_windows(tokenizer, packing, texts, batch_size)
        ds = make_dataset(
            texts, None, tokenizer, pairs=pairs,
            max_length=packing.max_length, truncation=packing.truncation, batch_size=batch_size,
            head_tokens=packing.head_tokens,
        )  # fmt: skip
        return self.predict(ds, verbose=0)

    def _predict_windows(self, tokenizer, packing: PackingOptions, texts: list,
                         batch_size: int) -> np.ndarray:
        """Per-text scores of a windowed model: its windows' scores, pooled per text."""
        from keras_bert_ft.data.pipeline import encode_windows, make_tf_dataset
        from keras_bert_ft.long_documents import pool_window_scores

        encoded, docs = encode_windows(tokenizer, texts, max_length=packing.max_length,
                                       stride=packing.stride)  # fmt: skip
        scores = self.predict(make_tf_dataset(encoded, batch_size=batch_size), verbose=0)
        return pool_window_scores(scores, docs, len(texts), self.window_pooling,
                                  softmax=self.head_type == "softmax")  # fmt: skip

    def predict_labels(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None
    ) -> list:
        """Label names (or numbers for regression) for raw texts; a bare string is one text."""
        from keras_bert_ft.reports import predictions_to_classes

        scores = self.predict_texts(texts, pairs)
        if self.head_type == "regression":
            return scores[:, 0].tolist()
        if self.head_type == "multi_label":
            cut = self.decision_thresholds()
            return [[self._name(j) for j in np.flatnonzero(row >= cut)] for row in scores]
        return [self._name(i) for i in predictions_to_classes(scores)]

    def _check_pairs(self, pairs) -> None:
        """Refuse single texts for a pair model and pairs for a single-text model."""
        if self.pairs and pairs is None:
            raise ValueError("this model was trained on sentence pairs: pass pairs= (the "
                             "second text of each pair)")
        if self.pairs is False and pairs is not None:
            raise ValueError("this model was trained on single texts: do not pass pairs=")

    def _name(self, i: int) -> str:
        return self.label_names[int(i)] if self.label_names else str(int(i))

    # ------------------------------------------------------------------ training defaults
    def default_loss(self) -> keras.losses.Loss:
        """The loss that matches the head."""
        return {
            "softmax": keras.losses.SparseCategoricalCrossentropy(),
            "binary": keras.losses.BinaryCrossentropy(),
            "multi_label": keras.losses.BinaryCrossentropy(),
            "regression": keras.losses.MeanSquaredError(),
        }[self.head_type]

    def default_metrics(self) -> list:
        return {
            "softmax": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            "binary": [keras.metrics.BinaryAccuracy(name="accuracy")],
            "multi_label": [keras.metrics.BinaryAccuracy(name="accuracy"),
                            keras.metrics.F1Score(average="micro", threshold=0.5,
                                                  name="micro_f1")],
            "regression": [keras.metrics.MeanAbsoluteError(name="mae")],
        }[self.head_type]

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "hidden_units": list(self.hidden_units),
            "hidden_activation": self.hidden_activation,
            "dropout": self.dropout,
            "binary_sigmoid": self.binary_sigmoid,
            "multi_label": self.multi_label,
            "train_encoder_layers": self.train_encoder_layers,
            "label_names": None if self.label_names is None else list(self.label_names),
            # The preprocessor's settings, flat as before "preprocessor" existed; they are
            # there to read, from_config builds the preprocessor from its own entry.
            "tokenizer_config": self.tokenizer_config,
            "max_length": self.max_length,
            "truncation": self.truncation,
            "pairs": self.pairs,
            **self._lora_config(),
            "thresholds": None if self.thresholds is None else list(self.thresholds),
            "head_tokens": self.head_tokens,
            "window_stride": self.window_stride,
            "window_pooling": self.window_pooling,
            "preprocessor": self.preprocessor.get_config(),
            "name": self.name,
        }

    # The preprocessor's parts, as attributes (read and set by training, export, benches).
    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self.preprocessor.tokenizer = tokenizer

    @property
    def tokenizer_config(self) -> dict:
        options = self.preprocessor.tokenizer_options
        return {} if options is None else options.get_config()

    # Setting one replaces the packing options with a checked copy.
    max_length = _packing_option("max_length")
    truncation = _packing_option("truncation")
    head_tokens = _packing_option("head_tokens")
    window_stride = _packing_option("stride")

    def _set_packing(self, **changes) -> None:
        self.preprocessor.packing = self.preprocessor.packing.replace(**changes)

    def _lora_config(self) -> dict:
        # Only LoRA models carry these keys, so other configs are as before.
        from keras_bert_ft.lora import lora_settings

        settings = lora_settings(self)
        if settings is None:
            return {}
        return {"lora_rank": settings.rank, "lora_alpha": settings.alpha,
                "lora_targets": list(settings.targets), "lora_base_model": settings.base_model}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = with_encoder_deserialized(config, custom_objects)
        if config.get("preprocessor") is not None:
            for key in ("tokenizer_config", "max_length", "truncation", "head_tokens",
                        "window_stride"):
                config.pop(key, None)  # read from the preprocessor's entry instead
        return cls(**config)

    def save_assets(self, dir_path: str) -> None:
        # The vocabulary goes into the .keras archive next to the weights.
        if self.tokenizer is not None:
            with open(f"{dir_path}/vocab.txt", "w", encoding="utf-8") as f:
                f.write("\n".join(self.tokenizer.get_vocab()) + "\n")

    def load_assets(self, dir_path: str) -> None:
        import os

        path = os.path.join(dir_path, "vocab.txt")
        if os.path.exists(path):
            self.preprocessor.load_vocabulary(path)


def _check_window_pooling(pooling: str) -> str:
    """A validated window_pooling of a classifier."""
    from keras_bert_ft.long_documents import WINDOW_POOLINGS

    if pooling not in WINDOW_POOLINGS:
        raise ValueError(f"window_pooling must be one of {WINDOW_POOLINGS}, got {pooling!r}")
    return pooling


def _head_type(num_classes: int, binary_sigmoid: bool, multi_label: bool) -> str:
    if num_classes == 0:
        return "regression"
    if multi_label:
        return "multi_label"
    return "binary" if binary_sigmoid else "softmax"


def with_encoder_deserialized(config: dict, custom_objects=None) -> dict:
    """A copy of a model config whose serialized "encoder" is rebuilt as a model."""
    config = dict(config)
    config["encoder"] = keras.saving.deserialize_keras_object(
        config["encoder"], custom_objects=custom_objects)
    return config
