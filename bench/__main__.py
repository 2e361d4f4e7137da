"""`make bench`: run every benchmark (or the suites named), print one table, merge the figures
into bench/results/latest.json and re-render the table of docs/benchmarks.md from it."""

from __future__ import annotations

import json
import os
import platform as host
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from bench import capacity, llm, recorder, speech, takeover
from bench import table as table_file
from bench.figures import Figure
from bench.platform import BenchPlatform, bench_platform

SUITES: dict[str, Callable[[BenchPlatform], list[Figure]]] = {
    "recorder": recorder.run,
    "speech": speech.run,
    "llm": llm.run,
    "capacity": capacity.run,
    "takeover": takeover.run,
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
    source = f"python -m bench {' '.join(chosen)} on {host.node()}, {os.cpu_count()} cores"
    results = table_file.merge(table_file.load(), figures, source)
    table_file.RESULTS.parent.mkdir(exist_ok=True)
    table_file.RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    console.print(f"written to {table_file.RESULTS} (the suites run replace their figures)")
    if table_file.write_doc(results):
        console.print(f"{table_file.DOC}: table re-rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
