"""`keras-bert-ft export` and `keras-bert-ft predict` on a tiny trained model."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_bert_ft.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import tiny_encoder, tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from keras_bert_ft.models import BertClassifier

    tokenizer = tiny_tokenizer()
    model = BertClassifier(tiny_encoder(), 2, label_names=["ham", "spam"], tokenizer=tokenizer,
                           max_length=32)
    run = tmp_path_factory.mktemp("runs") / "sms"
    run.mkdir()
    model.save(run / "model.keras")
    base = run.parent / "saved_models" / "sms"
    assert main(["export", str(run), "--export-dir", str(base)]) == 0
    return model, tokenizer, base


def test_export_then_predict_texts(exported, capsys):
    model, tokenizer, base = exported
    assert (base / "1" / "saved_model.pb").is_file()
    capsys.readouterr()
    texts = ["free prize, call now", "see you at lunch"]
    assert main(["predict", str(base), *texts]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = model.predict(tokenizer.encode_batch(texts, max_length=32), verbose=0)
    got = np.asarray([[line["probabilities"]["ham"], line["probabilities"]["spam"]]
                      for line in lines])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [line["label"] for line in lines] == [["ham", "spam"][i] for i in expected.argmax(1)]


def test_predict_from_csv(exported, tmp_path):
    _, _, base = exported
    source = tmp_path / "in.csv"
    source.write_text("id,message\n1,hello there\n2,\"win, win, win\"\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["predict", str(base / "1"), "--input", str(source), "--text-column", "message",
                 "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["text"] for r in rows] == ["hello there", "win, win, win"]
    assert all(r["label"] in ("ham", "spam") for r in rows)
    assert all(abs(float(r["p_ham"]) + float(r["p_spam"]) - 1) < 1e-5 for r in rows)


def test_clean_errors(exported, tmp_path, capsys):
    _, _, base = exported
    assert main(["predict", str(tmp_path), "text"]) == 2
    assert main(["predict", str(base)]) == 2
    assert main(["predict", str(base), "a", "--pair", "b"]) == 2  # not a pair model
    assert main(["export", str(base.parent.parent / "sms"), "--export-dir", str(base),
                 "--version", "1"]) == 2  # never overwrite a version
    err = capsys.readouterr().err
    assert "no SavedModel" in err and "never overwritten" in err
