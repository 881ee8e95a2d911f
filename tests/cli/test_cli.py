"""The keras-bert-ft command: subcommand table, train/evaluate/tune on a tiny model,
clean errors for bad input (file, line, what to fix; exit 2; no traceback)."""

from __future__ import annotations

import json
import subprocess

import pytest
from tiny import PYTHON, REPO_ROOT, save_tiny_hf, subprocess_env, write_csv

from keras_bert_ft.cli import common
from keras_bert_ft.cli.app import main


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_hf(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """Train once with the CLI: 2 epochs on a small CSV."""
    d = tmp_path_factory.mktemp("train")
    data = write_csv(d / "train.csv", 16)
    out = d / "run"
    status = main(["train", "--train", str(data), "--model", str(tiny_model_dir),
                       "--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3",
                       "--max-length", "16", "--fine-tune", "top", "--train-layers", "1",
                       "--output-dir", str(out)])  # fmt: skip
    assert status == 0
    return out


def test_subcommand_table_is_extensible():
    assert {"train", "evaluate", "tune", "run"} <= set(common.SUBCOMMANDS)

    def configure(p):
        p.add_argument("--what", default="x")

    @common.subcommand("hello", "a test subcommand", configure)
    def hello(args):
        print(f"hello {args.what}")
        return 0

    try:
        assert main(["hello", "--what", "y"]) == 0
    finally:
        del common.SUBCOMMANDS["hello"]


def test_train_writes_model_report_logs_and_checkpoints(trained, capsys):
    for f in ("model.keras", "labels.json", "settings.json", "report/metrics.json",
              "report/report.txt", "report/confusion_matrix.png", "checkpoints/latest"):
        assert (trained / f).is_file(), f
    assert sorted(p.name for p in (trained / "checkpoints").glob("epoch-*")) == [
        "epoch-0001", "epoch-0002"]  # fmt: skip
    assert list((trained / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((trained / "report" / "metrics.json").read_text())
    assert metrics["labels"] == ["neg", "pos"] and metrics["num_examples"] > 0
    assert json.loads((trained / "settings.json").read_text())["train_encoder_layers"] == 1


def test_train_again_resumes_and_stops(trained, tiny_model_dir, capsys):
    # Same output dir, same epochs: the last checkpoint already covers them.
    data = trained.parent / "train.csv"
    status = main(["train", "--train", str(data), "--model", str(tiny_model_dir),
                       "--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3",
                       "--max-length", "16", "--fine-tune", "top", "--train-layers", "1",
                       "--output-dir", str(trained)])  # fmt: skip
    assert status == 0
    assert "Resuming from" in capsys.readouterr().out


def test_evaluate(trained, tmp_path, capsys):
    data = write_csv(tmp_path / "eval.csv", 4)
    assert main(["evaluate", str(trained), "--data", str(data),
                     "--output-dir", str(tmp_path / "rep")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["num_examples"] == 8


def test_evaluate_unknown_label(trained, tmp_path, capsys):
    path = tmp_path / "eval.csv"
    path.write_text("text,label\ngood film,pos\nso so,meh\n", encoding="utf-8")
    assert main(["evaluate", str(trained), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}, line 3" in err and "unknown label 'meh'" in err and "Fix:" in err


def test_tune(tmp_path, tiny_model_dir, capsys):
    data = write_csv(tmp_path / "train.csv", 12)
    status = main(["tune", "--train", str(data), "--model", str(tiny_model_dir),
                       "--max-length", "16", "--learning-rates", "1e-3,1e-4",
                       "--batch-sizes", "8", "--epoch-choices", "1", "--max-trials", "2",
                       "--output-dir", str(tmp_path / "t")])  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "Best: " in out and "learning_rate=" in out and "batch_size=8" in out


BAD_FILES = {
    "missing_column": ("t.csv", b"sentence,label\nhi,a\nho,b\n", ["no text column 'text'",
                                                                  "line 1"]),
    "empty_file": ("t.csv", b"", ["the file is empty"]),
    "empty_text": ("t.csv", b"text,label\nhi,a\n  ,b\n", ["line 3", "is empty"]),
    "null_text": ("t.jsonl", b'{"text": "hi", "label": "a"}\n{"text": null, "label": "b"}\n',
                  ["line 2", "is null"]),
    "not_utf8": ("t.csv", b"text,label\nhi,a\ncaf\xe9,b\n", ["line 3", "not valid UTF-8"]),
    "one_class": ("t.csv", b"text,label\nhi,a\nho,a\n", ["only one class", "'a'"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_training_data_gives_clean_errors(case, tmp_path, capsys):
    name, content, expected = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["train", "--train", str(path), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "Fix:" in err
    for text in expected:
        assert text in err
    assert not (tmp_path / "o").exists()


def test_errors_have_no_traceback_as_a_real_command(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\nhi,a\ncaf\xe9,b\n")
    proc = subprocess.run([PYTHON, "-m", "keras_bert_ft.cli", "train", "--train", str(path)],
                          cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: {path}, line 3, column 4: not valid UTF-8" in proc.stderr


def test_run_without_data_says_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KBF_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("KBF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KBF_OFFLINE", "1")
    assert main(["run", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "set KBF_DATA_DIR" in err and "sms_spam" in err
