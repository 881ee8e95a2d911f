"""The README's commands and code blocks, checked against the code and run as printed.

The quick checks (every command parses with the real CLI parser, every data file it
names exists, every Python block compiles, every JSON block parses) are part of
`make test`. Running every block as printed, in order, in a fresh folder on the local
data, takes several minutes of training: it is marked slow and run by
`make test-readme`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from readme_blocks import readme_blocks, shell_commands

from keras_bert_ft.cli.app import build_parser

SHELL = ("sh", "bash")
# Commands of the README that cannot run inside this test, and why.
NOT_RUN_HERE = {
    "make run": "the same as `keras-bert-ft run`, which runs here",
    "make test": "this test is part of it",
    "docker": "no Docker engine on the development machine (the README says so)",
    "curl": "needs the TF Serving container above",
}


def _skip_reason(command: str) -> str | None:
    for prefix, reason in NOT_RUN_HERE.items():
        if command == prefix or command.startswith(prefix + " "):
            return reason
    return None


def _commands() -> list[str]:
    return [c for b in readme_blocks() if b.language in SHELL for c in shell_commands(b)]


def _words(command: str, data_dir: Path) -> list[str]:
    return shlex.split(command.replace("$KBF_DATA_DIR", str(data_dir)))


def test_every_block_has_a_known_language():
    blocks = readme_blocks()
    assert {b.language for b in blocks} <= {"sh", "bash", "python", "json"}, [
        (b.line, b.language) for b in blocks]  # fmt: skip
    assert any(b.language == "python" for b in blocks) and _commands()


def test_every_cli_command_parses_and_names_existing_data(data_dir):
    commands = [c for c in _commands() if c.startswith("keras-bert-ft ")]
    assert len(commands) >= 10
    parser = build_parser()
    for command in commands:
        words = _words(command, data_dir)
        try:
            parser.parse_args(words[1:])
        except SystemExit as exit_:
            pytest.fail(f"README command does not parse ({exit_.code}): {command}")
        for word in words:
            if word.startswith(str(data_dir)):
                assert Path(word).is_file(), f"{command}: {word} does not exist"


def test_every_other_command_is_a_make_target_or_known_not_to_run_here():
    targets = set(re.findall(r"^([\w-]+):", Path(__file__).resolve().parents[2].joinpath(
        "Makefile").read_text(), flags=re.M))  # fmt: skip
    for command in _commands():
        if command.startswith("keras-bert-ft "):
            continue
        if command.startswith("make "):
            assert command.split()[1] in targets, command
        assert _skip_reason(command), f"README command the test does not know: {command}"


def test_python_blocks_compile_and_json_blocks_parse():
    for block in readme_blocks():
        if block.language == "python":
            compile(block.text, f"README.md:{block.line}", "exec")
        elif block.language == "json":
            json.loads(block.text)


@pytest.mark.slow
def test_readme_runs_as_printed(data_dir, tmp_path):
    """Every block in order, in one fresh folder, as a reader would paste them."""
    env = dict(os.environ, KBF_DATA_DIR=str(data_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ran = []
    for block in readme_blocks():
        if block.language in SHELL:
            for command in shell_commands(block):
                if _skip_reason(command):
                    continue
                proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=1800)  # fmt: skip
                assert proc.returncode == 0, f"README.md:{block.line}: {command}\n{proc.stderr}"
                assert "Traceback" not in proc.stderr, command
                ran.append(command)
        elif block.language == "python":
            proc = subprocess.run([sys.executable, "-c", block.text], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=1800)  # fmt: skip
            assert proc.returncode == 0, f"README.md:{block.line}: python block\n{proc.stderr}"
            ran.append(f"python block at line {block.line}")
    assert (tmp_path / "runs" / "sst2" / "model.keras").is_file()
    assert (tmp_path / "saved_models" / "snli" / "1" / "saved_model.pb").is_file()
    print("\n".join(ran))
