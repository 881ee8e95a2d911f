"""bench/_common.py: the header every result file starts with, seed summaries, timing.

Run in a fresh interpreter, as a benchmark script would import it: importing
`_common` changes sys.path and KBF_DATA_DIR, which this test process must keep.
"""

from __future__ import annotations

import json
import subprocess

from tiny import PYTHON, REPO_ROOT, subprocess_env

PROBE = """
import json, sys
sys.path.insert(0, {bench!r})
import _common
# A serving benchmark child runs without the package: importing _common must not load it.
assert "keras_bert_ft" not in sys.modules, "bench/_common imported the package"
import keras_bert_ft

_common.write_result("probe", {{"value": 1}}, "body text", title="Probe", out_dir={out!r})
summary = _common.seed_summary([0.5, 0.7, 0.6])
calls = []
seconds = _common.timed(calls.append, list(range(5)), warmup=2)
print(json.dumps({{"package": keras_bert_ft.__file__, "summary": summary,
                  "spread": _common.mean_spread(summary), "calls": calls, "seconds": seconds}}))
"""


def test_write_result_heads_both_files_with_the_run(tmp_path):
    out = tmp_path / "results"
    code = PROBE.format(bench=str(REPO_ROOT / "bench"), out=str(out))
    env = subprocess_env(KBF_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([PYTHON, "-c", code, "--flag", "a b"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    # This checkout's package is the one measured.
    assert probe["package"].startswith(str(REPO_ROOT / "keras_bert_ft"))
    assert sorted(p.name for p in out.iterdir()) == ["probe.json", "probe.md"]  # no temp files
    record = json.loads((out / "probe.json").read_text())
    assert record["benchmark"] == "probe" and record["value"] == 1
    assert record["command"] == f"KBF_DATA_DIR={tmp_path / 'data'} python -c --flag 'a b'"
    assert record["machine"]["cpu_count"] >= 1 and len(record["load_average_1_5_15_min"]) == 3
    md = (out / "probe.md").read_text()
    assert md.startswith(f"# Probe\n\nCommand: `{record['command']}`  \nDate: {record['date']}")
    assert "Load average when written" in md and md.endswith("\n\nbody text\n")
    summary = probe["summary"]
    assert abs(summary["mean"] - 0.6) < 1e-12 and abs(summary["std"] - 0.1) < 1e-12
    assert probe["spread"] == "0.6000 ± 0.1000 (n=3, 0.5000-0.7000)"
    assert probe["calls"] == [0, 1, 2, 3, 4] and probe["seconds"] >= 0
