"""A generated Unicode stress set for tokenizer agreement tests.

Deterministic: the same seed gives the same lines. It covers control and
format characters, combining accents (stacked, out of canonical order), CJK
and full-width forms, emoji with ZWJ sequences and modifiers, words over 100
characters, every kind of whitespace, special tokens inside text, and random
code points from every plane.
"""

from __future__ import annotations

import random

WHITESPACE = [chr(c) for c in (*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x1C, 0x1D, 0x1E, 0x1F)]
CONTROL_AND_FORMAT = [chr(c) for c in (0x00, 0x01, 0x07, 0x1B, 0x7F, 0x80, 0x9F, 0xAD, 0x061C,
                                       0x200B, 0x200C, 0x200D, 0x200E, 0x2060, 0x2066, 0xFEFF,
                                       0xFFFD, 0xFFF9, 0xE000, 0xF8FF, 0xFFFE, 0x10FFFF, 0xE0001)]
COMBINING = [chr(c) for c in (0x0300, 0x0301, 0x0308, 0x0327, 0x0323, 0x0334, 0x0345, 0x0344,
                              0x05B0, 0x0651, 0x093C, 0x0E48, 0x302A, 0x1DC0, 0x20D7, 0xFE20)]
CJK = list("中文字符漢語日本語한국어ひらがなカタカナ㐀丽𠀀𪜀﨑々〇") + [chr(0x2F800), chr(0x30000)]
FULL_WIDTH = [chr(c) for c in range(0xFF01, 0xFF5F)] + list("、。「」『』【】〜・")
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "❤️", "🥰", "🫠", "🧑🏿‍💻", "☺", "✌🏻", "#️⃣", "🪿"]
LETTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
ACCENTED = list("éèêëÉÈàâäÀçÇñÑöÖüÜßẞøØåÅłŁıİǅǈǋΣσςΆΐϒЁйЙǰẛḱṩ") + ["ﬁ", "ﬀ", "Ⅻ", "ⓐ", "㎏"]
SCRIPTS = ["Привет", "Ελληνικά", "مرحبا بالعالم", "שלום", "नमस्ते", "ภาษาไทย", "ქართული",
           "Tiếng Việt", "ꯃꯤꯇꯩ", "𐍈𐌰𐌹", "ᠮᠣᠩᠭᠣᠯ", "ᎠᏂᏴᏫ"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»‘’“”„‹›–—…·•§¶†‡※‼⁇") + ["៚", "꧁", "𝄞"]
SPECIALS = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[sep]", "[ SEP]", "[SEP", "[[SEP]]"]
WORDS = ["the", "movie", "unaffable", "running", "café", "naïve", "résumé", "don't", "U.S.A.",
         "e-mail", "3.14", "1,000", "C++", "#hashtag", "@user", "http://example.com/a?b=c"]

POOLS = [WHITESPACE, CONTROL_AND_FORMAT, COMBINING, CJK, FULL_WIDTH, EMOJI, LETTERS, ACCENTED,
         SCRIPTS, PUNCT, SPECIALS, WORDS]


def random_code_point(rng: random.Random) -> str:
    """Any scalar value, surrogates excluded, weighted towards the assigned planes."""
    plane = rng.choice([0, 0, 0, 1, 2, 3, 14, 15, 16])
    while True:
        cp = plane * 0x10000 + rng.randrange(0x10000)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def long_word(rng: random.Random) -> str:
    """A word of 95 to 110 characters, sometimes with accents or CJK inside."""
    length = rng.randint(95, 110)
    alphabet = rng.choice([LETTERS, LETTERS + ACCENTED, LETTERS + COMBINING])
    return "".join(rng.choice(alphabet) for _ in range(length))


def stress_lines(count: int = 5000, seed: int = 1234) -> list[str]:
    """`count` deterministic stress lines, the empty string among them."""
    rng = random.Random(seed)
    lines = ["", " ", "\u3000", "a\u0301\u0327", "e\u0327\u0301", "İstanbul", "ΣΑΣ", "ﬁne"]
    while len(lines) < count:
        parts = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.08:
                parts.append(long_word(rng))
            elif kind < 0.2:
                parts.append(random_code_point(rng))
            else:
                parts.append(rng.choice(rng.choice(POOLS)))
            if rng.random() < 0.6:
                parts.append(rng.choice([" ", " ", " ", rng.choice(WHITESPACE)]))
        lines.append("".join(parts))
    return lines
