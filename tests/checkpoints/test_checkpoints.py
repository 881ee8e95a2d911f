"""Loading and writing pretrained encoders: parity with Hugging Face transformers on
real weights and real sentences, round trips through every format, bad input."""

from __future__ import annotations

import csv
import json
import os
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bert_ft
from keras_bert_ft.checkpoints import (
    save_google,
    save_hf,
    save_keras_hub_preset,
    save_tfhub,
    to_keras_hub,
)
from keras_bert_ft.config import BertConfig
from keras_bert_ft.layers import BertEncoder

N = 64
KEYS = ("sequence_output", "pooled_output")


# ---- real data and the reference model ----------------------------------------------
def sst2_sentences(data_dir, n=N):
    with open(data_dir / "sst2" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows[:n]]


def mrpc_pairs(data_dir, n=N):
    with open(data_dir / "mrpc" / "dev.tsv", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[3] for r in rows[:n]], [r[4] for r in rows[:n]]


@pytest.fixture(scope="module")
def minilm():
    """(encoder, tokenizer, config) of all-MiniLM-L6-v2, from the packaged name."""
    return keras_bert_ft.load_pretrained("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))


def hf_batch(tokenizer, texts, pairs=None):
    b = tokenizer(texts, pairs, padding=True, truncation=True, max_length=128,
                  return_tensors="np")
    return {
        "input_word_ids": b["input_ids"].astype("int32"),
        "input_mask": b["attention_mask"].astype("int32"),
        "input_type_ids": b["token_type_ids"].astype("int32"),
    }


@pytest.fixture(scope="module")
def sentences(data_dir, hf_tokenizer):
    return hf_batch(hf_tokenizer, sst2_sentences(data_dir, 8))


def run(model, x):
    out = model(x, training=False)
    return {k: np.asarray(out[k], dtype=np.float32) for k in KEYS}


def max_diff(a, b, mask=None):
    """Largest difference of the outputs; sequence_output at real tokens when `mask`
    is given (padded rows carry no meaning and are numerically ill-conditioned)."""
    real = np.ones(a["sequence_output"].shape[:2], bool) if mask is None else mask.astype(bool)
    seq = np.abs(a["sequence_output"] - b["sequence_output"])[real]
    return max(float(seq.max()), float(np.abs(a["pooled_output"] - b["pooled_output"]).max()))


# ---- parity with transformers' PyTorch BertModel --------------------------------------
@pytest.mark.parametrize("kind", ["sentences", "pairs"])
def test_parity_with_transformers(kind, minilm, minilm_dir, hf_tokenizer, data_dir):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if kind == "sentences":
        x = hf_batch(hf_tokenizer, sst2_sentences(data_dir))
    else:
        x = hf_batch(hf_tokenizer, *mrpc_pairs(data_dir))
        assert x["input_type_ids"].max() == 1
    assert len(x["input_word_ids"]) == N
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    with torch.no_grad():
        out = ref(input_ids=torch.tensor(x["input_word_ids"], dtype=torch.long),
                  attention_mask=torch.tensor(x["input_mask"], dtype=torch.long),
                  token_type_ids=torch.tensor(x["input_type_ids"], dtype=torch.long))
    got = run(minilm[0], x)
    want = {"sequence_output": out.last_hidden_state.numpy(),
            "pooled_output": out.pooler_output.numpy()}
    for k in KEYS:
        assert got[k].shape == want[k].shape
    # sequence_output is compared at real tokens. Rows of padded positions carry no
    # meaning and are ill-conditioned: there both float32 implementations are ~8e-5
    # from a float64 run of the same model (measured), so they may differ by 1.5e-4.
    real = x["input_mask"].astype(bool)
    seq_diff = np.abs(got["sequence_output"] - want["sequence_output"])[real]
    assert float(seq_diff.max()) <= 1e-4
    assert float(np.abs(got["pooled_output"] - want["pooled_output"]).max()) <= 1e-4


def test_loaded_config_and_tokenizer(minilm, hf_tokenizer, data_dir):
    encoder, tokenizer, config = minilm
    assert isinstance(encoder, BertEncoder)
    assert (config.num_layers, config.hidden_size, config.hidden_act) == (6, 384, "gelu_exact")
    assert isinstance(tokenizer, keras_bert_ft.WordPieceTokenizer)
    assert tokenizer.vocab_size == config.vocab_size == 30522 and tokenizer.lowercase
    texts = sst2_sentences(data_dir, 16)
    ours = tokenizer.encode_batch(texts)
    theirs = hf_batch(hf_tokenizer, texts)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k])


# ---- round trips -------------------------------------------------------------------------
def test_hf_writer_round_trip(minilm, sentences, vocab_file, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    save_hf(minilm[0], tmp_path, vocab_file)
    assert sorted(os.listdir(tmp_path)) == [
        "config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    again, tokenizer, config = keras_bert_ft.load_pretrained(tmp_path)
    assert config == minilm[2]
    assert max_diff(run(again, sentences), run(minilm[0], sentences)) == 0.0
    # transformers reads what we wrote.
    ref = transformers.BertModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        out = ref(**{n: torch.tensor(sentences[k], dtype=torch.long) for n, k in [
            ("input_ids", "input_word_ids"), ("attention_mask", "input_mask"),
            ("token_type_ids", "input_type_ids")]})
    np.testing.assert_allclose(out.pooler_output.numpy(),
                               run(minilm[0], sentences)["pooled_output"], atol=1e-4)


def test_google_checkpoint_round_trip(minilm, sentences, vocab_file, tmp_path):
    save_google(minilm[0], tmp_path, vocab_file)
    names = dict(tf.train.list_variables(str(tmp_path / "bert_model.ckpt")))
    assert names["bert/encoder/layer_5/attention/self/query/kernel"] == [384, 384]
    assert names["bert/embeddings/word_embeddings"] == [30522, 384]
    assert len(names) == 103
    with open(tmp_path / "bert_config.json") as f:
        assert json.load(f)["num_hidden_layers"] == 6
    again, tokenizer, config = keras_bert_ft.load_pretrained(tmp_path)
    # The exact GELU survives: Google's "gelu" would have meant the tanh form.
    assert config.hidden_act == "gelu_exact"
    assert isinstance(tokenizer, keras_bert_ft.WordPieceTokenizer)
    assert max_diff(run(again, sentences), run(minilm[0], sentences)) <= 1e-5


def test_google_gelu_means_tanh(minilm, sentences, vocab_file, tmp_path):
    tanh = keras_bert_ft.load_pretrained("all-minilm-l6-v2", hidden_act="gelu_tanh")[0]
    save_google(tanh, tmp_path, vocab_file)
    with open(tmp_path / "bert_config.json") as f:
        assert json.load(f)["hidden_act"] == "gelu"
    again, _, config = keras_bert_ft.load_pretrained(tmp_path)
    assert config.hidden_act == "gelu_tanh"
    assert max_diff(run(again, sentences), run(tanh, sentences)) <= 1e-5
    # And the two forms differ by far more than the tolerance used above.
    assert max_diff(run(tanh, sentences), run(minilm[0], sentences)) > 1e-4


@pytest.fixture(scope="module")
def tfhub_dir(minilm, vocab_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("tfhub") / "minilm_encoder"
    save_tfhub(minilm[0], str(path), str(vocab_file))
    return path


def test_tfhub_round_trip(minilm, tfhub_dir, sentences):
    assert (tfhub_dir / "assets" / "vocab.txt").is_file()
    model, tokenizer, config = keras_bert_ft.load_pretrained(tfhub_dir)
    assert isinstance(tokenizer, keras_bert_ft.WordPieceTokenizer) and tokenizer.lowercase
    assert config == minilm[2]
    out = model(sentences)
    assert len(out["encoder_outputs"]) == 6
    # Real tokens only: the SavedModel runs as a graph (fused MatMul+BiasAdd+GELU kernels),
    # the encoder eagerly, and padded rows amplify those last-bit differences.
    mask = sentences["input_mask"]
    assert max_diff(run(model, sentences), run(minilm[0], sentences), mask) <= 1e-5
    # Every variable of the SavedModel is a trainable weight of the Keras model.
    assert len(model.trainable_weights) == 103


@pytest.mark.parametrize("loader", ["tf.saved_model.load", "tensorflow_hub.load"])
def test_tfhub_plain_load(loader, minilm, tfhub_dir, sentences):
    if loader == "tensorflow_hub.load":
        hub = pytest.importorskip(
            "tensorflow_hub", reason="tensorflow_hub 0.16 needs pkg_resources (setuptools<81)")
        obj = hub.load(str(tfhub_dir))
    else:  # what hub.load does for a local directory
        obj = tf.saved_model.load(str(tfhub_dir))
    out = obj(sentences, training=False)
    assert set(out) >= {"sequence_output", "pooled_output", "encoder_outputs", "default"}
    got = {k: out[k].numpy() for k in KEYS}
    assert max_diff(got, run(minilm[0], sentences), sentences["input_mask"]) <= 1e-5
    assert len(obj.trainable_variables) == 103
    assert bool(obj.do_lower_case.numpy())
    with open(obj.vocab_file.asset_path.numpy(), encoding="utf-8") as f:
        assert sum(1 for _ in f) == 30522
    # The serving signature takes the three inputs by name.
    sig = obj.signatures["serving_default"]
    served = sig(**{k: tf.constant(v) for k, v in sentences.items()})
    np.testing.assert_allclose(served["pooled_output"], got["pooled_output"], atol=1e-6)


def test_tfhub_fine_tuning_step_changes_weights(tfhub_dir, sentences):
    encoder = keras_bert_ft.load_pretrained(tfhub_dir)[0]
    hub_layer = encoder.get_layer("hub_encoder")
    logits = keras.layers.Dense(2)(encoder(encoder.input)["pooled_output"])
    model = keras.Model(encoder.input, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in hub_layer.trainable_weights]
    x = {k: v[:4] for k, v in sentences.items()}
    model.train_on_batch(x, np.array([0, 1, 1, 0]))
    changed = [not np.array_equal(b, w.numpy())
               for b, w in zip(before, hub_layer.trainable_weights, strict=True)]
    assert len(changed) == 103 and all(changed)
    # training=True reaches the SavedModel: dropout makes two calls differ.
    a = encoder(x, training=True)["pooled_output"]
    b = encoder(x, training=True)["pooled_output"]
    assert float(np.abs(a - b).max()) > 1e-4


def test_keras_hub_round_trip(minilm, sentences):
    pytest.importorskip("keras_hub")
    with pytest.warns(UserWarning, match="tanh GELU"):
        backbone = to_keras_hub(minilm[0])
    kh = backbone({"token_ids": sentences["input_word_ids"],
                   "segment_ids": sentences["input_type_ids"],
                   "padding_mask": sentences["input_mask"]})
    kh = {k: np.asarray(kh[k]) for k in KEYS}
    # keras-hub's BertBackbone always applies the tanh GELU, so its reference is
    # our encoder with the same weights and that GELU.
    tanh = keras_bert_ft.load_pretrained("all-minilm-l6-v2", hidden_act="gelu_tanh")[0]
    # A different attention implementation: compared at real tokens.
    mask = sentences["input_mask"]
    assert max_diff(kh, run(tanh, sentences), mask) <= 1e-5
    again, tokenizer, config = keras_bert_ft.load_pretrained(backbone)
    assert config.hidden_act == "gelu_tanh" and tokenizer is None
    assert max_diff(run(again, sentences), kh, mask) <= 1e-5


def test_keras_hub_preset_dir(minilm, sentences, vocab_file, tmp_path):
    pytest.importorskip("keras_hub")
    small = keras_bert_ft.load_pretrained("all-minilm-l6-v2", num_layers=1,
                                          hidden_act="gelu_tanh")[0]
    save_keras_hub_preset(small, str(tmp_path), str(vocab_file))
    again, tokenizer, config = keras_bert_ft.load_pretrained(tmp_path)
    assert config.num_layers == 1 and tokenizer.lowercase and tokenizer.vocab_size == 30522
    assert max_diff(run(again, sentences), run(small, sentences)) <= 1e-5


# ---- options -----------------------------------------------------------------------------
def test_first_k_layers(minilm, sentences):
    full = minilm[0](sentences)
    for k in (2, 4):
        cut, _, config = keras_bert_ft.load_pretrained("all-minilm-l6-v2", num_layers=k)
        assert config.num_layers == k and len(cut.blocks) == k
        out = cut(sentences)
        assert len(out["encoder_outputs"]) == k
        for i in range(k):
            np.testing.assert_allclose(out["encoder_outputs"][i], full["encoder_outputs"][i],
                                       atol=1e-6)
        # The pooler sits on the k-th layer's output.
        pooled = minilm[0].pooler(full["encoder_outputs"][k - 1])
        np.testing.assert_allclose(out["pooled_output"], pooled, atol=1e-6)
    with pytest.raises(ValueError, match="num_layers=7, but the checkpoint has 6"):
        keras_bert_ft.load_pretrained("all-minilm-l6-v2", num_layers=7)


def test_albert_options_round_trip(tmp_path):
    config = BertConfig(vocab_size=50, hidden_size=32, num_layers=3, num_heads=4,
                        intermediate_size=64, embedding_size=8, share_layers=True)
    enc = BertEncoder(config)
    x = {"input_word_ids": np.array([[2, 7, 9, 3]], "int32"),
         "input_mask": np.ones((1, 4), "int32"), "input_type_ids": np.zeros((1, 4), "int32")}
    save_google(enc, tmp_path / "g")
    save_hf(enc, tmp_path / "h")
    for path in (tmp_path / "g", tmp_path / "h"):
        again, tokenizer, loaded = keras_bert_ft.load_pretrained(path)
        assert loaded == config and tokenizer is None
        assert max_diff(run(again, x), run(enc, x)) == 0.0


# ---- bad input -----------------------------------------------------------------------------
def tiny_hf_dir(path, vocab_size=40):
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_layers=2, num_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    vocab = path.parent / f"vocab_{vocab_size}.txt"
    vocab.parent.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"tok{i}" for i in range(vocab_size - len(tokens))]
    vocab.write_text("".join(t + "\n" for t in tokens))
    save_hf(BertEncoder(config), path, vocab)
    return path


def test_unknown_directory_lists_formats(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError) as e:
        keras_bert_ft.load_pretrained(tmp_path)
    msg = str(e.value)
    for needed in ("Hugging Face", "config.json", "model.safetensors", "pytorch_model.bin",
                   "Google", "bert_config.json", "bert_model.ckpt", "TF-Hub", "saved_model.pb",
                   "keras-hub", "model.weights.h5", "vocab.txt", "notes.txt"):
        assert needed in msg, needed


def test_missing_variable_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = tiny_hf_dir(tmp_path / "m")
    state = load_file(path / "model.safetensors")
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match=r"'encoder.layer.1.output.dense.weight' is missing "
                                         r"\(expected shape \(16, 32\)"):
        keras_bert_ft.load_pretrained(path)


def test_misshapen_variable_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = tiny_hf_dir(tmp_path / "m")
    state = load_file(path / "model.safetensors")
    state["encoder.layer.0.intermediate.dense.weight"] = np.zeros((30, 16), "float32")
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match=r"'encoder.layer.0.intermediate.dense.weight' has the "
                                         r"wrong shape: expected \(32, 16\), found \(30, 16\)"):
        keras_bert_ft.load_pretrained(path)


def test_misshapen_google_variable_is_named(tmp_path):
    enc = BertEncoder(BertConfig(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2,
                                 intermediate_size=32))
    save_google(enc, tmp_path)
    config = json.loads((tmp_path / "bert_config.json").read_text())
    config["intermediate_size"] = 24
    (tmp_path / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'bert/encoder/layer_0/intermediate/dense/kernel' has "
                                         r"the wrong shape: expected \(16, 24\), found \(16, 32\)"):
        keras_bert_ft.load_pretrained(tmp_path)


def test_vocab_size_mismatch_is_an_error(tmp_path):
    path = tiny_hf_dir(tmp_path / "m")
    lines = (path / "vocab.txt").read_text().splitlines(keepends=True)
    (path / "vocab.txt").write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match="has 39 tokens but the word embedding matrix has 40"):
        keras_bert_ft.load_pretrained(path)
    with pytest.raises(ValueError, match="39 tokens"):
        save_google(BertEncoder(BertConfig(vocab_size=40, hidden_size=16, num_layers=1,
                                           num_heads=2, intermediate_size=32)),
                    tmp_path / "g", path / "vocab.txt")


def test_pytorch_bin(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    path = tiny_hf_dir(tmp_path / "m")
    expected = keras_bert_ft.load_pretrained(path)[0]
    state = load_file(path / "model.safetensors")
    os.remove(path / "model.safetensors")
    torch = pytest.importorskip("torch")
    torch.save({"bert." + k: torch.tensor(v) for k, v in state.items()},
               path / "pytorch_model.bin")
    x = {"input_word_ids": np.array([[2, 7, 9]], "int32"),
         "input_mask": np.ones((1, 3), "int32"), "input_type_ids": np.zeros((1, 3), "int32")}
    got = keras_bert_ft.load_pretrained(path)[0]
    assert max_diff(run(got, x), run(expected, x)) == 0.0
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match="needs torch, which is not installed"):
        keras_bert_ft.load_pretrained(path)


def test_hub_name_offline_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KBF_OFFLINE", "1")
    with pytest.raises(OSError, match="pass its local directory"):
        keras_bert_ft.load_pretrained("bert-base-uncased")
    # Without the switch, an unreachable endpoint fails quickly too.
    monkeypatch.delenv("KBF_OFFLINE")
    monkeypatch.setenv("KBF_HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(OSError, match="unreachable.*pass its local directory"):
        keras_bert_ft.load_pretrained("google/bert_uncased_L-2_H-128_A-2")
    assert time.monotonic() - start < 5
    assert not any(tmp_path.rglob("*.safetensors"))


def test_hub_name_downloads_and_caches(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / "server"
    tiny_hf_dir(served / "someone" / "tiny-bert" / "resolve" / "main")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    monkeypatch.setenv("KBF_CACHE_DIR", str(cache))
    monkeypatch.setenv("KBF_HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        first, tokenizer, config = keras_bert_ft.load_pretrained("someone/tiny-bert")
    finally:
        server.shutdown()
        server.server_close()
    assert config.hidden_size == 16 and tokenizer.vocab_size == 40
    files = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert files == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    # Served from the cache now that the server is gone, with or without network.
    monkeypatch.setenv("KBF_OFFLINE", "1")
    second = keras_bert_ft.load_pretrained("someone/tiny-bert")[0]
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hub_handle_failure_says_what_to_do(monkeypatch):
    pytest.importorskip("tensorflow_hub", reason="tensorflow_hub needs pkg_resources")
    monkeypatch.setenv("TFHUB_CACHE_DIR", "/nonexistent-kbf-cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OSError, match="pass its local directory"):
            keras_bert_ft.load_pretrained("https://127.0.0.1:9/tensorflow/bert_en_uncased_L-2")


def test_tfhub_vocab_mismatch_is_an_error(tmp_path):
    path = tiny_hf_dir(tmp_path / "m")
    encoder = keras_bert_ft.load_pretrained(path)[0]
    save_tfhub(encoder, str(tmp_path / "hub"), str(path / "vocab.txt"))
    vocab = tmp_path / "hub" / "assets" / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    with pytest.raises(ValueError, match="has 41 tokens but the word embedding matrix has 40"):
        keras_bert_ft.load_pretrained(tmp_path / "hub")


# ---- errors of the package's own types, and reading without weights ----------------------
def test_not_found_says_what_was_tried(tmp_path, monkeypatch):
    from keras_bert_ft.errors import KerasBertFtError, ModelNotFoundError

    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KBF_OFFLINE", "1")
    for name in ("all-minilm-l6-v3", "bert-base-uncazed"):
        with pytest.raises(ModelNotFoundError) as e:
            keras_bert_ft.load_pretrained(name)
        msg = str(e.value)
        assert msg.startswith(f"model {name!r} not found: it is not a local directory, not a "
                              "packaged model (packaged: all-minilm-l6-v2)")
        assert "could not be downloaded from the Hugging Face Hub" in msg
        assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, KerasBertFtError)
    with pytest.raises(ModelNotFoundError, match="not a Hugging Face Hub name"):
        keras_bert_ft.load_pretrained(tmp_path / "no" / "such" / "dir")


def test_unsupported_model_family_is_named(tmp_path):
    from keras_bert_ft.checkpoints import inspect_pretrained
    from keras_bert_ft.errors import CheckpointFormatError

    path = tiny_hf_dir(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    for read in (inspect_pretrained, keras_bert_ft.load_pretrained):
        with pytest.raises(CheckpointFormatError, match=r"config.json: model_type 'roberta' is not "
                                                  r"supported: only BERT models"):
            read(path)
    del config["hidden_size"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError,
                       match=r"config.json: the config has no 'hidden_size'"):
        inspect_pretrained(path)


def test_inspect_reads_config_and_vocab_without_weights(tmp_path):
    from keras_bert_ft.checkpoints import inspect_pretrained
    from keras_bert_ft.errors import CheckpointFormatError

    path = tiny_hf_dir(tmp_path / "m")
    (path / "model.safetensors").write_bytes(b"not weights")  # never read by inspect
    info = inspect_pretrained(path)
    assert (info.format, info.vocab_size) == ("hf", 40)
    assert (info.config.num_layers, info.config.max_position_embeddings) == (2, 32)
    with pytest.raises(Exception):  # noqa: B017  (whatever safetensors raises)
        keras_bert_ft.load_pretrained(path)
    # A vocabulary that does not fit the embeddings, and none at all.
    lines = (path / "vocab.txt").read_text().splitlines(keepends=True)
    (path / "vocab.txt").write_text("".join(lines[:-1]))
    with pytest.raises(CheckpointFormatError, match="has 39 tokens but the word embedding matrix"):
        inspect_pretrained(path)
    (path / "vocab.txt").unlink()
    assert inspect_pretrained(path).vocab_size is None


def _hf_dir_with_tokenizer_json(path, tokenizer):
    """A tiny encoder over the 30,522-token BERT vocabulary, saved as transformers 5 saves
    a tokenizer: tokenizer.json and tokenizer_config.json, no vocab.txt."""
    save_hf(BertEncoder(BertConfig(vocab_size=30522, hidden_size=16, num_layers=1, num_heads=2,
                                   intermediate_size=32)), path)  # fmt: skip
    os.remove(path / "tokenizer_config.json")
    tokenizer.save_pretrained(str(path))
    assert not (path / "vocab.txt").exists() and (path / "tokenizer.json").is_file()
    return path


TRICKY = ["Héllo, WORLD! Naïve café", "unaffable 中文 résumé", "Ünïcödé   ÀÉÎ tabs\tand\nnewlines",
          "don't stop-believing... 1,234.56"]


@pytest.mark.parametrize("casing", [dict(do_lower_case=True),
                                    dict(do_lower_case=False, strip_accents=True)])
def test_tokenizer_json_only_directory(casing, tmp_path, vocab_file, data_dir):
    transformers = pytest.importorskip("transformers")
    from keras_bert_ft.checkpoints import inspect_pretrained

    hf = transformers.BertTokenizerFast(vocab=str(vocab_file), **casing)
    path = _hf_dir_with_tokenizer_json(tmp_path / "m", hf)
    assert inspect_pretrained(path).vocab_size == 30522
    _, tokenizer, config = keras_bert_ft.load_pretrained(path)
    assert tokenizer is not None and tokenizer.vocab_size == 30522
    assert config.do_lower_case == tokenizer.lowercase == casing["do_lower_case"]
    assert tokenizer.strip_accents == casing.get("strip_accents", casing["do_lower_case"])
    texts = sst2_sentences(data_dir, 32) + TRICKY
    ours = tokenizer.encode_batch(texts)
    theirs = hf_batch(hf, texts)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k])
    first, second = mrpc_pairs(data_dir, 16)
    ours = tokenizer.encode_batch(first, second)
    theirs = hf_batch(hf, first, second)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k])


def test_tokenizer_json_of_another_kind_is_not_supported(tmp_path, vocab_file):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from keras_bert_ft.errors import CheckpointFormatError

    path = _hf_dir_with_tokenizer_json(
        tmp_path / "m", transformers.BertTokenizerFast(vocab=str(vocab_file)))
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(vocab={"a": 0, "b": 1, "ab": 2},
                                                     merges=[("a", "b")]))  # fmt: skip
    bpe.save(str(path / "tokenizer.json"))
    with pytest.raises(CheckpointFormatError, match=r"tokenizer.json: a BPE tokenizer is not "
                                              r"supported; only WordPiece \(BERT\)"):
        keras_bert_ft.load_pretrained(path)


# ---- the format contract ------------------------------------------------------------------
def test_every_format_keeps_the_contract_and_detects_only_its_own_output(tmp_path):
    from keras_bert_ft import checkpoints
    from keras_bert_ft.checkpoints import FORMATS, detect_format

    names = [fmt.NAME for fmt in FORMATS]
    assert sorted(names) == ["google", "hf", "keras_hub", "tfhub"]
    for fmt in FORMATS:
        for attr in ("detect", "read_config", "read_vocab", "load", "save"):
            assert callable(getattr(fmt, attr, None)), f"{fmt.__name__} lacks {attr}"
        assert isinstance(fmt.TITLE, str) and fmt.REQUIRED_FILES
    # The old saver names are the modules' `save`.
    assert checkpoints.save_hf is checkpoints.huggingface.save
    assert checkpoints.save_google is checkpoints.google.save
    assert checkpoints.save_tfhub is checkpoints.tfhub.save
    assert checkpoints.save_keras_hub_preset is checkpoints.keras_hub.save

    source = tiny_hf_dir(tmp_path / "source")
    encoder = keras_bert_ft.load_pretrained(source)[0]
    vocab = str(source / "vocab.txt")
    for fmt in FORMATS:
        out = tmp_path / fmt.NAME
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keras-hub's tanh GELU
            fmt.save(encoder, str(out), vocab)
        detected = [other.NAME for other in FORMATS if other.detect(str(out))]
        assert detected == [fmt.NAME], (fmt.NAME, detected, sorted(os.listdir(out)))
        assert detect_format(str(out)) == fmt.NAME
        config = fmt.read_config(str(out))
        assert config is not None and config.hidden_size == 16, fmt.NAME
        assert fmt.read_vocab(str(out)) is not None, fmt.NAME
