"""Generate the Unicode tables of BERT's basic tokenizer, for C++ and for TF graphs.

Properties come from Python's `unicodedata`. When Hugging Face `tokenizers` is
importable, every code point is also probed through its BERT normalizer and
pre-tokenizer, and the reference's answer wins where the two disagree (its
Unicode tables are of a different version). The counts of such overrides are
printed, so a regeneration shows what moved.

One computation writes both outputs, so they cannot drift apart:
- `csrc/core/unicode_tables.cc`, compiled into the C++ core;
- `keras_bert_ft/_unicode_data.py`, the same arrays as a compressed numpy
  archive for the in-graph serving tokenizer, with Hangul syllables (which the
  C++ decomposes algorithmically) added to its decomposition mapping.

Usage: python tools/gen_unicode_tables.py [--no-probe] [--check] [--root DIR]
(`make tables`). Files are replaced atomically and only when their content
changed; `--check` writes nothing and exits 1 when a file is out of date.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import tempfile
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CP = 0x110000
BLOCK = 256

REMOVED, WHITESPACE, PUNCT, CJK, MN, HAS_LOWER, HAS_DECOMP = 1, 2, 4, 8, 16, 32, 64

CJK_RANGES = [
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
]
# Rust's char::is_whitespace: the Unicode White_Space property.
WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F,
                                          0x205F, 0x3000} | set(range(0x2000, 0x200B))
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def is_surrogate(cp: int) -> bool:
    return 0xD800 <= cp <= 0xDFFF


def base_properties(cp: int) -> tuple[int, str, tuple[int, ...]]:
    """Flags, lowercase and decomposition from unicodedata alone."""
    ch = chr(cp)
    cat = unicodedata.category(ch)
    flags = 0
    if cp in (0x09, 0x0A, 0x0D):
        flags |= WHITESPACE
    elif cp == 0 or cp == 0xFFFD or cat[0] == "C":
        flags |= REMOVED
    elif cp in WHITE_SPACE:
        flags |= WHITESPACE
    if (cp < 128 and not ch.isalnum() and 33 <= cp <= 126) or cat[0] == "P":
        flags |= PUNCT
    if any(lo <= cp <= hi for lo, hi in CJK_RANGES):
        flags |= CJK
    if cat == "Mn":
        flags |= MN
    lower = ch.lower()
    if lower != ch:
        flags |= HAS_LOWER
    decomp = unicodedata.normalize("NFD", ch)
    if decomp != ch:
        flags |= HAS_DECOMP
    return flags, lower, tuple(ord(c) for c in decomp)


def probe_reference(flags: list[int], lowers: dict[int, str]) -> dict[str, int]:
    """Overwrite flags and lowercase mappings with what HF tokenizers does."""
    from tokenizers import normalizers, pre_tokenizers

    clean = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    lower = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    strip = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    chinese = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    split = pre_tokenizers.BertPreTokenizer()
    moved = {"removed": 0, "whitespace": 0, "punctuation": 0, "cjk": 0, "mn": 0, "lowercase": 0}
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        ch = chr(cp)
        old = flags[cp]
        new = old & ~(REMOVED | WHITESPACE | PUNCT | CJK | MN | HAS_LOWER)
        if chinese.normalize_str(ch) == f" {ch} ":
            new |= CJK
        cleaned = clean.normalize_str(ch)
        if cleaned == "":
            new |= REMOVED
        elif cleaned == " " and cp != 0x20:
            new |= WHITESPACE
        pieces = [p for p, _ in split.pre_tokenize_str("a" + ch + "b")]
        if cp == 0x20 or pieces == ["a", "b"]:
            new |= WHITESPACE if not new & REMOVED else 0
        elif pieces == ["a", ch, "b"]:
            new |= PUNCT
        if cp in (0x09, 0x0A, 0x0D):
            new |= WHITESPACE
        stripped = strip.normalize_str(ch)
        nfd = unicodedata.normalize("NFD", ch)
        if stripped == "" and len(nfd) == 1:
            new |= MN
        low = lower.normalize_str(ch)
        if low != ch:
            new |= HAS_LOWER
            if lowers.get(cp) != low:
                moved["lowercase"] += 1
            lowers[cp] = low
        elif cp in lowers:
            moved["lowercase"] += 1
            del lowers[cp]
        for name, bit in (("removed", REMOVED), ("whitespace", WHITESPACE),
                          ("punctuation", PUNCT), ("cjk", CJK), ("mn", MN)):
            if (old ^ new) & bit:
                moved[name] += 1
        flags[cp] = new
    return moved


def two_stage(values: list[int]) -> tuple[list[int], list[int]]:
    stage1, stage2, index = [], [], {}
    for start in range(0, MAX_CP, BLOCK):
        block = tuple(values[start:start + BLOCK])
        if block not in index:
            index[block] = len(index)
            stage2.extend(block)
        stage1.append(index[block])
    return stage1, stage2


def c_array(ctype: str, name: str, values: list[int], per_line: int = 16) -> str:
    lines = [f"const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def mapping_tables(prefix: str, mapping: dict[int, tuple[int, ...]]) -> str:
    keys = sorted(mapping)
    starts, lengths, pool = [], [], []
    for k in keys:
        starts.append(len(pool))
        lengths.append(len(mapping[k]))
        pool.extend(mapping[k])
    return "\n".join([
        c_array("char32_t", f"k{prefix}Keys", keys),
        c_array("uint32_t", f"k{prefix}Starts", starts),
        c_array("uint8_t", f"k{prefix}Lengths", lengths),
        c_array("char32_t", f"k{prefix}Pool", pool),
    ])


@dataclass
class UnicodeTables:
    """Per code point flags and combining classes, and the two mappings."""

    flags: list[int]
    ccc: list[int]
    lowers: dict[int, tuple[int, ...]]
    decomps: dict[int, tuple[int, ...]]  # without Hangul syllables
    source: str


def compute_tables(probe: bool) -> UnicodeTables:
    """The tables from unicodedata, corrected by the reference when `probe`."""
    flags = [0] * MAX_CP
    ccc = [0] * MAX_CP
    lowers: dict[int, str] = {}
    decomps: dict[int, tuple[int, ...]] = {}
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            flags[cp] = REMOVED
            continue
        f, low, dec = base_properties(cp)
        flags[cp] = f
        ccc[cp] = unicodedata.combining(chr(cp))
        if f & HAS_LOWER:
            lowers[cp] = low
        if f & HAS_DECOMP and not HANGUL_FIRST <= cp <= HANGUL_LAST:
            decomps[cp] = dec
    source = f"Python unicodedata {unicodedata.unidata_version}"
    if probe:
        moved = probe_reference(flags, lowers)
        source += ", overridden by HF tokenizers where they differ: " + ", ".join(
            f"{k} {v}" for k, v in moved.items())
        print(f"// {source}", file=sys.stderr)
    lower_points = {k: tuple(ord(c) for c in v) for k, v in lowers.items()}
    return UnicodeTables(flags, ccc, lower_points, decomps, source)


def cpp_source(tables: UnicodeTables) -> str:
    """csrc/core/unicode_tables.cc for `tables`."""
    f1, f2 = two_stage(tables.flags)
    c1, c2 = two_stage(tables.ccc)
    out = [
        "// Generated by tools/gen_unicode_tables.py; do not edit.",
        f"// Source: {tables.source}.",
        '#include "unicode_tables.h"',
        "",
        "#include <algorithm>",
        "",
        "namespace kbf {",
        "namespace unicode {",
        "namespace {",
        c_array("uint16_t", "kFlagStage1", f1),
        c_array("uint8_t", "kFlagStage2", f2),
        c_array("uint16_t", "kCccStage1", c1),
        c_array("uint8_t", "kCccStage2", c2),
        mapping_tables("Lower", tables.lowers),
        mapping_tables("Decomp", tables.decomps),
        "",
        "template <size_t N>",
        "Mapping Find(const char32_t (&keys)[N], const uint32_t* starts, const uint8_t* lengths,",
        "             const char32_t* pool, char32_t c) {",
        "  const char32_t* it = std::lower_bound(keys, keys + N, c);",
        "  if (it == keys + N || *it != c) return Mapping{nullptr, 0};",
        "  const size_t i = static_cast<size_t>(it - keys);",
        "  return Mapping{pool + starts[i], lengths[i]};",
        "}",
        "}  // namespace",
        "",
        "uint8_t Flags(char32_t c) {",
        "  if (c > kMaxCodePoint) return kRemoved;",
        f"  return kFlagStage2[static_cast<size_t>(kFlagStage1[c >> 8]) * {BLOCK} + (c & 0xFF)];",
        "}",
        "",
        "uint8_t CombiningClass(char32_t c) {",
        "  if (c > kMaxCodePoint) return 0;",
        f"  return kCccStage2[static_cast<size_t>(kCccStage1[c >> 8]) * {BLOCK} + (c & 0xFF)];",
        "}",
        "",
        "Mapping Lowercase(char32_t c) {",
        "  return Find(kLowerKeys, kLowerStarts, kLowerLengths, kLowerPool, c);",
        "}",
        "",
        "Mapping Decompose(char32_t c, char32_t* buffer) {",
        f"  if (c >= {HANGUL_FIRST:#x} && c <= {HANGUL_LAST:#x}) {{",
        "    // Hangul syllables decompose algorithmically (Unicode 3.12).",
        f"    const char32_t index = c - {HANGUL_FIRST:#x};",
        "    buffer[0] = 0x1100 + index / (21 * 28);",
        "    buffer[1] = 0x1161 + (index % (21 * 28)) / 28;",
        "    const char32_t trailing = index % 28;",
        "    if (trailing == 0) return Mapping{buffer, 2};",
        "    buffer[2] = 0x11A7 + trailing;",
        "    return Mapping{buffer, 3};",
        "  }",
        "  return Find(kDecompKeys, kDecompStarts, kDecompLengths, kDecompPool, c);",
        "}",
        "",
        "}  // namespace unicode",
        "}  // namespace kbf",
        "",
    ]
    return "\n".join(out)


def hangul_decompositions() -> dict[int, tuple[int, ...]]:
    """The algorithmic NFD of Hangul syllables (Unicode 3.12), as the C++ computes it."""
    out = {}
    for cp in range(HANGUL_FIRST, HANGUL_LAST + 1):
        index = cp - HANGUL_FIRST
        parts = [0x1100 + index // (21 * 28), 0x1161 + (index % (21 * 28)) // 28]
        if index % 28:
            parts.append(0x11A7 + index % 28)
        out[cp] = tuple(parts)
    return out


def ragged(table: dict[int, tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted keys, row splits and values of a code point -> code points mapping."""
    keys = sorted(table)
    splits = np.cumsum([0] + [len(table[k]) for k in keys])
    values = [v for k in keys for v in table[k]]
    return np.asarray(keys, np.int32), splits.astype(np.int32), np.asarray(values, np.int32)


def graph_arrays(tables: UnicodeTables) -> dict[str, np.ndarray]:
    """The arrays the in-graph tokenizer reads (keras_bert_ft.tokenizers.graph)."""
    out = {}
    for name, values in (("flag", tables.flags), ("ccc", tables.ccc)):
        stage1, stage2 = two_stage(values)
        out[f"{name}_stage1"] = np.asarray(stage1, np.int32)
        out[f"{name}_stage2"] = np.asarray(stage2, np.int32)
    decomps = {**tables.decomps, **hangul_decompositions()}
    for name, table in (("lower", tables.lowers), ("decomp", decomps)):
        out[f"{name}_keys"], out[f"{name}_splits"], out[f"{name}_values"] = ragged(table)
    return out


def python_module(arrays: dict[str, np.ndarray], source: str) -> str:
    """keras_bert_ft/_unicode_data.py holding `arrays` as base64 of a compressed archive."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    blob = base64.b64encode(buffer.getvalue()).decode("ascii")
    lines = "\n".join(f'    "{chunk}"' for chunk in textwrap.wrap(blob, 96))
    return (
        '"""Unicode tables of the C++ tokenizer for in-graph tokenization.\n\n'
        "Generated by tools/gen_unicode_tables.py with csrc/core/unicode_tables.cc; do not edit.\n"
        + "".join(f"{line}\n" for line in textwrap.wrap(f"Source of those tables: {source}.", 96))
        + '"""\n\n'
        f"BLOB = (\n{lines}\n)\n"
    )


def module_arrays(text: str) -> dict[str, np.ndarray]:
    """The arrays stored in a generated _unicode_data.py."""
    namespace: dict = {}
    exec(compile(text, "_unicode_data.py", "exec"), namespace)  # our own generated file
    with np.load(io.BytesIO(base64.b64decode(namespace["BLOB"]))) as archive:
        return {name: archive[name] for name in archive.files}


def same_module(old: str, arrays: dict[str, np.ndarray], new: str) -> bool:
    """Whether `old` holds the same docstring and arrays as `new` (zip bytes carry a time)."""
    if old.split("BLOB")[0] != new.split("BLOB")[0]:
        return False
    stored = module_arrays(old)
    return sorted(stored) == sorted(arrays) and all(
        np.array_equal(stored[k], arrays[k]) and stored[k].dtype == arrays[k].dtype for k in arrays
    )


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-probe", action="store_true", help="unicodedata only")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    tables = compute_tables(probe=not args.no_probe)
    arrays = graph_arrays(tables)
    cpp_path = args.root / "csrc" / "core" / "unicode_tables.cc"
    py_path = args.root / "keras_bert_ft" / "_unicode_data.py"
    outputs = [
        (cpp_path, cpp_source(tables), lambda old, new: old == new),
        (py_path, python_module(arrays, tables.source),
         lambda old, new: same_module(old, arrays, new)),
    ]  # fmt: skip
    stale = []
    for path, text, same in outputs:
        old = path.read_text("utf-8") if path.exists() else None
        if old is not None and same(old, text):
            continue
        stale.append(path)
        if not args.check:
            replace_atomically(path, text)
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
