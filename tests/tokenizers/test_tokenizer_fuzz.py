"""Fuzzing: 100,000+ random texts against the HF reference, and random bytes.

Each hypothesis example draws the seed of a generator that makes a batch of
1,000 texts (a whole batch drawn item by item overflows hypothesis's buffer), so 100 examples
make 100,000 inputs per casing while the reference runs in batches.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import BertWordPieceTokenizer
from unicode_stress import POOLS, random_code_point

from keras_bert_ft import WordPieceTokenizer

BATCH = 1000
EXAMPLES = int(os.environ.get("KBF_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

ITEMS = [item for pool in POOLS for item in pool]


def random_text(rng: random.Random) -> str:
    """Up to 12 pieces: random code points (any plane, or Latin), or stress items."""
    parts = []
    for _ in range(rng.randint(0, 12)):
        kind = rng.random()
        if kind < 0.35:
            parts.append("".join(random_code_point(rng) for _ in range(rng.randint(1, 6))))
        elif kind < 0.6:
            parts.append("".join(chr(rng.randrange(0x300)) for _ in range(rng.randint(1, 6))))
        else:
            parts.append(rng.choice(ITEMS))
    return "".join(parts)


batches = st.integers(0, 2**63).map(
    lambda seed: [random_text(rng) for rng in [random.Random(seed)] for _ in range(BATCH)])


@pytest.fixture(scope="module")
def pairs_of_tokenizers(vocab_file):
    return {
        casing: (WordPieceTokenizer(vocab_file, lowercase=casing),
                 BertWordPieceTokenizer(str(vocab_file), lowercase=casing))
        for casing in (True, False)
    }


@pytest.mark.parametrize("casing", [True, False], ids=["uncased", "cased"])
def test_random_text_agrees_with_reference(pairs_of_tokenizers, casing):
    ours, reference = pairs_of_tokenizers[casing]
    seen = []

    @FUZZ
    @given(batches)
    def check(batch):
        seen.append(len(batch))
        got = ours.encode_batch(batch, max_length=1 << 20, num_threads=2)
        lengths = got["input_mask"].sum(axis=1)
        want = reference.encode_batch(batch, add_special_tokens=False)
        for i, text in enumerate(batch):
            row = got["input_word_ids"][i, 1:lengths[i] - 1].tolist()
            assert row == want[i].ids, repr(text)

    check()
    assert sum(seen) >= EXAMPLES * BATCH


def test_random_bytes_never_crash(pairs_of_tokenizers):
    ours, _ = pairs_of_tokenizers[True]
    counts = {"valid": 0, "invalid": 0}

    @FUZZ
    @given(st.lists(st.binary(max_size=24), min_size=200, max_size=200))
    def check(batch):
        first_invalid = None
        for i, data in enumerate(batch):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                counts["invalid"] += 1
                first_invalid = i if first_invalid is None else first_invalid
                with pytest.raises(ValueError, match=r"texts\[0\] is not valid UTF-8"):
                    ours.encode_batch([data])
                continue
            counts["valid"] += 1
            assert ours.token_ids(data) == ours.token_ids(text), i
        if first_invalid is None:
            assert ours.encode_batch(batch)["input_word_ids"].shape[0] == len(batch)
        else:
            with pytest.raises(ValueError, match=rf"texts\[{first_invalid}\] is not valid"):
                ours.encode_batch(batch, num_threads=1)

    check()
    assert counts["valid"] > 0 and counts["invalid"] > 0
