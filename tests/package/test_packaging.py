"""`pip wheel .` builds a wheel whose tokenizer works outside the source tree; the
source distribution carries every C++ file that setup.py's one source list names."""

from __future__ import annotations

import subprocess
import sys
import tarfile
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


def listed_sources() -> list[str]:
    """Every path in csrc/sources.txt (the list setup.py and the Makefile read)."""
    lines = (REPO_ROOT / "csrc" / "sources.txt").read_text().splitlines()
    fields = [line.split("#", 1)[0].split() for line in lines]
    return [f[1] for f in fields if f]


def test_source_list_names_every_part_and_source():
    sources = listed_sources()
    on_disk = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "csrc").glob("*/*.cc")}
    assert set(sources) == on_disk - {s for s in on_disk if s.startswith("csrc/tests/")}
    assert {s.split("/")[1] for s in sources} == {"core", "python", "tf"}
    # The core includes neither Python nor TensorFlow.
    for path in (REPO_ROOT / "csrc" / "core").iterdir():
        text = path.read_text()
        assert "pybind11" not in text and "tensorflow/" not in text, path


def test_sdist_ships_the_listed_sources_and_headers(tmp_path: Path):
    subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
         "sdist", "--dist-dir", str(tmp_path)],
        check=True, cwd=REPO_ROOT, capture_output=True)
    (archive,) = tmp_path.glob("keras_bert_ft-*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    headers = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "csrc").glob("*/*.h")]
    assert headers
    missing = [p for p in ["csrc/sources.txt", *listed_sources(), *headers] if p not in names]
    assert not missing, missing
    assert not any(n.endswith(".so") for n in names)
