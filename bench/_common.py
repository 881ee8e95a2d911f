"""Writing benchmark results: one JSON and one Markdown file per benchmark run."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def command_line() -> str:
    """The command that produced this run, as typed from the repository root."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def write_result(name: str, payload: dict, markdown: str) -> Path:
    """Write results/<name>.json and results/<name>.md atomically; returns the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    header = {"benchmark": name, "command": command_line(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
              "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()]}
    files = {
        RESULTS_DIR / f"{name}.json": json.dumps({**header, **payload}, indent=2) + "\n",
        RESULTS_DIR / f"{name}.md": (f"# {name}\n\nCommand: `{header['command']}`  \n"
                                     f"Date: {header['date']}  \nMachine: {header['machine']}  \n"
                                     "Load average when written (1, 5, 15 min): "
                                     f"{header['load_average_1_5_15_min']}\n\n"
                                     + markdown + "\n"),
    }
    for path, text in files.items():
        with tempfile.NamedTemporaryFile("w", dir=RESULTS_DIR, delete=False, suffix=".tmp") as f:
            f.write(text)
        os.replace(f.name, path)
    return RESULTS_DIR / f"{name}.json"
