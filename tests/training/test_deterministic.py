"""`--deterministic`: two separate runs of `keras-bert-ft run` with the same options give
byte-identical reports and bit-identical weights (tiny model, 36 rows, 2 epochs)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from tiny import PYTHON, save_tiny_hf, subprocess_env, write_csv


def _run(cwd, model_dir, data):
    cwd.mkdir()
    cmd = [PYTHON, "-m", "keras_bert_ft.cli", "run", "--train", str(data),
           "--model", str(model_dir), "--epochs", "2", "--batch-size", "4",
           "--accumulate-steps", "2", "--learning-rate", "1e-3", "--max-length", "16",
           "--validation-split", "0.25", "--deterministic", "--output-dir", "out"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "out"


def _weights(path):
    import keras

    import keras_bert_ft.models  # noqa: F401  (registers the classes)

    return [w.numpy() for w in keras.saving.load_model(path).weights]


def test_two_deterministic_runs_give_identical_reports(tmp_path):
    model_dir = save_tiny_hf(tmp_path / "tiny_bert")
    data = write_csv(tmp_path / "data.csv", n_per_class=24)
    first = _run(tmp_path / "a", model_dir, data)
    second = _run(tmp_path / "b", model_dir, data)
    for name in ("report/report.txt", "report/metrics.json", "settings.json", "labels.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    metrics = json.loads((first / "report/metrics.json").read_text())
    assert metrics["settings"]["deterministic"] is True
    assert metrics["settings"]["accumulate_steps"] == 2
    run = json.loads((first / "run.json").read_text())
    assert run["identity"]["training"]["accumulate_steps"] == 2
    a, b = _weights(first / "model.keras"), _weights(second / "model.keras")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # The runs trained (the equality is not that of two untouched models).
    start = _weights_of_fresh(model_dir)
    assert [s.shape for s in start] == [w.shape for w in a[: len(start)]]
    assert any(not np.array_equal(s, w) for s, w in zip(start, a[: len(start)], strict=True))


def _weights_of_fresh(model_dir):
    from keras_bert_ft.checkpoints import load_pretrained

    encoder, _, _ = load_pretrained(str(model_dir))
    return [w.numpy() for w in encoder.weights]
