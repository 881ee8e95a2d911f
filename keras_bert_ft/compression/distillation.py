"""Knowledge distillation: a student learns a teacher's soft targets.

The student is the teacher with only its first k transformer layers (weights
copied, so it starts close to the teacher; optionally with the least important
feed-forward units pruned), or a fresh encoder of a narrower config.
`Distiller` wraps student and teacher in one `keras.Model` so that plain
`model.fit` trains it; its loss is

    alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

where `_T` means softmax(logits / T). The T^2 factor keeps the gradient scale
of the soft term independent of T (Hinton et al., 2015).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers import BertEncoder
from keras_bert_ft.models import BertClassifier


def logits_model(classifier: keras.Model) -> keras.Model:
    """A view of a `BertClassifier` that outputs its logits (shares its weights)."""
    return keras.Model(classifier.input, classifier.get_layer("logits").output)


def truncate_encoder(
    encoder: BertEncoder, num_layers: int, intermediate_size: int | None = None
) -> BertEncoder:
    """A new encoder with the embeddings, first `num_layers` blocks and pooler of `encoder`.

    With `intermediate_size` smaller than the encoder's, each block's feed-forward
    layer keeps only that many hidden units: those whose input column and output
    row have the largest norm product (a unit with a small product adds little
    to the block's output), so the student is narrower and faster per layer.
    """
    if not 1 <= num_layers <= encoder.config.num_layers:
        raise ValueError(
            f"num_layers={num_layers}, but the teacher has {encoder.config.num_layers} layers"
        )
    full = encoder.config.intermediate_size
    width = full if intermediate_size is None else intermediate_size
    if not 1 <= width <= full:
        raise ValueError(f"intermediate_size={intermediate_size}: must be in [1, {full}]")
    student = BertEncoder(encoder.config.replace(num_layers=num_layers, intermediate_size=width))
    source = {name: keras.ops.convert_to_numpy(v) for name, v in encoder.weight_map().items()}
    for i in range(num_layers if width < full else 0):
        w_in, b_in, w_out = (f"encoder/layer_{i}/{part}" for part in (
            "intermediate/dense/kernel", "intermediate/dense/bias", "output/dense/kernel"))
        keep = feed_forward_units(source[w_in], source[w_out], width)
        source[w_in] = source[w_in][:, keep]
        source[b_in] = source[b_in][keep]
        source[w_out] = source[w_out][keep]
    for name, variable in student.weight_map().items():
        variable.assign(source[name])
    return student


def feed_forward_units(kernel_in: np.ndarray, kernel_out: np.ndarray, width: int) -> np.ndarray:
    """Indices (ascending) of the `width` feed-forward units with the largest
    `|kernel_in[:, j]| * |kernel_out[j, :]|`."""
    score = np.linalg.norm(kernel_in, axis=0) * np.linalg.norm(kernel_out, axis=1)
    return np.sort(np.argsort(-score, kind="stable")[:width])


def make_student(
    teacher: BertClassifier,
    num_layers: int | None = None,
    config: BertConfig | None = None,
    intermediate_size: int | None = None,
) -> BertClassifier:
    """A student classifier with the teacher's head settings and tokenizer.

    Give `num_layers` (copy the teacher's first k layers and its head, with
    `intermediate_size` pruning their feed-forward layers: see `truncate_encoder`)
    or `config` (a fresh, randomly initialised encoder, e.g. narrower).
    """
    if (num_layers is None) == (config is None):
        raise ValueError("give exactly one of num_layers or config")
    if intermediate_size is not None and num_layers is None:
        raise ValueError("intermediate_size prunes copied layers: give num_layers with it")
    if teacher.head_type != "softmax":
        raise ValueError("distillation needs a softmax head (soft targets over classes)")
    if num_layers is not None:
        encoder = truncate_encoder(teacher.encoder, num_layers, intermediate_size)
    else:
        encoder = BertEncoder(config)
    student = BertClassifier(
        encoder, teacher.num_classes, pooling=teacher.pooling,
        hidden_units=teacher.hidden_units, hidden_activation=teacher.hidden_activation,
        dropout=teacher.dropout, label_names=teacher.label_names, tokenizer=teacher.tokenizer,
        tokenizer_config=teacher.tokenizer_config, max_length=teacher.max_length,
        truncation=teacher.truncation, pairs=getattr(teacher, "pairs", None), name="student",
    )  # fmt: skip
    if num_layers is not None:
        # Same hidden size: the teacher's head is a better start than a random one.
        head = [w for w in teacher.weights if not _in_encoder(w, teacher)]
        student_head = [w for w in student.weights if not _in_encoder(w, student)]
        for src, dst in zip(head, student_head, strict=True):
            dst.assign(src)
    return student


def _in_encoder(variable, model: BertClassifier) -> bool:
    return any(variable is w for w in model.encoder.weights)


def soft_target_loss(teacher_logits, student_logits, temperature: float):
    """Per-example T^2 * KL(softmax(t/T) || softmax(s/T))."""
    t = ops.log_softmax(teacher_logits / temperature, axis=-1)
    s = ops.log_softmax(student_logits / temperature, axis=-1)
    return temperature**2 * ops.sum(ops.exp(t) * (t - s), axis=-1)


@keras.saving.register_keras_serializable(package="keras_bert_ft")
class Distiller(keras.Model):
    """Trains `student` on `teacher`'s soft targets (and the labels, when given).

    `call` returns the student's logits, so `accuracy` metrics work as usual.
    The teacher is frozen. After `fit`, use `distiller.student`.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model,
                 temperature: float = 2.0, alpha: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.student_logits = logits_model(student)
        self.teacher_logits = logits_model(teacher)

    def call(self, inputs, training=False):
        return self.student_logits(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = ops.stop_gradient(self.teacher_logits(x, training=False))
        loss = soft_target_loss(teacher, y_pred, self.temperature)
        if y is not None and self.alpha > 0:
            hard = keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
            loss = self.alpha * hard + (1 - self.alpha) * loss
        if sample_weight is not None:
            w = ops.cast(sample_weight, loss.dtype)
            loss = ops.sum(loss * w) / ops.maximum(ops.sum(w), 1e-12)
        else:
            loss = ops.mean(loss)
        return loss + sum(self.losses) if self.losses else loss

    def distillation_loss(self, x) -> float:
        """Mean soft-target loss of the student against the teacher on features `x`."""
        return float(ops.mean(soft_target_loss(self.teacher_logits(x, training=False),
                                               self.student_logits(x, training=False),
                                               self.temperature)))  # fmt: skip

    def get_config(self) -> dict:
        return {
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("student", "teacher"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def distill(
    teacher: BertClassifier,
    train,
    validation=None,
    *,
    num_layers: int | None = None,
    config: BertConfig | None = None,
    intermediate_size: int | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    warmup_ratio: float = 0.1,
    seed: int = 0,
    verbose: int | str = 2,
) -> tuple[BertClassifier, dict]:
    """Build a student (see `make_student`) and distil `teacher` into it.

    `train` / `validation` are `TextDataset`s; returns `(student, history)`.
    """
    from keras_bert_ft.data.pipeline import dataset_from
    from keras_bert_ft.training.optimizers import create_optimizer

    keras.utils.set_random_seed(seed)
    student = make_student(teacher, num_layers=num_layers, config=config,
                           intermediate_size=intermediate_size)  # fmt: skip
    kw = dict(max_length=teacher.max_length, truncation=teacher.truncation,
              batch_size=batch_size)  # fmt: skip
    train_ds = dataset_from(train, teacher.tokenizer, shuffle=True, seed=seed, **kw)
    val_ds = dataset_from(validation, teacher.tokenizer, **kw) if validation is not None else None
    distiller = Distiller(student, teacher, temperature=temperature, alpha=alpha)
    steps = math.ceil(len(train) / batch_size) * epochs
    distiller.compile(
        optimizer=create_optimizer(learning_rate, steps, warmup_ratio=warmup_ratio),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose)
    return student, history.history
