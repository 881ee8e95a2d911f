"""The one exception type for bad input data."""

from __future__ import annotations

import os

from keras_bert_ft.errors import KerasBertFtError


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
