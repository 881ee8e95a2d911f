"""Readers for labelled text: CSV, TSV, JSONL and pandas DataFrames.

Every reader maps columns to roles (text, optional text pair, optional label)
and returns a `TextDataset`. Bad input raises `DataError` naming the file, the
line (and column where meaningful) and what to fix; nothing is silently
dropped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_bert_ft.data.labels import LabelVocabulary, label_to_str, multi_hot, split_label_list
from keras_bert_ft.errors import DataError

Column = str | int

_QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
# Python's csv rejects fields over 128 KiB by default; the whole file is in memory
# already, so the limit protects nothing and only refuses long documents.
_CSV_FIELD_LIMIT = 2**31 - 1


@dataclass
class TextDataset:
    """Texts (and optional second texts of a pair) with int32 class indices.

    `labels` is None for unlabelled data (prediction); otherwise `labels[i]`
    indexes `label_vocab.names`. Multi-label data holds a float32 0/1 matrix
    instead, `labels[i, j] == 1` when row i has label j.
    """

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray | None
    label_vocab: LabelVocabulary | None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.pairs is not None and len(self.pairs) != n:
            raise ValueError(f"{len(self.pairs)} pairs for {n} texts")
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if len(self.labels) != n:
                raise ValueError(f"{len(self.labels)} labels for {n} texts")
            if self.label_vocab is None:
                raise ValueError("labels need a label_vocab")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_pair(self) -> bool:
        return self.pairs is not None

    @property
    def is_multi_label(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    @property
    def num_classes(self) -> int:
        return 0 if self.label_vocab is None else len(self.label_vocab)

    def class_counts(self) -> dict[str, int]:
        """Number of rows per label name, in vocabulary order."""
        if self.labels is None or self.label_vocab is None:
            return {}
        if self.is_multi_label:
            counts = self.labels.sum(axis=0).astype(np.int64)
        else:
            counts = np.bincount(self.labels, minlength=len(self.label_vocab))
        return {name: int(c) for name, c in zip(self.label_vocab.names, counts, strict=True)}

    def subset(self, indices: Sequence[int] | np.ndarray, source: str | None = None) -> TextDataset:
        """The rows at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return TextDataset(
            texts=[self.texts[i] for i in idx],
            pairs=None if self.pairs is None else [self.pairs[i] for i in idx],
            labels=None if self.labels is None else self.labels[idx],
            label_vocab=self.label_vocab,
            source=self.source if source is None else source,
        )


# --------------------------------------------------------------------------- files


def split_lines(text: str) -> list[str]:
    """The lines of a file's text, split at "\\n" only, with a trailing "\\r" dropped.

    Not `str.splitlines()`: that also breaks at U+2028, U+0085, \\x1c and other
    characters that may stand inside a JSON string or a review.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_text(path: str | os.PathLike) -> str:
    """Read a whole file as UTF-8 (a byte-order mark is dropped).

    Raises `DataError` for a missing file, a file that is not UTF-8 (with the
    line and byte column of the first bad byte) and an empty file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=p, hint="check the path") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=p, hint="pass a file") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"not valid UTF-8: byte 0x{data[e.start]:02x} at byte column {column} "
            "cannot be decoded",
            path=p,
            line=line,
            column=column,
            hint="re-save the file as UTF-8 (for example: iconv -f latin1 -t utf-8 IN > OUT)",
        ) from None
    if not text.strip():
        raise DataError("the file is empty", path=p, hint="point to a file with data rows")
    return text


def iter_delimited(
    path: str | os.PathLike,
    *,
    delimiter: str = ",",
    quoting: str = "minimal",
    header: bool = True,
) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """Split a CSV/TSV file into its header (or None) and (line number, fields) rows.

    `quoting="none"` treats quote characters as ordinary text; use it for
    GLUE-style TSV files whose sentences contain unbalanced quotes.
    Blank lines are skipped.
    """
    if quoting not in _QUOTING:
        raise ValueError(f"quoting must be one of {sorted(_QUOTING)}, got {quoting!r}")
    text = read_text(path)
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quoting=_QUOTING[quoting]
    )

    def rows() -> Iterator[tuple[int, list[str]]]:
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise DataError(
                    f"cannot be parsed ({e})",
                    path=path,
                    line=reader.line_num,
                    hint="check quoting; for TSV files with quotes inside the text "
                    "use quoting='none'",
                ) from None
            line, start = start, reader.line_num + 1
            if fields and any(f.strip() for f in fields):
                yield line, fields

    it = rows()
    columns = None
    if header:
        first = next(it, None)
        if first is None:
            raise DataError("the file is empty", path=path, hint="point to a file with data rows")
        columns = [c.strip() for c in first[1]]
    return columns, it


def _column_index(spec: Column, columns: list[str] | None, path, role: str) -> int:
    if isinstance(spec, int):
        if columns is not None and not 0 <= spec < len(columns):
            raise DataError(
                f"{role} column index {spec} is out of range; the header has {len(columns)} "
                f"columns: {', '.join(columns)}",
                path=path,
                line=1,
                hint=f"pass a column name or an index from 0 to {len(columns) - 1}",
            )
        return spec
    if columns is None:
        raise DataError(
            f"{role} column {spec!r} is a name, but the file is read without a header row",
            path=path,
            hint="pass the column's 0-based index, or header=True if the first line "
            "names the columns",
        )
    if spec not in columns:
        raise DataError(
            f"no {role} column {spec!r}; columns found: {', '.join(repr(c) for c in columns)}",
            path=path,
            line=1,
            hint=f"pass {role}_column= one of the columns found, or fix the header",
        )
    return columns.index(spec)


def read_delimited(
    path: str | os.PathLike,
    text_column: Column = "text",
    pair_column: Column | None = None,
    label_column: Column | None = "label",
    *,
    label_vocab: LabelVocabulary | None = None,
    delimiter: str = ",",
    quoting: str = "minimal",
    header: bool = True,
    label_columns: Sequence[Column] | None = None,
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Read a delimited text file; see `read_csv` and `read_tsv`."""
    columns, rows = iter_delimited(path, delimiter=delimiter, quoting=quoting, header=header)
    if label_columns is not None:
        label_column, multi_label = None, True
    roles = {"text": text_column, "pair": pair_column, "label": label_column}
    index = {r: _column_index(c, columns, path, r) for r, c in roles.items() if c is not None}
    flags = {}  # one 0/1 column per label: label name -> column index
    for c in label_columns or ():
        i = _column_index(c, columns, path, "label")
        flags[columns[i] if columns is not None else str(c)] = i
    if label_columns is not None and len(flags) < 2:
        raise DataError("multi-label data needs at least two label columns", path=path,
                        hint="name every 0/1 label column")  # fmt: skip
    width = None if columns is None else len(columns)
    values: dict[str, list] = {r: [] for r in index}
    flag_values: list[list[str]] = []
    lines: list[int] = []
    for line, fields in rows:
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataError(
                f"expected {width} fields (as in the first row), found {len(fields)}",
                path=path,
                line=line,
                hint="quote fields that contain the delimiter"
                + (
                    ""
                    if quoting == "none"
                    else ", or use quoting='none' if quotes are literal text"
                ),
            )
        highest = max([*index.values(), *flags.values()])
        if highest >= len(fields):
            raise DataError(
                f"the row has {len(fields)} fields, too few for column index {highest}",
                path=path,
                line=line,
                hint="check the column mapping",
            )
        lines.append(line)
        for role, i in index.items():
            values[role].append(fields[i])
        if flags:
            flag_values.append([fields[i] for i in flags.values()])
    if not lines:
        raise DataError(
            "the file has a header but no data rows",
            path=path,
            hint="point to a file with data rows",
        )
    columns_1based = {r: i + 1 for r, i in index.items()}
    if flags:
        return _with_flag_labels(
            from_columns(values, lines, roles, path=str(path), label_vocab=None,
                         columns=columns_1based),
            flags, flag_values, lines, path=str(path), label_vocab=label_vocab,
            allow_empty=allow_empty_labels,
        )  # fmt: skip
    return from_columns(
        values, lines, roles, path=str(path), label_vocab=label_vocab, columns=columns_1based,
        multi_label=multi_label, label_separator=label_separator,
        allow_empty_labels=allow_empty_labels,
    )  # fmt: skip


def _with_flag_labels(
    data: TextDataset,
    flags: dict[str, int],
    flag_values: list[list[str]],
    lines: list[int],
    *,
    path: str,
    label_vocab: LabelVocabulary | None,
    allow_empty: bool,
) -> TextDataset:
    """Attach labels read from one 0/1 column per label (the column names are the labels)."""
    names = list(flags)
    vocab = label_vocab or LabelVocabulary(tuple(names))
    for name in names:
        if name not in vocab:
            raise DataError(
                f"label column {name!r} is not a label of the model ({', '.join(vocab.names)})",
                path=path, line=1, column=flags[name] + 1,
                hint="name the label columns after the model's labels",
            )  # fmt: skip
    lists = []
    for row, line in zip(flag_values, lines, strict=True):
        on = []
        for name, value in zip(names, row, strict=True):
            value = value.strip()
            if value not in ("0", "1"):
                raise DataError(
                    f"label column {name!r} holds {value!r}; a 0/1 label column holds 0 or 1",
                    path=path, line=line, column=flags[name] + 1,
                    hint="write 1 where the row has the label and 0 where it does not",
                )  # fmt: skip
            if value == "1":
                on.append(name)
        lists.append(on)
    labels = multi_hot(vocab, lists, source=path, lines=lines, allow_empty=allow_empty)
    return TextDataset(data.texts, data.pairs, labels, vocab, source=path)


def read_csv(
    path: str | os.PathLike,
    text_column: Column = "text",
    pair_column: Column | None = None,
    label_column: Column | None = "label",
    *,
    label_vocab: LabelVocabulary | None = None,
    header: bool = True,
    quoting: str = "minimal",
    label_columns: Sequence[Column] | None = None,
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Read a comma-separated file with standard double-quote quoting.

    Columns are names from the header row, or 0-based indices with
    `header=False`. Pass the model's `label_vocab` when reading evaluation
    data so that labels map to the trained classes (unknown labels are errors).

    Multi-label data: with `multi_label=True` the label column holds several
    labels joined by `label_separator` (or a JSON list such as
    `["joy", "love"]`); with `label_columns=[...]` each named column holds
    0 or 1 for the label it is named after. A row without labels is an
    error unless `allow_empty_labels`.
    """
    return read_delimited(
        path, text_column, pair_column, label_column,
        label_vocab=label_vocab, delimiter=",", quoting=quoting, header=header,
        label_columns=label_columns, multi_label=multi_label, label_separator=label_separator,
        allow_empty_labels=allow_empty_labels,
    )  # fmt: skip


def read_tsv(
    path: str | os.PathLike,
    text_column: Column = "text",
    pair_column: Column | None = None,
    label_column: Column | None = "label",
    *,
    label_vocab: LabelVocabulary | None = None,
    header: bool = True,
    quoting: str = "none",
    label_columns: Sequence[Column] | None = None,
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Read a tab-separated file. Quotes are literal text by default (as in GLUE)."""
    return read_delimited(
        path, text_column, pair_column, label_column,
        label_vocab=label_vocab, delimiter="\t", quoting=quoting, header=header,
        label_columns=label_columns, multi_label=multi_label, label_separator=label_separator,
        allow_empty_labels=allow_empty_labels,
    )  # fmt: skip


def read_jsonl(
    path: str | os.PathLike,
    text_column: str = "text",
    pair_column: str | None = None,
    label_column: str | None = "label",
    *,
    label_vocab: LabelVocabulary | None = None,
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Read JSON Lines: one JSON object per line, with the mapped keys.

    With `multi_label=True` the label field is a JSON list of labels (a
    string is split at `label_separator`).
    """
    text = read_text(path)
    roles = {"text": text_column, "pair": pair_column, "label": label_column}
    keys = {r: k for r, k in roles.items() if k is not None}
    values: dict[str, list] = {r: [] for r in keys}
    lines: list[int] = []
    for line, raw in enumerate(split_lines(text), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(
                f"not valid JSON ({e.msg})",
                path=path,
                line=line,
                column=e.colno,
                hint="each line must hold one complete JSON object",
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"expected a JSON object, found {type(record).__name__}",
                path=path,
                line=line,
                hint='write one object per line, like {"text": "...", "label": "..."}',
            )
        for role, key in keys.items():
            if key not in record:
                raise DataError(
                    f"no {role} field {key!r}; fields found: {', '.join(map(repr, record))}",
                    path=path,
                    line=line,
                    hint=f"pass {role}_column= one of the fields found, or add the field",
                )
            values[role].append(record[key])
        lines.append(line)
    # JSON has no column numbers once parsed: multi-label errors name the label's key.
    columns = {"label": repr(label_column)} if multi_label else None
    return from_columns(
        values, lines, roles, path=str(path), label_vocab=label_vocab, multi_label=multi_label,
        label_separator=label_separator, allow_empty_labels=allow_empty_labels, columns=columns,
    )  # fmt: skip


def read_dataframe(
    df,
    text_column: str = "text",
    pair_column: str | None = None,
    label_column: str | None = "label",
    *,
    label_vocab: LabelVocabulary | None = None,
    name: str = "DataFrame",
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Read a pandas DataFrame. Errors name the row by its index label."""
    roles = {"text": text_column, "pair": pair_column, "label": label_column}
    found = [str(c) for c in df.columns]
    values: dict[str, list] = {}
    for role, col in roles.items():
        if col is None:
            continue
        if col not in df.columns:
            raise DataError(
                f"no {role} column {col!r}; columns found: {', '.join(map(repr, found))}",
                path=name,
                hint=f"pass {role}_column= one of the columns found",
            )
        values[role] = df[col].tolist()
    if len(df) == 0:
        raise DataError("the DataFrame has no rows", path=name, hint="pass a DataFrame with data")
    return from_columns(
        values, list(df.index), roles, path=name, label_vocab=label_vocab, unit="index",
        multi_label=multi_label, label_separator=label_separator,
        allow_empty_labels=allow_empty_labels,
    )  # fmt: skip


def read_file(path: str | os.PathLike, *args, **kwargs) -> TextDataset:
    """Read a .csv, .tsv or .jsonl file, chosen by its suffix."""
    suffix = Path(path).suffix.lower()
    readers = {".csv": read_csv, ".tsv": read_tsv, ".jsonl": read_jsonl}
    if suffix not in readers:
        raise DataError(
            f"unknown file type {suffix!r}",
            path=path,
            hint="use a .csv, .tsv or .jsonl file, or call read_csv/read_tsv/read_jsonl",
        )
    return readers[suffix](path, *args, **kwargs)


# --------------------------------------------------------------------------- checks


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean_texts(
    values: list, lines: list, role: str, column_name, path, column, unit
) -> list[str]:
    out = []
    for value, line in zip(values, lines, strict=True):
        problem = None
        if _is_null(value):
            problem = "is null"
        elif not isinstance(value, str):
            value = str(value)
        if problem is None and not value.strip():
            problem = "is empty"
        if problem:
            raise DataError(
                f"the {role} (column {column_name!r}) {problem}",
                path=path,
                line=line,
                column=column,
                unit=unit,
                hint="fill in the text or remove the row",
            )
        out.append(value.strip())
    return out


def _is_integer_label(name: str) -> bool:
    try:
        int(name)
    except ValueError:
        return False
    return True


def _check_one_kind_of_label(
    names: list[str], lines: list, column_name, path: str, unit: str
) -> None:
    """Integer labels and text labels in one column are almost always a mistake (two
    files or two conventions mixed); as classes they would silently double the count."""
    integers = [i for i, name in enumerate(names) if _is_integer_label(name)]
    if not integers or len(integers) == len(names):
        return
    integer_set = set(integers)
    texts = [i for i in range(len(names)) if i not in integer_set]

    def examples(rows: list[int]) -> str:
        seen = dict.fromkeys(names[i] for i in rows)
        shown = ", ".join(repr(n) for n in list(seen)[:3])
        return shown + (", ..." if len(seen) > 3 else "")

    first_int, first_text = integers[0], texts[0]
    raise DataError(
        f"the label column {column_name!r} mixes integer labels ({examples(integers)}; "
        f"first {names[first_int]!r} at {unit} {lines[first_int]}) with text labels "
        f"({examples(texts)}; first {names[first_text]!r} at {unit} {lines[first_text]})",
        path=path,
        hint="use one kind of label for every row: map the numbers to names or the names "
        "to numbers",
    )


def from_columns(
    values: dict[str, list],
    lines: list,
    roles: dict[str, Column | None],
    *,
    path: str,
    label_vocab: LabelVocabulary | None,
    columns: dict[str, int | str] | None = None,
    unit: str = "line",
    multi_label: bool = False,
    label_separator: str = "|",
    allow_empty_labels: bool = False,
) -> TextDataset:
    """Validate raw column values and build a `TextDataset`.

    `values` maps roles ("text", optionally "pair" and "label") to one value
    per row; `lines` gives each row's line number (or index label) for
    error messages; `roles` gives the column names to mention in them.
    Without `label_vocab` the vocabulary is built from the labels, and a
    single class or a mix of integer and text labels is an error; with it,
    unknown labels are errors. With `multi_label` each label value is a
    list of labels (see `split_label_list`) and the labels are a 0/1 matrix.
    """
    columns = columns or {}
    if not lines:
        raise DataError("no data rows", path=path, hint="point to a file with data rows")
    texts = _clean_texts(
        values["text"], lines, "text", roles["text"], path, columns.get("text"), unit
    )
    pairs = None
    if "pair" in values:
        pairs = _clean_texts(
            values["pair"], lines, "text pair", roles["pair"], path, columns.get("pair"), unit
        )
    labels = None
    if "label" in values and multi_label:
        labels, label_vocab = _multi_labels(
            values["label"], lines, roles["label"], path, columns.get("label"), unit,
            label_vocab, label_separator, allow_empty_labels,
        )  # fmt: skip
    elif "label" in values:
        raw = [label_to_str(v) for v in values["label"]]
        for value, line in zip(raw, lines, strict=True):
            if value is None:
                raise DataError(
                    f"the label (column {roles['label']!r}) is missing",
                    path=path,
                    line=line,
                    column=columns.get("label"),
                    unit=unit,
                    hint="give every row a label, or remove the row",
                )
        if label_vocab is None:
            _check_one_kind_of_label(raw, lines, roles["label"], path, unit)
            counts = Counter(raw)
            if len(counts) < 2:
                (only,) = counts
                raise DataError(
                    f"the label column {roles['label']!r} has only one class ({only!r}) "
                    f"in all {len(raw)} rows",
                    path=path,
                    hint="a classifier needs at least two classes: check the label column "
                    "mapping and the file (or pass label_vocab= to read evaluation data)",
                )
            label_vocab = LabelVocabulary.from_values(counts)
        labels = label_vocab.encode(raw, source=path, lines=lines, unit=unit)
    return TextDataset(
        texts=texts, pairs=pairs, labels=labels, label_vocab=label_vocab, source=path
    )


def _multi_labels(
    values: list, lines: list, column_name, path: str, column: int | None, unit: str,
    label_vocab: LabelVocabulary | None, separator: str, allow_empty: bool,
) -> tuple[np.ndarray, LabelVocabulary]:
    lists = [
        split_label_list(v, separator=separator, source=path, line=line, column=column, unit=unit)
        for v, line in zip(values, lines, strict=True)
    ]
    if label_vocab is None:
        seen = {name for names in lists for name in names}
        if not allow_empty and not all(lists):  # name the empty row before counting labels
            multi_hot(LabelVocabulary(tuple(sorted(seen)) or ("",)), lists, source=path,
                      lines=lines, column=column, unit=unit)  # fmt: skip
        if len(seen) < 2:
            raise DataError(
                f"the label column {column_name!r} has {len(seen)} distinct labels in all "
                f"{len(lists)} rows",
                path=path,
                hint="multi-label data needs at least two labels: check the label column "
                f"and the separator ({separator!r})",
            )
        label_vocab = LabelVocabulary.from_values(seen)
    labels = multi_hot(label_vocab, lists, source=path, lines=lines, column=column, unit=unit,
                       allow_empty=allow_empty)  # fmt: skip
    return labels, label_vocab
