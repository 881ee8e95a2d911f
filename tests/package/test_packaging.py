"""`pip wheel .` builds a wheel whose tokenizer works outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO_ROOT

CHECK = """
import keras_bert_ft, sys
from keras_bert_ft import WordPieceTokenizer
assert "{unpacked}" in keras_bert_ft.__file__, keras_bert_ft.__file__
tok = WordPieceTokenizer(vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"])
print(tok.encode_batch(["Hello world!"])["input_word_ids"].tolist())
"""


def test_wheel_works_outside_the_source_tree(tmp_path: Path):
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
         "-w", str(wheel_dir), str(REPO_ROOT)],
        check=True, cwd=tmp_path, capture_output=True)
    wheels = list(wheel_dir.glob("keras_bert_ft-*.whl"))
    assert len(wheels) == 1
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        wheel.extractall(unpacked)
    assert any(n.startswith("keras_bert_ft/_wordpiece") and n.endswith(".so") for n in names)
    assert not any(n.startswith(("tests/", "csrc/", "bench/")) for n in names)
    # Run from an empty directory with only the unpacked wheel on the path.
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(unpacked=unpacked)], cwd=run_dir,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[[2, 4, 5, 1, 3]]"
