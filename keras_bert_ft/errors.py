"""The package's error types.

Every error that bad input can cause (a data file, a model name or directory,
a command-line option) derives from `KerasBertFtError`, so a program can catch
the package's user errors in one place and tell them from bugs. Each also
derives from the built-in type it used to be (ValueError, FileNotFoundError,
...), so code that caught those keeps working.
"""

from __future__ import annotations


class KerasBertFtError(Exception):
    """Base of the errors caused by input the package cannot use; the message says what
    was wrong and where."""


class ModelNotFoundError(KerasBertFtError, FileNotFoundError):
    """A pretrained model name or path that is not a directory, not a packaged model and
    could not be downloaded."""


class CheckpointError(KerasBertFtError, ValueError):
    """A pretrained model directory that cannot be used: unknown format, unsupported
    model family or tokenizer, a vocabulary that does not match the weights."""
