"""`make bench`: run every benchmark, print one table, write bench/results/latest.json."""

from __future__ import annotations

import json
import os
import platform as host
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import capacity, llm, recorder, speech
from bench.figures import Figure
from bench.platform import BenchPlatform, bench_platform

SUITES: dict[str, Callable[[BenchPlatform], list[Figure]]] = {
    "recorder": recorder.run,
    "speech": speech.run,
    "llm": llm.run,
    "capacity": capacity.run,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    console = Console()
    figures: list[tuple[str, Figure]] = []
    for name in chosen:
        with console.status(f"benchmark: {name}…"), bench_platform() as platform:
            figures += [(name, f) for f in SUITES[name](platform)]
    table = Table(title=f"STELLA benchmarks — {os.cpu_count()} cores, {host.python_version()}")
    for col in ("suite", "figure", "value", "unit", "target", "how it was measured"):
        table.add_column(col, overflow="fold")
    for suite, f in figures:
        table.add_row(suite, f.name, f"{f.value:,.2f}", f.unit, f.target, f.method)
    console.print(table)
    out = Path(__file__).parent / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cpus": os.cpu_count(),
                "figures": [{"suite": s, **f.as_dict()} for s, f in figures],
            },
            indent=2,
        )
    )
    console.print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
