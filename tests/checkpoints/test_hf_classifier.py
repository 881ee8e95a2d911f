"""The whole classifier as a Hugging Face directory: `transformers` loads it with the right
head and labels, and its probabilities equal ours on real texts and pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny import save_tiny_hf, tiny_encoder, tiny_tokenizer, write_csv

from keras_bert_ft import cli
from keras_bert_ft.checkpoints.hf_classifier import (
    REMOTE_ACTIVATIONS,
    REMOTE_CODE_FILE,
    HFExportError,
    save_hf_classifier,
)
from keras_bert_ft.models import BertClassifier

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HEADS = {
    "softmax": dict(num_classes=3, label_names=["negative", "neutral", "positive"]),
    "binary": dict(num_classes=2, binary_sigmoid=True, label_names=["no", "yes"]),
    "multi_label": dict(num_classes=3, multi_label=True, label_names=["a", "b", "c"]),
    "regression": dict(num_classes=0),
}


@pytest.fixture(scope="module")
def real_data(data_dir):
    """32 SST-2 validation sentences and 16 MRPC validation pairs."""
    from keras_bert_ft.data import load_dataset

    sst2 = load_dataset("sst2", "validation", data_dir=data_dir)
    mrpc = load_dataset("mrpc", "validation", data_dir=data_dir)
    return list(sst2.texts[:32]), (list(mrpc.texts[:16]), list(mrpc.pairs[:16]))


def _classifier(encoder, tokenizer, head: str, pairs: bool, seed: int = 0,
                **kwargs) -> BertClassifier:  # fmt: skip
    kwargs = {"pooling": "pooled", **kwargs}
    model = BertClassifier(encoder, tokenizer=tokenizer, max_length=128, pairs=pairs,
                           **HEADS[head], **kwargs)  # fmt: skip
    # A fresh head gives near-equal scores; larger weights make the comparison telling.
    logits = model.get_layer("logits")
    rng = np.random.default_rng(seed)
    logits.kernel.assign(rng.normal(0, 0.3, logits.kernel.shape).astype("float32"))
    logits.bias.assign(rng.normal(0, 0.5, logits.bias.shape).astype("float32"))
    return model


def _transformers_scores(path, texts, pairs=None) -> tuple[np.ndarray, object, dict]:
    """Scores from `transformers` alone: its tokenizer and model read from `path`
    (with the head's code from the folder when it has some)."""
    remote = (Path(path) / REMOTE_CODE_FILE).is_file()
    tok = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, trust_remote_code=remote).eval()
    enc = tok(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    problem = model.config.problem_type
    if problem == "single_label_classification":
        scores = logits.softmax(-1)
    elif problem == "multi_label_classification":
        scores = logits.sigmoid()
    else:
        scores = logits
    return scores.numpy(), model, {k: v.numpy() for k, v in enc.items()}


def _check_parity(model, path, texts, pairs=None):
    ours = model.predict_texts(texts, pairs)
    theirs, hf_model, hf_ids = _transformers_scores(str(path), texts, pairs)
    # The same ids: transformers' tokenizer built from the export agrees with ours.
    enc = model.encode(texts, pairs)
    np.testing.assert_array_equal(hf_ids["input_ids"], enc["input_word_ids"])
    np.testing.assert_array_equal(hf_ids["token_type_ids"], enc["input_type_ids"])
    if model.head_type == "binary":  # exported as two logits (0, z)
        assert theirs.shape == (len(texts), 2)
        np.testing.assert_allclose(theirs.sum(-1), 1, atol=1e-6)
        theirs = theirs[:, 1:]
    assert ours.shape == theirs.shape
    # Texts get different scores (by far more than the 1e-4 tolerance).
    assert np.ptp(ours, axis=0).max() > 0.03, "scores too alike across texts to tell"
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    return hf_model


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("kind", ["single", "pairs"])
def test_transformers_gives_our_scores(head, kind, real_data, tmp_path):
    texts, (first, second) = real_data
    pairs = kind == "pairs"
    # A wider initialisation than BERT's 0.02: texts then get clearly different scores.
    encoder = tiny_encoder(max_position_embeddings=128, initializer_range=0.2)
    model = _classifier(encoder, tiny_tokenizer(), head, pairs)
    path = save_hf_classifier(model, tmp_path / "hf")
    hf_model = _check_parity(model, path, first if pairs else texts, second if pairs else None)
    assert type(hf_model).__name__ == "BertForSequenceClassification"
    config = hf_model.config
    expected = {"softmax": "single_label_classification",
                "binary": "single_label_classification",
                "multi_label": "multi_label_classification",
                "regression": "regression"}  # fmt: skip
    assert config.problem_type == expected[head]
    names = HEADS[head].get("label_names", ["value"])
    assert config.id2label == dict(enumerate(names))
    assert config.label2id == {n: i for i, n in enumerate(names)}


def test_real_minilm_encoder(real_data, tmp_path):
    from keras_bert_ft.checkpoints import load_pretrained

    texts, (first, second) = real_data
    encoder, tokenizer, _ = load_pretrained("all-minilm-l6-v2")
    single = _classifier(encoder, tokenizer, "softmax", pairs=False)
    _check_parity(single, save_hf_classifier(single, tmp_path / "single"), texts[:16])
    pair = _classifier(encoder, tokenizer, "binary", pairs=True, seed=1)
    _check_parity(pair, save_hf_classifier(pair, tmp_path / "pairs"), first[:8], second[:8])


OTHER_HEADS = {
    "mean": dict(pooling="mean"),
    "cls+hidden": dict(pooling="cls", hidden_units=(24, 16)),
    "pooled+hidden": dict(pooling="pooled", hidden_units=(16,), hidden_activation="relu"),
}


@pytest.mark.parametrize("head", ["softmax", "binary"])
@pytest.mark.parametrize("shape", list(OTHER_HEADS))
def test_heads_without_a_transformers_class_carry_their_code(shape, head, real_data, tmp_path):
    texts, (first, second) = real_data
    pairs = head == "binary"
    encoder = tiny_encoder(max_position_embeddings=128, initializer_range=0.2)
    model = _classifier(encoder, tiny_tokenizer(), head, pairs, **OTHER_HEADS[shape])
    path = save_hf_classifier(model, tmp_path / "hf")
    assert (path / REMOTE_CODE_FILE).is_file()
    hf_model = _check_parity(model, path, first if pairs else texts, second if pairs else None)
    assert type(hf_model).__name__ == "KerasBertFtForSequenceClassification"
    assert "trust_remote_code=True" in (path / "README.md").read_text()
    # Without the flag transformers refuses; it never falls back to BERT's own head.
    with pytest.raises(ValueError, match="trust_remote_code"):
        transformers.AutoModelForSequenceClassification.from_pretrained(path)


def test_head_code_knows_the_activations_we_allow():
    import importlib.util

    file = Path(__file__).parents[2] / "keras_bert_ft" / "checkpoints" / "hf_remote_head.py"
    spec = importlib.util.spec_from_file_location("hf_remote_head", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.ACTIVATIONS) == set(REMOTE_ACTIVATIONS)


def test_unknown_activation_is_refused(tmp_path):
    model = BertClassifier(tiny_encoder(), 2, pooling="mean", hidden_units=(8,),
                           hidden_activation="elu", tokenizer=tiny_tokenizer())  # fmt: skip
    with pytest.raises(HFExportError, match="activation 'elu' has no PyTorch counterpart"):
        save_hf_classifier(model, tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused_unless_overwritten(tmp_path):
    model = BertClassifier(tiny_encoder(), 2, pooling="pooled", tokenizer=tiny_tokenizer())
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "old.txt").write_text("x")
    with pytest.raises(HFExportError, match="already exists"):
        save_hf_classifier(model, tmp_path / "hf")
    save_hf_classifier(model, tmp_path / "hf", overwrite=True)
    assert not (tmp_path / "hf" / "old.txt").exists()
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temporary folders left


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One epoch of `keras-bert-ft train` with the BERT pooler, on a small CSV."""
    d = tmp_path_factory.mktemp("hf_run")
    model_dir = save_tiny_hf(d / "bert")
    out = d / "run"
    assert cli.main(["train", "--train", str(write_csv(d / "train.csv", 12)), "--model",
                     str(model_dir), "--pooling", "pooled", "--epochs", "1", "--batch-size", "8",
                     "--max-length", "16", "--output-dir", str(out)]) == 0  # fmt: skip
    return out, model_dir


def test_export_hf_command_writes_model_and_card(trained_run, tmp_path, capsys):
    run, model_dir = trained_run
    out = tmp_path / "exported"
    assert cli.main(["export-hf", str(run), "--output-dir", str(out)]) == 0
    assert "Saved:" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    card = (out / "README.md").read_text()
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert f"`{model_dir.resolve()}`" in card  # the base model
    assert f"- train: 22 texts from `{run.parent / 'train.csv'}[train]`" in card  # the data
    assert f'from_pretrained({str(out)!r})' in card
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in card  # the metrics
    assert "keras-bert-ft train --train DATA --model" in card and "--pooling pooled" in card
    from keras_bert_ft.cli import load_trained_model

    texts = ["a good movie", "a bad movie", "wonderful acting"]
    ours = load_trained_model(str(run)).predict_texts(texts)
    theirs, _, _ = _transformers_scores(str(out), texts)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)


def test_export_hf_command_errors_are_one_line(trained_run, tmp_path, capsys):
    run, _ = trained_run
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert cli.main(["export-hf", str(run), "--output-dir", str(tmp_path / "taken")]) == 2
    assert "already exists; choose another or add --overwrite" in capsys.readouterr().err
    elu = BertClassifier(tiny_encoder(), 2, pooling="mean", hidden_units=(8,),
                         hidden_activation="elu", tokenizer=tiny_tokenizer())  # fmt: skip
    elu.save(tmp_path / "elu.keras")
    assert cli.main(["export-hf", str(tmp_path / "elu.keras"),
                     "--output-dir", str(tmp_path / "m")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the head's hidden activation 'elu'") and "\n" not in err
    assert not (tmp_path / "m").exists()
