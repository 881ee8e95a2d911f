"""`keras-bert-ft export` and `keras-bert-ft predict` on a tiny trained model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny_encoder, tiny_tokenizer  # noqa: E402

from keras_bert_ft.cli import main


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


def test_parallel_groups_flag_reaches_the_export(exported, tmp_path, monkeypatch, capsys):
    from keras_bert_ft.serving import export

    calls = []
    monkeypatch.setattr(export, "export_for_serving",
                        lambda *args, **kwargs: calls.append(kwargs) or tmp_path / "x" / "1")
    run = exported[2].parent.parent / "sms"
    assert main(["export", str(run), "--export-dir", str(tmp_path / "a"),
                 "--parallel-groups", "1"]) == 0
    assert main(["export", str(run), "--export-dir", str(tmp_path / "b")]) == 0
    # The flag when given; otherwise export_for_serving's own default.
    assert calls[0]["parallel_groups"] == 1 and "parallel_groups" not in calls[1]
    capsys.readouterr()


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


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A trained pair model (pairs=True recorded) and its export made without flags."""
    from keras_bert_ft.models import BertClassifier

    tokenizer = tiny_tokenizer()
    model = BertClassifier(tiny_encoder(), 2, label_names=["same", "different"],
                           tokenizer=tokenizer, max_length=32, pairs=True)
    run = tmp_path_factory.mktemp("runs") / "mrpc"
    run.mkdir()
    model.save(run / "model.keras")
    base = run.parent / "saved_models" / "mrpc"
    assert main(["export", str(run), "--export-dir", str(base)]) == 0
    return model, tokenizer, run, base


def error_line(capsys) -> str:
    """The one line a refused command printed on standard error."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_pair_model_exports_pairs_without_flags(pair_run, capsys):
    from keras_bert_ft.serving.predict import export_inputs

    model, tokenizer, _, base = pair_run
    assert export_inputs(base / "1") == ["text", "text_pair"]
    capsys.readouterr()
    assert main(["predict", str(base), "the cat sat", "--pair", "on the mat"]) == 0
    line = json.loads(capsys.readouterr().out)
    expected = model.predict(tokenizer.encode_batch(["the cat sat"], ["on the mat"],
                                                    max_length=32), verbose=0)
    np.testing.assert_allclose([line["probabilities"]["same"],
                                line["probabilities"]["different"]], expected[0], atol=1e-5)


def test_export_refuses_flags_that_contradict_the_model(pair_run, capsys):
    _, _, run, base = pair_run
    capsys.readouterr()
    assert main(["export", str(run), "--export-dir", str(base), "--single"]) == 2
    assert "trained on sentence pairs; export it with --pairs" in error_line(capsys)
    assert main(["export", str(run), "--export-dir", str(base), "--max-length", "65"]) == 2
    assert "more than the encoder's 64 position embeddings" in error_line(capsys)
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # nothing exported


def test_predict_refuses_the_wrong_kind_of_input(exported, pair_run, tmp_path, capsys):
    single, pairs = exported[2], pair_run[3]
    source = tmp_path / "pairs.csv"
    source.write_text("a,b\nthe cat sat,on the mat\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(pairs), "--input", str(source), "--text-column", "a"]) == 2
    assert "classifies sentence pairs: give the second texts with --pair-column" in (
        error_line(capsys))
    assert main(["predict", str(pairs), "the cat sat"]) == 2
    assert "--pair TEXT" in error_line(capsys)
    assert main(["predict", str(single), "--input", str(source), "--text-column", "a",
                 "--pair-column", "b"]) == 2
    assert "classifies single texts: drop --pair-column" in error_line(capsys)


def test_predict_reads_jsonl(exported, tmp_path):
    model, tokenizer, base = exported
    texts = ["free prize, call now", "see you at lunch"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "message": t}) + "\n"
                              for i, t in enumerate(texts)), encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["predict", str(base), "--input", str(source), "--text-column", "message",
                 "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["text"] for r in rows] == texts
    expected = model.predict(tokenizer.encode_batch(texts, max_length=32), verbose=0)
    got = [[float(r["p_ham"]), float(r["p_spam"])] for r in rows]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_bad_jsonl_line_is_named(exported, tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "no closing brace"\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(exported[2]), "--input", str(source)]) == 2
    assert f"{source}, line 2" in error_line(capsys)


def test_csv_fields_over_128kb_are_read(exported, tmp_path):
    text = "word " * 40_000 + "end"  # 200,003 characters; Python's csv stops at 131,072
    source = tmp_path / "long.csv"
    source.write_text(f"text\nshort one\n\"{text}\"\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["predict", str(exported[2]), "--input", str(source), "--output", str(out)]) == 0
    with out.open(encoding="utf-8") as f:
        csv.field_size_limit(1_000_000)
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == ["short one", text]


def bad_predict_inputs(tmp_path: Path) -> dict[str, list[str]]:
    """Named predict argument lists (after the model folder) that must each be refused."""
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text("text\nhello\n", encoding="utf-8")
    plain = tmp_path / "texts.txt"
    plain.write_text("hello\n", encoding="utf-8")
    unreadable = tmp_path / "unreadable.csv"
    unreadable.symlink_to("/proc/self/mem")  # a file whose read fails, even for root
    return {
        "empty input file": ["--input", str(empty)],
        "unreadable input file": ["--input", str(unreadable)],
        "directory as input": ["--input", str(tmp_path)],
        "missing input file": ["--input", str(tmp_path / "missing.csv")],
        "unknown file type": ["--input", str(plain)],
        "missing column": ["--input", str(good), "--text-column", "message"],
        "output in a missing folder": ["hello", "--output", str(tmp_path / "no" / "out.csv")],
        "output is a folder": ["hello", "--output", str(tmp_path)],
        "batch size 0": ["hello", "--batch-size", "0"],
        "pair count": ["a", "b", "--pair", "x"],
        "pair column without input": ["hello", "--pair-column", "b"],
        "both texts and input": ["hello", "--input", str(good)],
    }


def test_bad_predict_input_gives_one_error_line(exported, tmp_path, capsys):
    base = exported[2]
    not_export = tmp_path / "not_export"
    (not_export / "1").mkdir(parents=True)
    (not_export / "1" / "saved_model.pb").write_bytes(b"\xff not a protobuf")
    cases = {name: [str(base), *argv] for name, argv in bad_predict_inputs(tmp_path).items()}
    cases["missing model folder"] = [str(tmp_path / "missing"), "hello"]
    cases["folder that is not an export"] = [str(tmp_path), "hello"]
    cases["broken saved_model.pb"] = [str(not_export), "hello"]
    capsys.readouterr()
    for name, argv in cases.items():
        assert main(["predict", *argv]) == 2, name
        error_line(capsys)


def test_bad_export_input_gives_one_error_line(exported, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a zip archive")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    run = exported[2].parent.parent / "sms"
    cases = {
        "missing model": [str(tmp_path / "missing")],
        "broken model file": [str(broken)],
        "version 0": [str(run), "--version", "0"],
        "max length 0": [str(run), "--max-length", "0"],
        "parallel groups 0": [str(run), "--parallel-groups", "0"],
        "export dir under a file": [str(run), "--export-dir", str(a_file / "m")],
    }
    capsys.readouterr()
    for name, argv in cases.items():
        assert main(["export", *argv]) == 2, name
        error_line(capsys)


def test_exported_classifier_takes_a_bare_string_as_one_text(exported, pair_run):
    from keras_bert_ft.serving.predict import ExportedClassifier

    single = ExportedClassifier(exported[2])
    assert single.pairs is False
    out = single.predict("free prize, call now")
    assert out["label"].shape == (1,) and out["probabilities"].shape == (1, 2)
    np.testing.assert_allclose(out["probabilities"],
                               single.predict(["free prize, call now"])["probabilities"])
    pairs = ExportedClassifier(pair_run[3])
    assert pairs.pairs is True
    assert pairs.predict("the cat sat", "on the mat")["label"].shape == (1,)
    with pytest.raises(ValueError, match="classifies sentence pairs"):
        pairs.predict("the cat sat")
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        single.predict("a", batch_size=0)
