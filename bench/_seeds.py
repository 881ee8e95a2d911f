"""Accuracy over several seeds: what a benchmark reports is the mean and the spread,
not one run (one seed's luck is often larger than the effect being measured)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def seed_summary(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and the values."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values), "values": values}


def mean_spread(summary: dict, digits: int = 4) -> str:
    """'0.9123 ± 0.0041 (n=3, 0.9080-0.9160)': mean ± sample std over seeds, and the range."""
    if summary["n"] == 1:
        return f"{summary['mean']:.{digits}f} (1 seed: no spread)"
    return (f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f} "
            f"(n={summary['n']}, {summary['min']:.{digits}f}-{summary['max']:.{digits}f})")
