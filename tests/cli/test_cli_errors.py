"""Misuse of the keras-bert-ft command, as a new user would try it: each case runs the real
command in a subprocess and must end with exactly one line on stderr, `error: ...`, naming
what was wrong, exit status 2 and no traceback (and none of TensorFlow's start-up log lines).

The cases fail early (an option, the model's config, the data), so each costs little more
than Python and TensorFlow starting up. Cases that need a trained model share two tiny
untrained classifiers saved once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tiny import PYTHON, REPO_ROOT, save_tiny_hf, subprocess_env, write_csv

from keras_bert_ft.cli import common
from keras_bert_ft.cli.app import build_parser, main
from keras_bert_ft.cli.train import settings_from_args

PAIRS_CSV = "premise,hypothesis,label\na man sleeps,a person rests,yes\nit rains,it is dry,no\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Files and model directories the cases refer to by name."""
    d = tmp_path_factory.mktemp("misuse")
    paths = {"dir": d, "data_dir": data_dir}
    paths["ok"] = write_csv(d / "ok.csv", 4)
    (d / "pairs.csv").write_text(PAIRS_CSV, encoding="utf-8")
    paths["pairs"] = d / "pairs.csv"
    files = {
        "missing_column": ("t.csv", b"sentence,label\nhi,a\nho,b\n"),
        "empty_file": ("t.csv", b""),
        "header_only": ("t.csv", b"text,label\n"),
        "empty_text": ("t.csv", b"text,label\nhi,a\n  ,b\n"),
        "null_text": ("t.jsonl", b'{"text": "hi", "label": "a"}\n{"text": null, "label": "b"}\n'),
        "bad_json": ("t.jsonl", b'{"text": "hi", "label": "a"}\n{"text": "ho", "label": \n'),
        "not_utf8": ("t.csv", b"text,label\nhi,a\ncaf\xe9,b\n"),
        "ragged": ("t.csv", b"text,label\nhi,a\nho,b,extra\n"),
        "one_class": ("t.csv", b"text,label\nhi,a\nho,a\n"),
        "no_label": ("t.csv", b"text,label\nhi,a\nho,\n"),
        "mixed_labels": ("t.csv", b"text,label\nhi,0\nho,1\nhey,neg\nhm,pos\n"),
        "unknown_label": ("t.csv", b"text,label\ngood film,pos\nso so,meh\n"),
        "unknown_type": ("t.txt", b"text,label\nhi,a\nho,b\n"),
    }  # fmt: skip
    for key, (name, content) in files.items():
        (d / key).mkdir()
        paths[key] = d / key / name
        paths[key].write_bytes(content)

    tiny = save_tiny_hf(d / "tiny")  # 2 layers, 64 positions
    paths["tiny"] = tiny
    paths["roberta"] = _variant(tiny, d / "roberta", config={"model_type": "roberta"})
    paths["no_vocab"] = _variant(tiny, d / "no_vocab", drop=["vocab.txt"])
    mismatch = _variant(tiny, d / "vocab_mismatch")
    lines = (mismatch / "vocab.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (mismatch / "vocab.txt").write_text("".join(lines[:-1]), encoding="utf-8")
    paths["vocab_mismatch"] = mismatch
    bpe = _variant(tiny, d / "bpe_tokenizer", drop=["vocab.txt"])
    (bpe / "tokenizer.json").write_text(json.dumps(
        {"version": "1.0", "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"},
         "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}))  # fmt: skip
    paths["bpe_tokenizer"] = bpe
    (d / "notes").mkdir()
    (d / "notes" / "README.md").write_text("not a model")
    paths["notes"] = d / "notes"

    paths["pair_model"] = _tiny_classifier(d / "pair_model", pairs=True)
    paths["single_model"] = _tiny_classifier(d / "single_model", pairs=False)
    return paths


def _variant(tiny: Path, path: Path, config: dict | None = None, drop=()) -> Path:
    shutil.copytree(tiny, path)
    if config:
        cfg = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**cfg, **config}))
    for name in drop:
        (path / name).unlink()
    return path


def _tiny_classifier(out: Path, pairs: bool) -> Path:
    """An untrained tiny BertClassifier saved as train saves one (errors come before use)."""
    from tiny import tiny_encoder, tiny_tokenizer

    from keras_bert_ft.models import BertClassifier
    from keras_bert_ft.training.finetune import save_model

    model = BertClassifier(tiny_encoder(), 2, label_names=["neg", "pos"],
                           tokenizer=tiny_tokenizer(), max_length=16, pairs=pairs)  # fmt: skip
    model(model.encode(["a text"], ["a pair"] if pairs else None))
    save_model(model, out / "model.keras")
    return out


# name -> (arguments, texts the one error line must contain). "{key}" is a path from `work`.
CASES = {
    # option values, checked when parsed
    "epochs_0": ("train --train {ok} --epochs 0", ["--epochs", "at least 1", "got 0"]),
    "epochs_negative": ("train --train {ok} --epochs -2", ["--epochs", "at least 1"]),
    "epochs_not_a_number": ("train --train {ok} --epochs three", ["--epochs", "integer"]),
    "batch_size_0": ("train --train {ok} --batch-size 0", ["--batch-size", "at least 1"]),
    "batch_size_negative": ("train --train {ok} --batch-size -8", ["--batch-size"]),
    "learning_rate_0": ("train --train {ok} --learning-rate 0", ["--learning-rate", "> 0"]),
    "learning_rate_negative": ("train --train {ok} --learning-rate=-1e-5",
                               ["--learning-rate", "> 0"]),
    "learning_rate_nan": ("train --train {ok} --learning-rate nan", ["--learning-rate"]),
    "dropout_1": ("train --train {ok} --dropout 1", ["--dropout", "[0, 1)"]),
    "dropout_negative": ("train --train {ok} --dropout -0.1", ["--dropout", "[0, 1)"]),
    "validation_split_1": ("train --train {ok} --validation-split 1",
                           ["--validation-split", "[0, 1)"]),
    "validation_split_negative": ("train --train {ok} --validation-split -0.2",
                                  ["--validation-split"]),
    "max_length_2": ("train --train {ok} --max-length 2", ["--max-length", "at least 3"]),
    "warmup_ratio_above_1": ("train --train {ok} --warmup-ratio 1.5", ["--warmup-ratio"]),
    "hidden_units_0": ("train --train {ok} --hidden-units 256,0", ["--hidden-units", "at least 1"]),
    "num_layers_0": ("train --train {ok} --num-layers 0", ["--num-layers", "at least 1"]),
    "unknown_option": ("train --train {ok} --no-such-option", ["unrecognized arguments"]),
    "tune_learning_rates": ("tune --train {ok} --learning-rates 1e-4,0", ["--learning-rates"]),
    "tune_max_trials_0": ("tune --train {ok} --max-trials 0", ["--max-trials"]),
    "evaluate_batch_size_0": ("evaluate {single_model} --data {ok} --batch-size 0",
                              ["--batch-size"]),
    "distill_temperature_0": ("distill {single_model} --train {ok} --temperature 0",
                              ["--temperature"]),
    "distill_alpha_2": ("distill {single_model} --train {ok} --alpha 2", ["--alpha", "[0, 1]"]),
    # where the data comes from
    "no_data": ("train", ["--dataset NAME or --train FILE"]),
    "dataset_and_train": ("train --dataset sst2 --train {ok}", ["not both"]),
    "unknown_dataset": ("train --dataset sst3", ["unknown data set 'sst3'", "sst2"]),
    "snli_has_no_train_split": ("train --dataset snli",
                                ["'snli'", "no 'train' split", "validation, test",
                                 "--train-split", "--train FILE"]),
    "evaluate_split_missing": ("evaluate {single_model} --dataset snli --split train",
                               ["no split 'train'"]),
    # the pretrained model, checked from its config before any weights load
    "model_dir_missing": ("train --train {ok} --model {dir}/no_such_model",
                          ["no_such_model", "not a local directory", "not a packaged model"]),
    "model_hub_typo_minilm": ("train --train {ok} --model all-minilm-l6-v3",
                              ["'all-minilm-l6-v3'", "not a local directory",
                               "packaged: all-minilm-l6-v2", "could not be downloaded"]),
    "model_hub_typo_bert": ("train --train {ok} --model bert-base-uncazed",
                            ["'bert-base-uncazed'", "not a packaged model",
                             "could not be downloaded"]),
    "model_roberta": ("train --train {ok} --model {roberta}",
                      ["model_type 'roberta' is not supported", "only BERT models"]),
    "model_without_vocab": ("train --train {ok} --model {no_vocab}",
                            ["no_vocab", "has no vocabulary", "vocab.txt"]),
    "model_vocab_mismatch": ("train --train {ok} --model {vocab_mismatch}",
                             ["vocab.txt has 30521 tokens",
                              "word embedding matrix has 30522 rows"]),
    "model_bpe_tokenizer_json": ("train --train {ok} --model {bpe_tokenizer}",
                                 ["tokenizer.json", "BPE tokenizer is not supported",
                                  "WordPiece"]),
    "model_unknown_format": ("train --train {ok} --model {notes}",
                             ["holds no BERT checkpoint", "README.md"]),
    "model_is_a_file": ("train --train {ok} --model {ok}", ["is a file, not a directory"]),
    "max_length_above_positions": ("train --train {ok} --model {tiny} --max-length 100",
                                   ["--max-length 100", "64 positions", "--max-length 64"]),
    "num_layers_above_model": ("train --train {ok} --model {tiny} --max-length 32 --num-layers 5",
                               ["--num-layers 5", "only 2 layers"]),
    "train_layers_above_model": ("train --train {ok} --model {tiny} --max-length 32 "
                                 "--fine-tune top --train-layers 3",
                                 ["--train-layers 3", "2 layers"]),
    "pairs_max_length_4": ("train --train {pairs} --pair-column hypothesis --text-column premise "
                           "--model {tiny} --max-length 4", ["no room for sentence pairs"]),
    # bad data files (file, line and what to fix)
    "train_file_missing": ("train --train {dir}/missing.csv", ["missing.csv", "file not found"]),
    "missing_column": ("train --train {missing_column}", ["no text column 'text'", "line 1"]),
    "empty_file": ("train --train {empty_file}", ["the file is empty"]),
    "header_only": ("train --train {header_only}", ["header but no data rows"]),
    "empty_text": ("train --train {empty_text}", ["line 3", "is empty"]),
    "null_text": ("train --train {null_text}", ["line 2", "is null"]),
    "bad_json": ("train --train {bad_json}", ["line 2", "not valid JSON"]),
    "not_utf8": ("train --train {not_utf8}", ["line 3, column 4", "not valid UTF-8"]),
    "ragged_rows": ("train --train {ragged}", ["line 3", "expected 2 fields", "found 3"]),
    "one_class": ("train --train {one_class}", ["only one class", "'a'"]),
    "missing_label": ("train --train {no_label}", ["line 3", "label", "is missing"]),
    "mixed_labels": ("train --train {mixed_labels}",
                     ["mixes integer labels", "'0'", "line 2", "text labels", "'neg'",
                      "line 4"]),
    "unknown_file_type": ("train --train {unknown_type}", ["unknown file type '.txt'"]),
    # trained models and data that do not fit them
    "evaluate_no_model": ("evaluate {dir}/no_model --data {ok}", ["no trained model here"]),
    "evaluate_pair_model_single_texts": ("evaluate {pair_model} --data {ok}",
                                         ["classifies sentence pairs", "add --pair-column"]),
    "evaluate_single_model_pairs": ("evaluate {single_model} --data {pairs} --text-column premise "
                                    "--pair-column hypothesis",
                                    ["classifies single texts", "remove --pair-column"]),
    "evaluate_pair_model_single_dataset": ("evaluate {pair_model} --dataset sst2 "
                                           "--split validation",
                                           ["classifies sentence pairs", "sst2 (validation)"]),
    "evaluate_unknown_label": ("evaluate {single_model} --data {unknown_label}",
                               ["line 3", "unknown label 'meh'", "neg, pos"]),
    "distill_pair_teacher_single_texts": ("distill {pair_model} --train {ok} --student-layers 1",
                                          ["classifies sentence pairs", "--pair-column"]),
    "distill_student_deeper_than_teacher": ("distill {single_model} --train {ok} "
                                            "--student-layers 5",
                                            ["--student-layers 5", "only 2 layers"]),
}  # fmt: skip


def run_cli(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    # No TF_CPP_MIN_LOG_LEVEL: the command must keep TensorFlow quiet by itself.
    environment = subprocess_env(KBF_OFFLINE="1", KBF_CACHE_DIR=str(cwd / "cache"), **env)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([PYTHON, "-m", "keras_bert_ft.cli", *args], cwd=cwd,
                          env=environment, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def results(request, work, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """The selected cases' commands, run side by side (each is mostly TensorFlow starting)."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.originalname == "test_misuse_ends_in_one_error_line"]  # fmt: skip

    def run_case(case: str):
        cwd = tmp_path_factory.mktemp(case)
        args = [part.format(**work) for part in CASES[case][0].split()]
        return cwd, run_cli(args, cwd, KBF_DATA_DIR=str(work["data_dir"]))

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        return dict(zip(selected, pool.map(run_case, selected), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_misuse_ends_in_one_error_line(case, results):
    cwd, proc = results[case]
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in CASES[case][1]:
        assert text in lines[0], (text, lines[0])
    assert not (cwd / "runs").exists()  # nothing was written


def test_debug_adds_the_traceback(work, tmp_path):
    proc = run_cli(["train", "--train", str(work["ok"]), "--model", str(work["roberta"]),
                    "--debug"], tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "CheckpointFormatError" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: ")


# ---- the exit status tells input errors (2) from bugs (1); in process, so it is quick


def _run_subcommand(body, capsys) -> tuple[int, str]:
    common.subcommand("boom", "raises", lambda p: None)(lambda args: body())
    try:
        status = main(["boom"])
    finally:
        del common.SUBCOMMANDS["boom"]
    return status, capsys.readouterr().err


def test_a_bug_is_one_line_with_a_hint_and_status_1(capsys):
    def body():
        raise RuntimeError("something broke\non two lines")

    status, err = _run_subcommand(body, capsys)
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("error: unexpected RuntimeError: ")
    assert "something broke on two lines" in err and "--debug" in err


def test_value_errors_from_the_package_are_input_errors(capsys):
    from keras_bert_ft.data import LabelVocabulary

    status, err = _run_subcommand(lambda: LabelVocabulary(()), capsys)
    assert status == 2 and err == "error: a label vocabulary needs at least one label\n"
    # The same type raised outside the package is a bug.
    status, err = _run_subcommand(lambda: int("x"), capsys)
    assert status == 1 and "unexpected ValueError" in err


def test_cli_module_does_not_import_tensorflow():
    code = "import sys, keras_bert_ft.cli; print('tensorflow' in sys.modules)"
    proc = subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.stdout.strip() == "False", proc.stderr


def test_train_and_tune_defaults_come_from_finetune_settings():
    from keras_bert_ft.training.finetune import FinetuneSettings

    s = FinetuneSettings()
    for command in ("train", "tune"):
        args = build_parser().parse_args([command])
        assert (args.epochs, args.batch_size, args.max_length, args.dropout, args.model,
                args.warmup_ratio, args.weight_decay, args.clipnorm, args.seed,
                args.pooling, args.monitor, args.strategy, args.precision) == (
            s.epochs, s.batch_size, s.max_length, s.dropout, s.model, s.warmup_ratio,
            s.weight_decay, s.clipnorm, s.seed, s.pooling, s.monitor, s.strategy,
            s.precision)  # fmt: skip
        assert settings_from_args(args).learning_rate == s.learning_rate
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert f"(default {s.epochs})" in help_text and f"(default {s.batch_size})" in help_text


# Options whose absence is a choice between alternatives, so they have no default to show.
NO_DEFAULT = {"--dataset", "--train", "--data"}


def test_every_option_has_help_and_shows_its_default():
    import argparse

    subparsers = build_parser()._subparsers._group_actions[0].choices
    missing = []
    for command, parser in subparsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            text = action.help or ""
            takes_value = action.nargs != 0
            known_gap = action.default is None and set(action.option_strings) & NO_DEFAULT
            if not text or (takes_value and "default" not in text.lower() and not known_gap):
                missing.append(f"{command} {action.option_strings[0]}")
    assert not missing, missing
