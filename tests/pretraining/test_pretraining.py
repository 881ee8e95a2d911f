"""Pretraining heads and `BertPretrainer`: parity with `transformers`'
`BertForPreTraining`, head weights through the HF and Google formats, fresh heads
with a notice, and `fit`."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import TINY, save_tiny_hf, tiny_tokenizer, vocab_path

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def hf_pretraining_dir(path, seed=0):
    """A small random `BertForPreTraining` saved by transformers, with the real vocab."""
    import shutil

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=TINY["hidden_size"], num_hidden_layers=TINY["num_layers"],
        num_attention_heads=TINY["num_heads"], intermediate_size=TINY["intermediate_size"],
        max_position_embeddings=TINY["max_position_embeddings"])
    model = transformers.BertForPreTraining(config).eval()
    with torch.no_grad():  # non-zero biases, so that a bias loaded wrong shows
        model.cls.predictions.bias.normal_(0, 0.5)
        model.cls.seq_relationship.bias.normal_(0, 0.5)
        model.cls.predictions.transform.LayerNorm.bias.normal_(0, 0.5)
    model.save_pretrained(path)
    shutil.copy(vocab_path(), path / "vocab.txt")
    return model


def batch():
    tok = tiny_tokenizer()
    enc = tok.encode_batch(["the movie was great fun", "an awful, boring film"],
                           ["i loved it", "never again"], max_length=24)
    positions = np.array([[1, 3, 5, 8], [2, 4, 6, 9]], np.int32)
    return {**enc, "masked_lm_positions": positions}


def our_logits(model, inputs):
    out = model(inputs, training=False)
    return np.asarray(out["mlm_logits"]), np.asarray(out["nsp_logits"])


def hf_logits(model, inputs):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(inputs["input_type_ids"], dtype=torch.long))
    mlm = out.prediction_logits.numpy()
    rows = np.arange(len(mlm))[:, None]
    return mlm[rows, inputs["masked_lm_positions"]], out.seq_relationship_logits.numpy()


def load_ours(path, nsp=True):
    from keras_bert_ft.checkpoints import load_pretrained
    from keras_bert_ft.checkpoints.pretraining_heads import load_head_weights
    from keras_bert_ft.pretraining.model import BertPretrainer

    encoder, _, _ = load_pretrained(str(path))
    model = BertPretrainer(encoder, nsp=nsp)
    loaded = load_head_weights(model, str(path))
    return model, loaded


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_pretraining")
    model = hf_pretraining_dir(path)
    inputs = batch()
    return path, inputs, hf_logits(model, inputs)


def test_logits_match_transformers(reference):
    path, inputs, (hf_mlm, hf_nsp) = reference
    model, loaded = load_ours(path)
    assert loaded == {"mlm": True, "nsp": True}
    mlm, nsp = our_logits(model, inputs)
    assert mlm.shape == hf_mlm.shape == (2, 4, 30522)
    np.testing.assert_allclose(mlm, hf_mlm, atol=1e-4, rtol=0)
    np.testing.assert_allclose(nsp, hf_nsp, atol=1e-4, rtol=0)


def test_hf_round_trip_keeps_logits_and_transformers_reads_it(reference, tmp_path):
    from keras_bert_ft.checkpoints.pretraining_heads import save_hf_pretraining

    path, inputs, (hf_mlm, hf_nsp) = reference
    model, _ = load_ours(path)
    out = tmp_path / "saved"
    save_hf_pretraining(model, str(out), str(vocab_path()))
    again, loaded = load_ours(out)
    assert loaded == {"mlm": True, "nsp": True}
    mlm, nsp = our_logits(again, inputs)
    np.testing.assert_allclose(mlm, hf_mlm, atol=1e-4, rtol=0)
    np.testing.assert_allclose(nsp, hf_nsp, atol=1e-4, rtol=0)
    theirs = transformers.BertForPreTraining.from_pretrained(str(out)).eval()
    t_mlm, t_nsp = hf_logits(theirs, inputs)
    np.testing.assert_allclose(t_mlm, hf_mlm, atol=1e-4, rtol=0)
    np.testing.assert_allclose(t_nsp, hf_nsp, atol=1e-4, rtol=0)


def test_google_round_trip_keeps_logits(reference, tmp_path):
    from keras_bert_ft.checkpoints.pretraining_heads import save_google_pretraining

    path, inputs, (hf_mlm, hf_nsp) = reference
    model, _ = load_ours(path)
    out = tmp_path / "google"
    save_google_pretraining(model, str(out), str(vocab_path()))
    import tensorflow as tf

    names = dict(tf.train.list_variables(str(out / "bert_model.ckpt")))
    assert names["cls/seq_relationship/output_weights"] == [2, TINY["hidden_size"]]
    assert names["cls/predictions/output_bias"] == [30522]
    again, loaded = load_ours(out)
    assert loaded == {"mlm": True, "nsp": True}
    mlm, nsp = our_logits(again, inputs)
    # The config keeps HF's exact GELU under its own name, so the logits are the same.
    assert again.encoder.config.hidden_act == model.encoder.config.hidden_act == "gelu_exact"
    np.testing.assert_allclose(mlm, hf_mlm, atol=1e-4, rtol=0)
    np.testing.assert_allclose(nsp, hf_nsp, atol=1e-4, rtol=0)


def test_source_without_heads_starts_fresh_and_says_so(tmp_path, capsys):
    path = save_tiny_hf(tmp_path / "plain")
    model, loaded = load_ours(path, nsp=False)
    assert loaded == {"mlm": False, "nsp": False}
    err = capsys.readouterr().err
    assert "has no masked-LM head; starting it fresh" in err
    assert "next-sentence" not in err  # NSP is off: nothing to say about it
    assert np.all(model.mlm_head.output_bias.numpy() == 0)


def test_fit_lowers_the_mlm_loss(tmp_path):
    import keras
    import tensorflow as tf
    from tiny import tiny_encoder

    from keras_bert_ft.pretraining.data import masked_dataset, pack_sequences
    from keras_bert_ft.pretraining.masking import MaskingVocab
    from keras_bert_ft.pretraining.model import BertPretrainer

    tok = tiny_tokenizer()
    docs = [["the cat sat on the mat.", "the dog sat on the log."]] * 16
    examples = pack_sequences(docs, tok, max_length=24)
    ds = masked_dataset(examples, MaskingVocab.from_tokenizer(tok), batch_size=8, seed=1)
    assert ds.options().autotune.enabled is False  # (see make_tf_dataset)
    model = BertPretrainer(tiny_encoder())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(ds, steps_per_epoch=10, epochs=3, verbose=0)
    losses = history.history["mlm_loss"]
    assert losses[-1] < losses[0] - 1.0, losses
    assert 0 <= history.history["mlm_accuracy"][-1] <= 1
    inputs, targets = next(iter(ds))
    assert isinstance(inputs["masked_lm_positions"], tf.Tensor)
    assert targets["masked_lm_weights"].shape == (8, 20)


def test_head_warmup_trains_the_heads_alone_and_restores_the_flags():
    from tiny import tiny_encoder

    from keras_bert_ft.pretraining.data import masked_dataset, pack_sequences
    from keras_bert_ft.pretraining.masking import MaskingVocab
    from keras_bert_ft.pretraining.model import BertPretrainer
    from keras_bert_ft.pretraining.run import PretrainSettings, warm_heads

    tok = tiny_tokenizer()
    examples = pack_sequences([["the cat sat on the mat.", "the dog sat on the log."]] * 16,
                              tok, max_length=24)
    ds = masked_dataset(examples, MaskingVocab.from_tokenizer(tok), batch_size=8, seed=1)
    model = BertPretrainer(tiny_encoder())
    model.build_with_zeros()
    layers = list(model.encoder._flatten_layers(include_self=True))
    flags = [layer.trainable for layer in layers]
    assert not model.encoder.pooler.trainable and model.encoder.embeddings.trainable
    encoder_before = [w.copy() for w in model.encoder.get_weights()]
    head_before = [w.copy() for w in model.mlm_head.get_weights()]

    warm_heads(model, ds, PretrainSettings(head_warmup_steps=3, verbose=0))

    assert all(np.array_equal(a, b) for a, b in zip(encoder_before, model.encoder.get_weights(),
                                                    strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, model.mlm_head.get_weights(),
                                                        strict=True))
    assert [layer.trainable for layer in layers] == flags  # the pooler stays frozen
    trainable = {id(v) for v in model.trainable_variables}
    assert id(model.encoder.embeddings.word_embeddings) in trainable
