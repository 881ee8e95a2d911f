"""Run the benchmarks under bench/, one process each; results go to bench/results/.

Usage: python bench/run_all.py [NAME ...]   (names without .py; default: all)
Some benchmarks (fine-tuning accuracy) take hours on a 2-core CPU: name the
ones you want.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _common import BENCH_DIR

NOT_BENCHMARKS = {"run_all"}  # and the helpers, bench/_*.py


def available() -> list[str]:
    """Names of the benchmark scripts."""
    return sorted(p.stem for p in BENCH_DIR.glob("*.py")
                  if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"benchmarks to run (default: all): {', '.join(available())}")
    names = p.parse_args().names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmarks: {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(BENCH_DIR / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
