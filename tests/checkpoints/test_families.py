"""The rest of the WordPiece family: DistilBERT and ELECTRA from Hugging Face directories
and keras-hub backbones, checked against `transformers` / keras-hub on real sentences and
pairs; their save/load round trips; classifiers over them; other families refused by name."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import shutil
import threading
import warnings

import numpy as np
import pytest

import keras_bert_ft
from keras_bert_ft.checkpoints import (
    inspect_pretrained,
    save_google,
    save_hf,
    save_keras_hub_preset,
    save_tfhub,
)
from keras_bert_ft.config import BertConfig
from keras_bert_ft.errors import CheckpointFormatError
from keras_bert_ft.layers import BertEncoder
from keras_bert_ft.models import BertClassifier

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FAMILIES = ("distilbert", "electra")
WIDTH = dict(hidden=32, layers=2, heads=2, intermediate=64, positions=64)
MAX_LEN = 48


def hf_config(kind: str, **extra):
    """A small transformers config of `kind` over the real uncased vocabulary (30522)."""
    w = WIDTH
    if kind == "distilbert":
        return transformers.DistilBertConfig(
            dim=w["hidden"], n_layers=w["layers"], n_heads=w["heads"],
            hidden_dim=w["intermediate"], max_position_embeddings=w["positions"], **extra)
    # ELECTRA discriminator with factorised embeddings: 16 wide, projected up to 32.
    return transformers.ElectraConfig(
        embedding_size=16, hidden_size=w["hidden"], num_hidden_layers=w["layers"],
        num_attention_heads=w["heads"], intermediate_size=w["intermediate"],
        max_position_embeddings=w["positions"], **extra)


def randomise(model, seed: int):
    """Spread every parameter (LayerNorms around 1) so that a misplaced weight shows
    up far above the tolerances; transformers' own init (std 0.02) would hide some."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            is_norm = "LayerNorm" in name or "layer_norm" in name
            p.copy_(1.0 + noise if is_norm and name.endswith("weight") else noise)
    return model.eval()


def save_model(model, path, vocab_file):
    model.save_pretrained(str(path))
    shutil.copyfile(vocab_file, path / "vocab.txt")
    return path


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory, vocab_file):
    """{kind: (transformers model, its save_pretrained directory)}."""
    out = {}
    for i, kind in enumerate(FAMILIES):
        cls = transformers.DistilBertModel if kind == "distilbert" else transformers.ElectraModel
        model = randomise(cls(hf_config(kind)), seed=i)
        out[kind] = model, save_model(model, tmp_path_factory.mktemp(kind), vocab_file)
    return out


@pytest.fixture(scope="module")
def batches(data_dir, vocab_file):
    """Real single sentences (SST-2) and pairs (MRPC), encoded by the package tokenizer."""
    from keras_bert_ft.tokenizers.wordpiece import WordPieceTokenizer

    with open(data_dir / "sst2" / "dev.tsv", encoding="utf-8") as f:
        sst2 = [r[0] for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:9]]
    with open(data_dir / "mrpc" / "dev.tsv", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:9]
    tok = WordPieceTokenizer(str(vocab_file))
    single = tok.encode_batch(sst2, max_length=MAX_LEN)
    pairs = tok.encode_batch([r[3] for r in rows], pairs=[r[4] for r in rows],
                             max_length=MAX_LEN)  # fmt: skip
    as_np = [{k: np.asarray(v, dtype="int32") for k, v in b.items()} for b in (single, pairs)]
    assert as_np[1]["input_type_ids"].max() == 1  # the pairs really have two segments
    return as_np


def reference(model, batch, kind):
    """transformers' last hidden state and per-layer hidden states for `batch`."""
    kwargs = {"input_ids": torch.tensor(batch["input_word_ids"]).long(),
              "attention_mask": torch.tensor(batch["input_mask"]).long()}  # fmt: skip
    if kind != "distilbert":  # DistilBERT has no token types
        kwargs["token_type_ids"] = torch.tensor(batch["input_type_ids"]).long()
    with torch.no_grad():
        out = model(**kwargs, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states[1:]]


def masked_diff(a, b, mask):
    """Largest difference at real tokens (padded rows carry no meaning)."""
    return float(np.abs((np.asarray(a) - np.asarray(b)) * mask[..., None]).max())


def outputs(encoder, batch):
    return [np.asarray(h) for h in encoder(batch, training=False)["encoder_outputs"]]


# ---- Hugging Face: parity, config, round trips ----------------------------------------------
@pytest.mark.parametrize("kind", FAMILIES)
def test_hf_parity_on_sentences_and_pairs(kind, hf_models, batches):
    model, path = hf_models[kind]
    encoder, tokenizer, config = keras_bert_ft.load_pretrained(path)
    assert config.model_type == kind and not config.pooler
    assert config.type_vocab_size == (0 if kind == "distilbert" else 2)
    assert config.embedding_size == (16 if kind == "electra" else None)
    assert tokenizer.vocab_size == 30522
    assert "pooled_output" not in encoder(batches[0])
    for batch in batches:
        want = reference(model, batch, kind)
        got = outputs(encoder, batch)
        assert len(got) == len(want) == WIDTH["layers"]
        for g, w in zip(got, want, strict=True):  # every layer, not only the last
            assert masked_diff(g, w, batch["input_mask"]) <= 1e-4


def test_electra_reads_token_types(hf_models, batches):
    """The pair parity above means something for ELECTRA: token types change its output."""
    encoder = keras_bert_ft.load_pretrained(hf_models["electra"][1])[0]
    pairs = batches[1]
    flat = {**pairs, "input_type_ids": np.zeros_like(pairs["input_type_ids"])}
    assert masked_diff(outputs(encoder, pairs)[-1], outputs(encoder, flat)[-1],
                       pairs["input_mask"]) > 1e-2  # fmt: skip


@pytest.mark.parametrize("kind", FAMILIES)
def test_hf_save_round_trip(kind, hf_models, batches, vocab_file, tmp_path):
    model, path = hf_models[kind]
    encoder = keras_bert_ft.load_pretrained(path)[0]
    save_hf(encoder, str(tmp_path / "saved"), vocab_file=str(vocab_file))
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["model_type"] == kind
    again, _, config = keras_bert_ft.load_pretrained(tmp_path / "saved")
    assert config == keras_bert_ft.load_pretrained(path)[2]
    # transformers reads what was written as the family's own model class.
    reloaded = transformers.AutoModel.from_pretrained(str(tmp_path / "saved")).eval()
    assert type(reloaded) is type(model)
    for batch in batches:
        mask = batch["input_mask"]
        assert masked_diff(outputs(again, batch)[-1], outputs(encoder, batch)[-1], mask) <= 1e-5
        assert masked_diff(reference(reloaded, batch, kind)[-1],
                           reference(model, batch, kind)[-1], mask) <= 1e-5  # fmt: skip


@pytest.mark.parametrize("kind", FAMILIES)
def test_task_model_directory_loads_the_encoder(kind, batches, vocab_file, tmp_path):
    """A *ForSequenceClassification directory (weights under `distilbert.` / `electra.`)
    loads, and head="family" rebuilds its head: same scores as transformers."""
    cls = {"distilbert": transformers.DistilBertForSequenceClassification,
           "electra": transformers.ElectraForSequenceClassification}[kind]  # fmt: skip
    model = randomise(cls(hf_config(kind, num_labels=3)), seed=7)
    path = save_model(model, tmp_path / kind, vocab_file)
    encoder = keras_bert_ft.load_pretrained(path)[0]
    classifier = BertClassifier(encoder, 3, head="family", dropout=0.0)
    assert classifier.pooling == "cls" and classifier.hidden_units == (WIDTH["hidden"],)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    hidden, out = {"distilbert": ("pre_classifier", "classifier"),
                   "electra": ("classifier.dense", "classifier.out_proj")}[kind]  # fmt: skip
    for layer, name in ((classifier.get_layer("head_hidden_0"), hidden),
                        (classifier.get_layer("logits"), out)):  # fmt: skip
        layer.set_weights([state[name + ".weight"].T, state[name + ".bias"]])
    for batch in batches:
        kwargs = {"input_ids": torch.tensor(batch["input_word_ids"]).long(),
                  "attention_mask": torch.tensor(batch["input_mask"]).long()}  # fmt: skip
        if kind == "electra":
            kwargs["token_type_ids"] = torch.tensor(batch["input_type_ids"]).long()
        with torch.no_grad():
            want = torch.softmax(model(**kwargs).logits, -1).numpy()
        np.testing.assert_allclose(classifier(batch, training=False), want, atol=1e-4)
    # The resolved head is what the config keeps, so the model serialises.
    clone = BertClassifier.from_config(classifier.get_config())
    assert (clone.pooling, clone.hidden_units, clone.hidden_activation) == (
        classifier.pooling, classifier.hidden_units, classifier.hidden_activation)


# ---- keras-hub ------------------------------------------------------------------------------
def keras_hub_backbone(kind: str):
    import keras
    import keras_hub

    keras.utils.set_random_seed(3)
    w = WIDTH
    common = dict(num_layers=w["layers"], num_heads=w["heads"], hidden_dim=w["hidden"],
                  intermediate_dim=w["intermediate"], max_sequence_length=w["positions"])
    if kind == "distilbert":
        backbone = keras_hub.models.DistilBertBackbone(vocabulary_size=30522, **common)
    else:
        backbone = keras_hub.models.ElectraBackbone(vocab_size=30522, embedding_dim=16, **common)
    rng = np.random.default_rng(3)
    for v in backbone.weights:  # as in randomise(): keras-hub's init would hide mistakes
        noise = rng.normal(0, 0.2, tuple(v.shape)).astype("float32")
        v.assign(1.0 + noise if v.path.endswith("gamma") else noise)
    return backbone


def keras_hub_outputs(backbone, batch):
    x = {"token_ids": batch["input_word_ids"], "padding_mask": batch["input_mask"]}
    if "segment_ids" in backbone.input:  # DistilBERT has no segments
        x["segment_ids"] = batch["input_type_ids"]
    out = backbone(x, training=False)
    return out if isinstance(out, dict) else {"sequence_output": out}


@pytest.mark.parametrize("kind", FAMILIES)
def test_keras_hub_backbone_and_preset_round_trip(kind, batches, vocab_file, tmp_path):
    import keras_hub

    backbone = keras_hub_backbone(kind)
    encoder, _, config = keras_bert_ft.load_pretrained(backbone)
    assert config.model_type == kind
    assert config.pooler == (kind == "electra")  # keras-hub's ElectraBackbone has a pooler
    for batch in batches:
        want = keras_hub_outputs(backbone, batch)
        got = encoder(batch, training=False)
        assert masked_diff(got["sequence_output"], want["sequence_output"],
                           batch["input_mask"]) <= 1e-4  # fmt: skip
        if kind == "electra":
            np.testing.assert_allclose(got["pooled_output"], want["pooled_output"], atol=1e-4)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_keras_hub_preset(encoder, str(tmp_path / "preset"), vocab_file=str(vocab_file))
    # Same activation and pooler as the backbone: nothing to warn about.
    assert not [w for w in caught if "keras-hub" in str(w.message)]
    again, tokenizer, config2 = keras_bert_ft.load_pretrained(tmp_path / "preset")
    assert config2 == config.replace(do_lower_case=True) and tokenizer.vocab_size == 30522
    reloaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert type(reloaded) is type(backbone)
    for batch in batches:
        mask = batch["input_mask"]
        assert masked_diff(again(batch)["sequence_output"],
                           encoder(batch)["sequence_output"], mask) <= 1e-5  # fmt: skip
        assert masked_diff(keras_hub_outputs(reloaded, batch)["sequence_output"],
                           encoder(batch)["sequence_output"], mask) <= 1e-5  # fmt: skip


def test_hf_distilbert_to_keras_hub_keeps_outputs(hf_models, batches, tmp_path):
    """keras-hub's DistilBERT uses the exact GELU, as transformers does: an HF model
    survives the trip through a keras-hub preset."""
    model, path = hf_models["distilbert"]
    encoder = keras_bert_ft.load_pretrained(path)[0]
    save_keras_hub_preset(encoder, str(tmp_path / "preset"))
    again = keras_bert_ft.load_pretrained(tmp_path / "preset")[0]
    for batch in batches:
        assert masked_diff(outputs(again, batch)[-1], reference(model, batch, "distilbert")[-1],
                           batch["input_mask"]) <= 1e-4  # fmt: skip


def test_hf_electra_to_keras_hub_warns(hf_models):
    from keras_bert_ft.checkpoints import to_keras_hub

    encoder = keras_bert_ft.load_pretrained(hf_models["electra"][1])[0]
    with pytest.warns(UserWarning) as caught:
        backbone = to_keras_hub(encoder)
    text = " ".join(str(w.message) for w in caught)
    assert "tanh GELU" in text and "untrained" in text
    assert type(backbone).__name__ == "ElectraBackbone"


# ---- classifiers over encoders without a pooler ---------------------------------------------
def test_classifier_pooling_without_pooler(hf_models, batches, tmp_path):
    import keras

    encoder, tokenizer, _ = keras_bert_ft.load_pretrained(hf_models["distilbert"][1])
    with pytest.raises(ValueError, match="pooling='pooled' needs the encoder's pooler.*"
                                         "distilbert encoder has none"):
        BertClassifier(encoder, 2)
    model = BertClassifier(encoder, 2, pooling="mean", tokenizer=tokenizer, max_length=MAX_LEN,
                           train_encoder_layers=1)  # fmt: skip
    assert [len(g) for g in model.encoder_layer_groups()][-1] == 0  # no pooler group
    assert not encoder.blocks[0].trainable and encoder.blocks[1].trainable
    before = model.predict_texts(["a good movie", "a dull film"])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.encoder.config.model_type == "distilbert"
    np.testing.assert_allclose(loaded.predict_texts(["a good movie", "a dull film"]), before,
                               atol=1e-6)  # fmt: skip


# ---- configs --------------------------------------------------------------------------------
def test_family_config_checks_and_serialises():
    with pytest.raises(ValueError, match="'distilbert' has no token types"):
        BertConfig(model_type="distilbert", pooler=False)
    with pytest.raises(ValueError, match="'bert' has a pooler"):
        BertConfig(pooler=False)
    with pytest.raises(ValueError, match="model_type must be one of"):
        BertConfig(model_type="roberta")
    config = BertConfig(model_type="electra", embedding_size=16, hidden_size=32, num_heads=2,
                        pooler=False)  # fmt: skip
    assert BertConfig.from_dict(config.to_dict()) == config
    encoder = BertEncoder(config, num_layers=1, intermediate_size=32, vocab_size=50)
    assert BertEncoder.from_config(encoder.get_config()).config == encoder.config
    # An old to_dict form (before the family fields) still reads as BERT.
    old = {k: v for k, v in BertConfig().to_dict().items() if k not in ("model_type", "pooler")}
    assert BertConfig.from_dict(old).model_type == "bert"


def test_bert_only_formats_refuse_other_families(hf_models, tmp_path):
    encoder = keras_bert_ft.load_pretrained(hf_models["distilbert"][1])[0]
    with pytest.raises(CheckpointFormatError,
                       match="Google BERT checkpoints hold BERT models only"):
        save_google(encoder, str(tmp_path / "g"))
    with pytest.raises(CheckpointFormatError, match="has no pooler; save it with save_hf"):
        save_tfhub(encoder, str(tmp_path / "t"))
    assert not (tmp_path / "g").exists() and not (tmp_path / "t").exists()


# ---- other families: refused by name --------------------------------------------------------
UNSUPPORTED = {
    "roberta": ("RoBERTa", "byte-level BPE tokenizer"),
    "xlm-roberta": ("XLM-RoBERTa", "SentencePiece tokenizer"),
    "deberta-v2": ("DeBERTa-v2/v3", "SentencePiece tokenizer"),
    "albert": ("ALBERT", "SentencePiece tokenizer"),
}


@pytest.mark.parametrize("model_type", sorted(UNSUPPORTED))
def test_other_families_say_what_is_missing(model_type, tmp_path):
    # As such directories come: config + weights + their own tokenizer files, no vocab.txt.
    path = tmp_path / model_type
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": model_type, "hidden_size": 32}))
    (path / "model.safetensors").write_bytes(b"")
    (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    title, part = UNSUPPORTED[model_type]
    for read in (keras_bert_ft.load_pretrained, inspect_pretrained):
        with pytest.raises(CheckpointFormatError) as e:
            read(path)
        message = str(e.value)
        assert f"model_type '{model_type}' is not supported" in message
        assert title in message and part in message and "vocab.txt" not in message
        assert "\n" not in message


def test_unsupported_keras_hub_preset_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"module": "keras_hub.src.models.roberta.roberta_backbone",
         "class_name": "RobertaBackbone", "config": {"vocabulary_size": 50},
         "registered_name": "keras_hub>RobertaBackbone"}))  # fmt: skip
    (tmp_path / "model.weights.h5").write_bytes(b"")
    with pytest.raises(CheckpointFormatError,
                       match=r"keras-hub RobertaBackbone: model_type 'roberta' "
                             r"is not supported.*byte-level BPE"):
        keras_bert_ft.load_pretrained(tmp_path)
    import keras_hub

    backbone = keras_hub.models.RobertaBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
                                                hidden_dim=8, intermediate_dim=16)  # fmt: skip
    with pytest.raises(CheckpointFormatError,
                       match=r"keras-hub RobertaBackbone: model_type 'roberta'"):
        keras_bert_ft.load_pretrained(backbone)


def test_hub_download_refuses_family_before_looking_for_vocab(tmp_path, monkeypatch):
    """A RoBERTa repository on the Hub has no vocab.txt: the error names RoBERTa's
    tokenizer, not the missing file."""
    served = tmp_path / "server" / "someone" / "tiny-roberta" / "resolve" / "main"
    served.mkdir(parents=True)
    (served / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    (served / "vocab.json").write_text("{}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "server"))  # fmt: skip
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KBF_HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with pytest.raises(CheckpointFormatError, match="RoBERTa needs a byte-level BPE tokenizer"):
            keras_bert_ft.load_pretrained("someone/tiny-roberta")
    finally:
        server.shutdown()
        server.server_close()


# ---- serving export -------------------------------------------------------------------------
def test_export_serves_distilbert(hf_models, data_dir, tmp_path):
    """A classifier over DistilBERT (no token types, no pooler) exports for TF Serving;
    the text signature gives the model's own probabilities."""
    import tensorflow as tf

    from keras_bert_ft.serving.export import TEXT_SIGNATURE, export_for_serving

    encoder, tokenizer, _ = keras_bert_ft.load_pretrained(hf_models["distilbert"][1])
    model = BertClassifier(encoder, 3, head="family", tokenizer=tokenizer, max_length=MAX_LEN,
                           pairs=True)  # fmt: skip
    with open(data_dir / "mrpc" / "dev.tsv", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:9]
    texts, pairs = [r[3] for r in rows], [r[4] for r in rows]
    path = export_for_serving(model, tokenizer, tmp_path / "distilbert")
    served = tf.saved_model.load(str(path)).signatures[TEXT_SIGNATURE](
        text=tf.constant(texts), text_pair=tf.constant(pairs))
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               model.predict_texts(texts, pairs), atol=1e-5)  # fmt: skip
