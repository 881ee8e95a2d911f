"""PyTorch code of the keras-bert-ft classifier heads that `transformers` has no class
for: mean or [CLS] pooling, and hidden layers between the pooled vector and the logits.

keras_bert_ft never imports this module. `save_hf_classifier` copies it into an
export as `modeling_keras_bert_ft.py`; `transformers` runs it when the export is
loaded with `AutoModelForSequenceClassification.from_pretrained(path,
trust_remote_code=True)`. It must therefore import only torch and transformers.
"""

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

# Keras activation names of the head's hidden layers and their torch modules.
# Keras' "gelu" is the exact (erf) form, as torch's nn.GELU() is by default.
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "linear": nn.Identity, "silu": nn.SiLU, "swish": nn.SiLU}  # fmt: skip


class KerasBertFtConfig(BertConfig):
    """A BERT config plus the head: `pooling` ("mean", "cls" or "pooled"),
    `head_hidden_units` and `head_hidden_activation`."""

    model_type = "keras_bert_ft"

    def __init__(self, pooling="mean", head_hidden_units=(), head_hidden_activation="gelu",
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.pooling = pooling
        self.head_hidden_units = list(head_hidden_units)
        self.head_hidden_activation = head_hidden_activation


class KerasBertFtForSequenceClassification(BertPreTrainedModel):
    """BERT, a pooled vector (mean over real tokens, the raw [CLS] vector, or the BERT
    pooler), optional hidden layers, and a linear classifier."""

    config_class = KerasBertFtConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=config.pooling == "pooled")
        dropout = getattr(config, "classifier_dropout", None) or config.hidden_dropout_prob
        layers, width = [], config.hidden_size
        for units in config.head_hidden_units:
            layers += [nn.Dropout(dropout), nn.Linear(width, units),
                       ACTIVATIONS[config.head_hidden_activation]()]  # fmt: skip
            width = units
        self.hidden = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                labels=None, **kwargs):  # fmt: skip
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids)  # fmt: skip
        sequence = out.last_hidden_state
        if self.config.pooling == "pooled":
            pooled = out.pooler_output
        elif self.config.pooling == "cls":
            pooled = sequence[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(sequence.dtype)
            pooled = (sequence * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(self.hidden(pooled)))
        loss = None
        if labels is not None:
            problem = self.config.problem_type
            if problem == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.float())
            elif problem == "multi_label_classification":
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                loss = nn.functional.cross_entropy(logits, labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)
