"""The package's error types, all in one place.

Every error that bad input can cause (a data file, a model name or directory,
a command-line option, a broken build) derives from `KerasBertFtError`, so a
program can catch the package's user errors in one place and tell them from
bugs. Each also derives from the built-in type it used to be (ValueError,
FileNotFoundError, ...), so code that caught those keeps working.
"""

from __future__ import annotations

import os
import warnings


class KerasBertFtError(Exception):
    """Base of the errors caused by input the package cannot use; the message says what
    was wrong and where."""


class DataError(KerasBertFtError, ValueError):
    """Bad input data, with where it is and what to do about it.

    The message reads like ``train.csv, line 12, column 3: <what>. Fix: <hint>``.
    The parts are also kept as attributes for programs that handle the error.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
        unit: str = "line",
    ) -> None:
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.hint = hint
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"{unit} {line}")
        if column is not None:
            where.append(f"column {column}")
        text = (", ".join(where) + ": " if where else "") + message
        if hint:
            text += f". Fix: {hint}"
        super().__init__(text)


class ModelNotFoundError(KerasBertFtError, FileNotFoundError):
    """A pretrained model name or path that is not a directory, not a packaged model and
    could not be downloaded."""


class CheckpointFormatError(KerasBertFtError, ValueError):
    """A pretrained model directory that cannot be used: unknown format, unsupported
    model family or tokenizer, a vocabulary that does not match the weights."""


class DownloadError(KerasBertFtError, RuntimeError):
    """Something could not be fetched (offline, bad URL, bad checksum)."""


class OpLibraryError(KerasBertFtError, ImportError):
    """The custom op library is missing or was built for another TensorFlow."""


class ExportError(KerasBertFtError, RuntimeError):
    """An export that could not be written, or that stock TF Serving could not load."""


def require_positive_whole(value, what: str) -> None:
    """Raise `ValueError` ("`what` must be a positive whole number") unless `value` is an
    int of at least 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive whole number, got {value!r}")


_DEPRECATED_ALIASES = {"CheckpointError": ("CheckpointFormatError", CheckpointFormatError)}


def __getattr__(name: str):
    # Old names stay importable for one release, with a warning.
    if name in _DEPRECATED_ALIASES:
        new_name, cls = _DEPRECATED_ALIASES[name]
        warnings.warn(
            f"keras_bert_ft.errors.{name} is deprecated; use {new_name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls
    raise AttributeError(f"module 'keras_bert_ft.errors' has no attribute {name!r}")
