"""Training: optimizer and schedule, strategies, checkpoints and resume, `fit` helpers."""

from keras_bert_ft.training.checkpointing import (
    CheckpointError,
    EpochCheckpoint,
    find_resume_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from keras_bert_ft.training.optimizers import NO_DECAY_NAMES, AdamW, create_optimizer
from keras_bert_ft.training.runs import RunMismatchError, describe_run, prepare_output_dir
from keras_bert_ft.training.schedules import WarmupLinearDecay
from keras_bert_ft.training.strategies import get_strategy, is_chief, set_precision
from keras_bert_ft.training.trainer import (
    compile_classifier,
    evaluate_report,
    fit_with_resume,
    make_callbacks,
    save_report,
)

__all__ = [
    "NO_DECAY_NAMES",
    "AdamW",
    "CheckpointError",
    "EpochCheckpoint",
    "RunMismatchError",
    "WarmupLinearDecay",
    "compile_classifier",
    "create_optimizer",
    "describe_run",
    "evaluate_report",
    "find_resume_checkpoint",
    "fit_with_resume",
    "get_strategy",
    "is_chief",
    "latest_checkpoint",
    "list_checkpoints",
    "make_callbacks",
    "prepare_output_dir",
    "restore_checkpoint",
    "save_checkpoint",
    "save_report",
    "set_precision",
]
