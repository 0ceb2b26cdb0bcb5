"""Every benchmark run is kept: one JSON file per benchmark under bench/results/, one entry per run.

Why: a headline number must be traceable to the rounds behind it (commit, UTC time, machine load), and the
best and worst rounds shown beside the median; bench/README.md quotes these files only.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        # the results files themselves change with every run: they do not make the measured code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def run_header() -> dict:
    """Where and when: commit, UTC start time, load average (1/5/15 min) and core count at the start."""
    return {"commit": _commit(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
            "python": platform.python_version()}


def summarise(values: list[float], higher_is_better: bool = True) -> dict:
    """Median, best and worst of the rounds (at least 3 rounds make a median worth quoting).

    Throughputs are better high, durations and ratios of durations low: the caller says which."""
    best, worst = (max, min) if higher_is_better else (min, max)
    return {"rounds": len(values), "median": round(statistics.median(values), 3), "best": round(best(values), 3),
            "worst": round(worst(values), 3)}


def summarise_rounds(rounds: list[dict], keys: tuple[str, ...], higher_is_better: bool = False) -> dict:
    """summarise() for each of `keys` over the rounds (dicts) that have it."""
    return {key: summarise([r[key] for r in rounds], higher_is_better) for key in keys if all(key in r for r in rounds)}


def quote(summary: dict, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    """'median (best - worst)' for printing, the way bench/README.md quotes a result."""
    def fmt(x: float) -> str:
        return f"{x * scale:.{digits}f}{unit}"
    return f"{fmt(summary['median'])} ({fmt(summary['best'])} - {fmt(summary['worst'])})"


def summary_table(summary: dict, sizes: list[int], columns: list[tuple[str, str, Callable[[dict], str]]]) -> str:
    """A markdown table of a run's summary: a row per size, a column per (title, summary key, formatter); a key the
    run did not measure shows as n/a. The benchmarks print it, bench/report.py writes it into bench/README.md."""
    lines = ["| orders | " + " | ".join(title for title, _, _ in columns) + " |", "|---:|" + "---:|" * len(columns)]
    for size in sizes:
        row = summary[str(size)]
        cells = (fmt(row[key]) if key in row else "n/a" for _, key, fmt in columns)
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seconds(summary: dict) -> str:
    return quote(summary, " s")


def share(summary: dict) -> str:
    return quote(summary, " %", scale=100)


def append_run(benchmark: str, run: dict, results_dir: Path | None = None) -> Path:
    """Append one run (header + rounds + summary) to bench/results/<benchmark>.json (or `results_dir`, a smoke
    run's) and return the path."""
    directory = results_dir or RESULTS_DIR
    directory.mkdir(exist_ok=True)
    path = directory / f"{benchmark}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    run = {**run, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    runs.append(run)
    path.write_text(json.dumps(runs, indent=2) + "\n")
    return path


def run_sized_rounds(benchmark: str, sizes: list[int], rounds: int, measure: Callable[[int], dict],
                     timed: tuple[str, ...], **facts: object) -> tuple[dict, Path]:
    """Measure every size `rounds` times, round-robin (a noisy minute hits every size), and append the run: header,
    `facts`, every round and, per size, the median, best and worst of the `timed` figures (durations: lower is
    better). Returns the summary (size as text -> figure -> summary) and the results file."""
    header = run_header()
    by_size: dict[int, list[dict]] = {n: [] for n in sizes}
    for number in range(1, rounds + 1):
        for n in sizes:
            print(f"--- round {number} of {rounds}, {n:,} orders", flush=True)
            by_size[n].append({"round": number, **measure(n)})
    summary = {str(n): summarise_rounds(rs, timed) for n, rs in by_size.items()}
    path = append_run(benchmark, {**header, "sizes": sizes, **facts,
                                  "rounds": {str(n): rs for n, rs in by_size.items()}, "summary": summary})
    print(f"\nmedian (best - worst) of {rounds} rounds; every round in bench/results/{path.name}")
    return summary, path
