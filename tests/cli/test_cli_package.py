"""The CLI is a package without a cycle: `keras_bert_ft.cli.app` (the parser and `main`)
imports the modules of subcommands, none of them imports it back; the old module paths
are deprecated aliases; the train options' defaults are `FinetuneSettings`' own."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys

import pytest
from tiny import PYTHON, REPO_ROOT, subprocess_env

from keras_bert_ft.cli.app import build_parser
from keras_bert_ft.cli.train import settings_from_args

GROUPS = ("train", "serving", "model", "pretrain")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_no_subcommand_module_imports_main():
    modules = ", ".join(f"keras_bert_ft.cli.{group}" for group in GROUPS)
    code = (f"import sys, {modules}\n"
            "print(sorted(m for m in sys.modules if m.startswith('keras_bert_ft.cli')))\n"
            "print('tensorflow' in sys.modules)")  # fmt: skip
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    loaded, tensorflow = proc.stdout.splitlines()
    assert "keras_bert_ft.cli.app" not in loaded
    assert all(f"keras_bert_ft.cli.{group}" in loaded for group in GROUPS)
    assert tensorflow == "False"  # main quiets TensorFlow before anything imports it


def test_python_m_keras_bert_ft_cli_help_lists_every_subcommand():
    proc = subprocess.run([PYTHON, "-m", "keras_bert_ft.cli", "--help"], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "evaluate", "tune", "run", "distill", "export", "predict",
                    "explain", "export-hf", "pretrain"):  # fmt: skip
        assert f"\n    {command} " in proc.stdout, command
    assert proc.stderr == ""  # no TensorFlow start-up lines


def test_the_entry_point_name_is_the_function_whatever_was_imported_first():
    import keras_bert_ft.cli.app  # noqa: F401  (a submodule named main would hide it)
    from keras_bert_ft.cli import main
    from keras_bert_ft.cli.app import main as real

    assert main is real


@pytest.mark.parametrize("old, new", [
    ("keras_bert_ft.serving_cli", "keras_bert_ft.cli.serving"),
    ("keras_bert_ft.model_cli", "keras_bert_ft.cli.model"),
    ("keras_bert_ft.pretraining.cli", "keras_bert_ft.cli.pretrain"),
])  # fmt: skip
def test_old_cli_module_paths_are_deprecated_aliases(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def _train_parser() -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices["train"]


def test_train_options_default_to_finetune_settings_fields():
    from keras_bert_ft.training.finetune import FinetuneSettings

    fields = {f.name: f for f in dataclasses.fields(FinetuneSettings)}
    # Options named otherwise than their field, and the flags that negate a field.
    renamed = {"early_stopping": "early_stopping_patience"}
    negated = {"no_tune_thresholds": "tune_thresholds", "no_resume": "resume"}
    # The library writes nothing without an output folder; the command always writes one.
    the_commands_own = {"output_dir"}
    checked = []
    for action in _train_parser()._actions:
        name = renamed.get(action.dest, negated.get(action.dest, action.dest))
        if name not in fields or name in the_commands_own:
            continue
        field = fields[name]
        default = field.default_factory() if field.default is dataclasses.MISSING else (
            field.default)  # fmt: skip
        expected = not default if action.dest in negated else default
        assert action.default == expected, action.option_strings
        if action.default not in (None, False, True) and "%(default)s" in (action.help or ""):
            shown = action.help % {"default": action.default}
            assert f"(default {default}" in shown, (action.option_strings, shown)
        checked.append(name)
    assert {"epochs", "batch_size", "learning_rate", "max_length", "lora_rank",
            "model", "resume"} <= set(checked)  # fmt: skip
    # And the command's defaults give FinetuneSettings' defaults, the learning rate too.
    args = _train_parser().parse_args([])
    ours = settings_from_args(args).to_dict()
    theirs = FinetuneSettings(output_dir=args.output_dir).to_dict()
    assert ours == theirs


def test_the_frozen_learning_rate_comes_from_the_library():
    from keras_bert_ft.training.finetune import FROZEN_LEARNING_RATE

    args = _train_parser().parse_args(["--fine-tune", "frozen"])
    assert settings_from_args(args).learning_rate == FROZEN_LEARNING_RATE
    args = _train_parser().parse_args(["--lora-rank", "2", "--learning-rate", "0.02"])
    assert settings_from_args(args).learning_rate == 0.02
