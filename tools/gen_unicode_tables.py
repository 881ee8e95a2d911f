"""Generate csrc/unicode_tables.cc: the Unicode data of BERT's basic tokenizer.

Properties come from Python's `unicodedata`. When Hugging Face `tokenizers` is
importable, every code point is also probed through its BERT normalizer and
pre-tokenizer, and the reference's answer wins where the two disagree (its
Unicode tables are of a different version). The counts of such overrides are
printed, so a regeneration shows what moved.

Usage: python tools/gen_unicode_tables.py [--no-probe] > csrc/unicode_tables.cc
"""

from __future__ import annotations

import sys
import unicodedata

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


def main() -> None:
    probe = "--no-probe" not in sys.argv
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
    f1, f2 = two_stage(flags)
    c1, c2 = two_stage(ccc)
    out = [
        "// Generated by tools/gen_unicode_tables.py; do not edit.",
        f"// Source: {source}.",
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
        mapping_tables("Lower", {k: tuple(ord(c) for c in v) for k, v in lowers.items()}),
        mapping_tables("Decomp", decomps),
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
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
