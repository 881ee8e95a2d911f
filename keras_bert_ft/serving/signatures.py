"""The names a serving export's clients see: its signatures and their inputs.

Kept in one place so the exporter, the warm-up records, the predict command and
the op check agree on them.
"""

from __future__ import annotations

# Raw text in: `text`, plus `text_pair` for a sentence-pair model (1-D strings).
TEXT_SIGNATURE = "serving_default"
TEXT_INPUT = "text"
PAIR_INPUT = "text_pair"

# Token ids in (int32, [rows, tokens]): the features the training tokenizer writes.
IDS_SIGNATURE = "serve_ids"
ID_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
