"""One options type for every tokenizer: each bad option is refused by `TokenizerOptions`
or `PackingOptions`, and every front-end refuses it with that very message."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tiny import PYTHON, subprocess_env, tiny_encoder, vocab_path

from keras_bert_ft.errors import KerasBertFtError
from keras_bert_ft.tokenizers import op
from keras_bert_ft.tokenizers.graph import ServingTokenizer, pack_windows
from keras_bert_ft.tokenizers.options import (
    PackingOptions,
    TokenizerOptionError,
    TokenizerOptions,
)
from keras_bert_ft.tokenizers.preprocessor import TextPreprocessor
from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

BAD_PACKING = {
    "truncation": (dict(truncation="middle"), r"truncation must be one of .* got 'middle'"),
    "padding": (dict(padding="none"), r"padding must be one of .* got 'none'"),
    "max_length_small": (dict(max_length=1), "max_length must be at least 2, got 1"),
    "max_length_float": (dict(max_length=8.0), "max_length must be an int, got float"),
    "multiple": (dict(pad_to_multiple_of=0), "pad_to_multiple_of must be positive, got 0"),
    "head_tokens": (dict(head_tokens=-1), "head_tokens must be >= 0, got -1"),
}
BAD_VOCABULARY = {
    "max_chars": (dict(max_input_chars_per_word=0),
                  "max_input_chars_per_word must be at least 1, got 0"),
    "lowercase": (dict(lowercase="false"), "lowercase must be True or False, got 'false'"),
    "unk_token": (dict(unk_token=""), "unk_token must not be empty"),
    "specials": (dict(special_tokens="[CLS]"), "special_tokens must be a list of str"),
}


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(str(vocab_path()))


def refusal(call) -> str:
    """The message of the option error `call` raises."""
    with pytest.raises(TokenizerOptionError) as info:
        call()
    assert isinstance(info.value, KerasBertFtError | ValueError)
    return str(info.value)


# -- the options objects ---------------------------------------------------------
@pytest.mark.parametrize("bad, message", BAD_PACKING.values(), ids=BAD_PACKING)
def test_packing_options_refuse_bad_values(bad, message):
    with pytest.raises(TokenizerOptionError, match=message):
        PackingOptions(**bad)


@pytest.mark.parametrize("bad, message", BAD_VOCABULARY.values(), ids=BAD_VOCABULARY)
def test_tokenizer_options_refuse_bad_values(bad, message):
    with pytest.raises(TokenizerOptionError, match=message):
        TokenizerOptions(**bad)


def test_type_errors_are_still_type_errors():
    with pytest.raises(TypeError, match="max_length must be an int"):
        PackingOptions(max_length="128")
    with pytest.raises(TypeError, match="stride must be an int"):
        PackingOptions(16, stride=1.5)


def test_pairs_and_windows_rules():
    with pytest.raises(TokenizerOptionError, match=r"stride .* must be in \[0, 6\)"):
        PackingOptions(8, stride=6)
    with pytest.raises(TokenizerOptionError, match="'head_tail' applies to single texts"):
        PackingOptions(truncation="head_tail").check_pairs()
    with pytest.raises(TokenizerOptionError, match="windows .* are for single texts"):
        PackingOptions(16, stride=2).check_pairs()
    with pytest.raises(TokenizerOptionError, match="max_length must be at least 3 for pairs"):
        PackingOptions(2).check_pairs()
    PackingOptions(3).check_pairs()  # the smallest pair packing is fine


def test_options_normalise_and_round_trip():
    options = TokenizerOptions(lowercase=1, strip_accents=None)
    assert options.lowercase is True and options.strip_accents is True
    assert options.special_tokens == ("[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]")
    assert "special_tokens" not in options.get_config()  # the default is not spelled out
    custom = TokenizerOptions(lowercase=False, special_tokens=["[CLS]", "<x>"])
    assert TokenizerOptions.from_config(custom.get_config()) == custom
    packing = PackingOptions(64, "head_tail", "max_length", 8, head_tokens=5)
    assert PackingOptions.from_config(packing.get_config()) == packing
    assert (packing.head, packing.multiple, PackingOptions(64).head) == (5, 8, 15)
    with pytest.raises(TokenizerOptionError, match="padding must be one of"):
        packing.replace(padding="both")  # a copy is checked like a new one


# -- every front-end: the same refusal ----------------------------------------------
def packing_front_ends(tokenizer, bad: dict) -> dict:
    """Each front-end that takes packing options, given `bad`."""
    vocab = str(vocab_path())

    def layer():
        from keras_bert_ft.layers.wordpiece_encode import WordPieceEncode

        WordPieceEncode(vocab, **bad)

    return {
        "options": lambda: PackingOptions(**bad),
        "host": lambda: tokenizer.encode_batch(["a b"], **bad),
        "op": lambda: op.wordpiece_encode(["a b"], vocab_file=vocab, **bad),
        "op_module": lambda: op.CustomOpTokenizer(tokenizer, **bad),
        "graph": lambda: ServingTokenizer(tokenizer, **bad),
        "layer": layer,
    }


@pytest.mark.parametrize("bad", [b for b, _ in BAD_PACKING.values()], ids=BAD_PACKING)
def test_every_front_end_refuses_a_bad_packing_option_alike(tokenizer, bad):
    messages = {name: refusal(call)
                for name, call in packing_front_ends(tokenizer, bad).items()}
    assert len(set(messages.values())) == 1, messages


@pytest.mark.parametrize("bad", [b for b, _ in BAD_VOCABULARY.values()], ids=BAD_VOCABULARY)
def test_every_front_end_refuses_a_bad_vocabulary_option_alike(tokenizer, bad):
    from keras_bert_ft.layers.wordpiece_encode import WordPieceEncode

    vocab = str(vocab_path())
    messages = {
        "options": refusal(lambda: TokenizerOptions(**bad)),
        "host": refusal(lambda: WordPieceTokenizer(vocab, **bad)),
        "op": refusal(lambda: op.wordpiece_encode(["a"], vocab_file=vocab, **bad)),
        "layer": refusal(lambda: WordPieceEncode(vocab, **bad)),
    }
    # The in-graph tokenizer takes its vocabulary options from a host tokenizer,
    # so a bad one never reaches it.
    assert len(set(messages.values())) == 1, messages


def test_every_front_end_refuses_pairs_alike(tokenizer):
    from keras_bert_ft.layers.wordpiece_encode import WordPieceEncode

    vocab = str(vocab_path())
    for bad in (dict(truncation="head_tail"), dict(max_length=2)):
        texts, pairs = tf.constant(["a"]), tf.constant(["b"])
        messages = {
            "options": refusal(lambda: PackingOptions(**bad).check_pairs()),  # noqa: B023
            "host": refusal(lambda: tokenizer.encode_batch(["a"], ["b"], **bad)),  # noqa: B023
            "op": refusal(lambda: op.wordpiece_encode(  # noqa: B023
                texts, pairs, vocab_file=vocab, **bad)),  # noqa: B023
            "graph": refusal(lambda: ServingTokenizer(tokenizer, **bad)(texts, pairs)),  # noqa: B023
        }
        assert len(set(messages.values())) == 1, messages
        # Keras puts the layer's name and inputs around an error raised in `call`.
        layer = refusal(lambda: WordPieceEncode(vocab, **bad)((texts, pairs)))  # noqa: B023
        assert messages["options"] in layer


def test_every_window_front_end_refuses_a_bad_stride_alike(tokenizer):
    ragged = tf.ragged.constant([[5, 6, 7]], dtype=tf.int64)
    messages = {
        "options": refusal(lambda: PackingOptions(8, stride=6)),
        "host": refusal(lambda: tokenizer.encode_batch(["a"], max_length=8, stride=6,
                                                       return_overflow=True)),
        "graph": refusal(lambda: ServingTokenizer(tokenizer, max_length=8).windows(
            tf.constant(["a"]), 6)),
        "graph_pack": refusal(lambda: pack_windows(ragged, max_length=8, stride=6, cls_id=1,
                                                   sep_id=2, pad_id=0)),
        "classifier": refusal(lambda: classifier(max_length=8, window_stride=6)),
    }
    assert len(set(messages.values())) == 1, messages


# -- a classifier's preprocessor ------------------------------------------------------
def classifier(**kwargs):
    from keras_bert_ft.models import BertClassifier

    kwargs.setdefault("tokenizer", WordPieceTokenizer(str(vocab_path()), lowercase=False))
    return BertClassifier(tiny_encoder(), 2, pooling="mean", pairs=False, **kwargs)


TEXTS = ["One Two three four five six seven eight nine ten eleven twelve", "Short text"]


def test_classifier_holds_its_preprocessor():
    model = classifier(max_length=12, truncation="head_tail", head_tokens=3)
    preprocessor = model.preprocessor
    assert isinstance(preprocessor, TextPreprocessor)
    assert preprocessor.packing == PackingOptions(12, "head_tail", head_tokens=3)
    assert preprocessor.tokenizer is model.tokenizer
    assert (model.max_length, model.truncation, model.head_tokens) == (12, "head_tail", 3)
    want = model.tokenizer.encode_batch(TEXTS, max_length=12, truncation="head_tail",
                                        head_tokens=3)
    np.testing.assert_array_equal(model.encode(TEXTS)["input_word_ids"], want["input_word_ids"])
    # Setting a packing attribute replaces the (frozen, checked) options.
    model.head_tokens = 5
    assert model.preprocessor.packing.head_tokens == 5
    with pytest.raises(TokenizerOptionError, match="head_tokens must be >= 0"):
        model.head_tokens = -2


def test_preprocessor_survives_get_config_and_from_config():
    from keras_bert_ft.models import BertClassifier

    model = classifier(max_length=16, window_stride=4, window_pooling="max")
    config = model.get_config()
    assert config["preprocessor"]["packing"] == PackingOptions(16, stride=4).get_config()
    assert config["preprocessor"]["tokenizer"]["lowercase"] is False
    again = BertClassifier.from_config(config)
    assert again.preprocessor.packing == model.preprocessor.packing
    assert again.preprocessor.tokenizer_options == model.tokenizer.options
    assert again.tokenizer is None  # the vocabulary comes with the saved assets


def test_old_flat_config_still_deserializes():
    from keras_bert_ft.models import BertClassifier

    config = classifier(max_length=16, truncation="head_tail", head_tokens=2).get_config()
    del config["preprocessor"]  # a model saved before the preprocessor existed
    old = BertClassifier.from_config(config)
    assert old.preprocessor.packing == PackingOptions(16, "head_tail", head_tokens=2)
    assert old.preprocessor.tokenizer_options.lowercase is False


def test_preprocessor_survives_keras_save_and_load(tmp_path):
    import keras

    model = classifier(max_length=12, truncation="head_tail", head_tokens=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.preprocessor.packing == model.preprocessor.packing
    assert loaded.tokenizer.options == model.tokenizer.options
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    np.testing.assert_allclose(loaded.predict_texts(TEXTS), model.predict_texts(TEXTS),
                               rtol=1e-5, atol=1e-6)


# -- the old import paths --------------------------------------------------------------
@pytest.mark.parametrize("old, new", [
    ("keras_bert_ft.tokenization", "keras_bert_ft.tokenizers.wordpiece"),
    ("keras_bert_ft.ops", "keras_bert_ft.tokenizers.op"),
    ("keras_bert_ft.serving_tokenizer", "keras_bert_ft.tokenizers.graph"),
])
def test_old_module_paths_alias_the_new_ones(monkeypatch, old, new):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_the_package_and_its_tokenizer_import_without_tensorflow():
    code = ("import sys, keras_bert_ft, keras_bert_ft.tokenizers as t\n"
            "t.WordPieceTokenizer, t.PackingOptions, t.TextPreprocessor\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([PYTHON, "-c", code], env=subprocess_env(), capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
