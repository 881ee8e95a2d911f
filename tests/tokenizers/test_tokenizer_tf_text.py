"""Where tensorflow-text's BertTokenizer differs from ours (and HF's), as facts.

With the same uncased vocab and `lower_case=True`, tensorflow-text applies
NFKC case folding and treats some control characters differently, so it gives
other ids on some lines. The counts below were measured with tensorflow-text
2.21.1; the test fails if any count moves, so the facts stay true. Examples
seen: SMS messages with U+0092 (a C1 control used as an apostrophe) and
U+2026 '…' (NFKC turns it into '...'), MRPC's U+00B4 '´' and curly quotes,
and in the stress set ligatures ('ﬁ' -> 'fi'), full-width letters, 'ΐ',
'Ⅻ', '㎏', 'ẛ', and special tokens inside text ('[SEP]' is split).
"""

from __future__ import annotations

import pytest
from corpora import mrpc_pairs, sms_messages, snli_pairs, sst2_sentences
from unicode_stress import stress_lines

from keras_bert_ft import WordPieceTokenizer

FACTS = {"sst2_train": 0, "sms_spam": 45, "snli_dev": 0, "mrpc_train": 4, "unicode_stress": 3320}


def differing_lines(ours: WordPieceTokenizer, reference, texts: list[str]) -> list[int]:
    import tensorflow as tf

    bad = []
    for start in range(0, len(texts), 4096):
        chunk = texts[start:start + 4096]
        want = reference.tokenize(tf.constant(chunk)).merge_dims(-2, -1).to_list()
        bad.extend(start + i for i, text in enumerate(chunk) if ours.token_ids(text) != want[i])
    return bad


@pytest.fixture(scope="module")
def tf_text_tokenizer(vocab_file):
    import tensorflow as tf
    import tensorflow_text as tft

    return tft.BertTokenizer(str(vocab_file), lower_case=True, token_out_type=tf.int64)


def test_differences_from_tensorflow_text(vocab_file, data_dir, tf_text_tokenizer):
    ours = WordPieceTokenizer(vocab_file)
    corpora = {
        "sst2_train": sst2_sentences(data_dir, "train"),
        "sms_spam": sms_messages(data_dir),
        "snli_dev": sum(snli_pairs(data_dir, "dev"), []),
        "mrpc_train": sum(mrpc_pairs(data_dir, "train"), []),
        "unicode_stress": stress_lines(),
    }
    counts, listing = {}, []
    for name, texts in corpora.items():
        bad = differing_lines(ours, tf_text_tokenizer, texts)
        counts[name] = len(bad)
        listing += [f"{name} line {i}: {texts[i][:60]!r}" for i in bad[:3]]
    print("\n".join(listing))
    assert counts == FACTS, f"tensorflow-text differences moved: {counts}\n" + "\n".join(listing)


def test_nfkc_case_folding_is_one_cause(vocab_file, tf_text_tokenizer):
    ours = WordPieceTokenizer(vocab_file)
    text = "ﬁne ＡＢＣ"  # a ligature and full-width letters
    theirs = tf_text_tokenizer.tokenize([text]).merge_dims(-2, -1).to_list()[0]
    assert theirs == ours.token_ids("fine abc")  # NFKC folded them to ASCII
    assert ours.token_ids(text) != theirs        # BERT and HF keep them
