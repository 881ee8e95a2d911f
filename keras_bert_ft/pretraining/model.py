"""`BertPretrainer`: a BERT encoder with its MLM (and optionally NSP) head, trained with
`model.fit` on batches from `pretraining.data`."""

from __future__ import annotations

import keras
from keras import ops

from keras_bert_ft.layers.encoder import INPUT_NAMES, BertEncoder
from keras_bert_ft.pretraining.heads import MaskedLMHead, NextSentenceHead

MLM_INPUTS = (*INPUT_NAMES, "masked_lm_positions")
# The targets a batch carries besides the inputs.
TARGETS = ("masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


class BertPretrainer(keras.Model):
    """Masked-LM (+ next-sentence) pretraining over a `BertEncoder`.

    Call it on a dict with `input_word_ids`, `input_mask`, `input_type_ids` and
    `masked_lm_positions` (batch, predictions); it returns `mlm_logits`
    (batch, predictions, vocab) and, with `nsp=True`, `nsp_logits` (batch, 2).
    `fit` takes `(inputs, targets)` with targets `masked_lm_ids`,
    `masked_lm_weights` (0 for filler predictions) and, with NSP,
    `next_sentence_labels` (0: the second segment follows, 1: random). The loss is
    the weighted mean MLM cross-entropy plus the NSP cross-entropy.
    """

    def __init__(self, encoder: BertEncoder, nsp: bool = False, name: str = "bert_pretrainer",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        config = encoder.config
        table = encoder.embeddings.word_embeddings
        self.mlm_head = MaskedLMHead(
            config.vocab_size, int(table.shape[1]), config.hidden_act, config.layer_norm_eps,
            config.initializer_range, name="mlm_head")
        self.mlm_head.build((None, None, config.hidden_size))
        self.nsp = bool(nsp)
        self.nsp_head = NextSentenceHead(config.initializer_range, name="nsp_head")
        self.nsp_head.build((None, config.hidden_size))
        if not self.nsp:
            # Without NSP nothing reads the pooled output: its weights get no gradient.
            self.nsp_head.trainable = False
            encoder.pooler.trainable = False
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy_tracker = keras.metrics.Mean(name="mlm_accuracy")
        # Created only with NSP: Keras reports every metric the model holds.
        self.nsp_accuracy_tracker = keras.metrics.Mean(name="nsp_accuracy") if nsp else None

    def build_with_zeros(self, seq: int = 8, predictions: int = 1) -> None:
        """Build every weight by calling the model once (a subclassed model needs a call
        before `load_weights`)."""
        import numpy as np

        zeros = {n: np.zeros((1, seq), "int32") for n in INPUT_NAMES}
        self({**zeros, "masked_lm_positions": np.zeros((1, predictions), "int32")})

    def call(self, inputs, training=None):
        encoded = self.encoder({n: inputs[n] for n in INPUT_NAMES}, training=training)
        logits = self.mlm_head(encoded["sequence_output"], inputs["masked_lm_positions"],
                               self.encoder.embeddings.word_embeddings)
        outputs = {"mlm_logits": logits}
        if self.nsp:
            outputs["nsp_logits"] = self.nsp_head(encoded["pooled_output"])
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = ops.cast(y_pred["mlm_logits"], "float32")
        labels = ops.cast(y["masked_lm_ids"], "int32")
        weights = ops.cast(y["masked_lm_weights"], "float32")
        per_token = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        count = ops.maximum(ops.sum(weights), 1.0)
        mlm_loss = ops.sum(per_token * weights) / count
        hits = ops.cast(ops.equal(ops.argmax(logits, axis=-1), labels), "float32")
        self.mlm_loss_tracker.update_state(mlm_loss, sample_weight=count)
        self.mlm_accuracy_tracker.update_state(ops.sum(hits * weights) / count,
                                               sample_weight=count)
        loss = mlm_loss
        if self.nsp:
            nsp_logits = ops.cast(y_pred["nsp_logits"], "float32")
            nsp_labels = ops.cast(y["next_sentence_labels"], "int32")
            loss = loss + ops.mean(keras.losses.sparse_categorical_crossentropy(
                nsp_labels, nsp_logits, from_logits=True))
            right = ops.cast(ops.equal(ops.argmax(nsp_logits, axis=-1), nsp_labels), "float32")
            self.nsp_accuracy_tracker.update_state(ops.mean(right))
        return loss

    @property
    def metrics(self):
        trackers = [self.mlm_loss_tracker, self.mlm_accuracy_tracker]
        if self.nsp_accuracy_tracker is not None:
            trackers.append(self.nsp_accuracy_tracker)
        return [*super().metrics, *trackers]
