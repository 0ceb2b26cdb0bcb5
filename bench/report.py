"""Render bench/README.md's result tables from bench/results/*.json, so the README quotes the files and nothing else.

    .venv/bin/python -m bench.report            # print every block
    .venv/bin/python -m bench.report --write    # rewrite the blocks between the markers in bench/README.md

A block sits between `<!-- results:<bench> -->` and `<!-- /results -->` in bench/README.md and shows the newest run
of that benchmark: commit, UTC start, load average at start and end, and for every figure the median with the best and
worst round. tests/test_bench_results.py fails when a block differs from what the files say.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from bench.results import RESULTS_DIR, quote, seconds, share, summary_table

README = Path(__file__).resolve().parent / "README.md"
BLOCK = re.compile(r"(<!-- results:(?P<bench>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def _runs(bench: str, results_dir: Path) -> list[dict]:
    path = results_dir / f"{bench}.json"
    return json.loads(path.read_text()) if path.exists() else []


def _load(values: list[float] | None) -> str:
    return " / ".join(f"{x:.2f}" for x in values) if values else "not kept"


def _provenance(run: dict, bench: str, count: int) -> str:
    when = f"started {run['started_at']}" if run.get("started_at") else f"finished {run.get('finished_at')}"
    return (f"Newest of {count} run(s) in `bench/results/{bench}.json`: commit `{run.get('commit')}`, {when},"
            f" load average (1/5/15 min) {_load(run.get('loadavg_at_start'))} at start,"
            f" {_load(run.get('loadavg_at_end'))} at end, {run.get('cores')} cores.")


def _sized(run: dict, columns: list[tuple[str, str, Callable[[dict], str]]]) -> list[str]:
    return summary_table(run["summary"], run["sizes"], columns).splitlines()


def render_transform(run: dict) -> list[str]:
    return _sized(run, [("full build", "full_build_s", seconds), ("incremental (1% new)", "incremental_s", seconds),
                        ("hand-written SQL", "hand_sql_s", seconds),
                        ("incremental / full (target <= 0.10)", "incremental_over_full",
                         lambda s: quote(s, digits=3)),
                        ("full / hand SQL (target <= 3)", "full_over_hand_sql", lambda s: quote(s, digits=1))])


def render_gate(run: dict) -> list[str]:
    return _sized(run, [("dbt build", "dbt_build_s", seconds), ("dbt tests (wall)", "dbt_tests_wall_s", seconds),
                        ("GX gate", "gx_gate_s", seconds),
                        ("(dbt tests + GX) / build (target <= 25 %)", "checks_over_build", share),
                        ("same, tests in node seconds", "checks_over_build_node_seconds", share)])


def render_transform_split_ab(run: dict) -> list[str]:
    lines = ["| side (commit) | full build | incremental (1% new) | hand-written SQL | full / hand SQL |",
             "|---|---:|---:|---:|---:|"]
    for side, commit in run["sides"].items():
        s = run["summary"][side]
        lines.append(f"| {side.replace('_', ' ')} (`{commit}`) | {seconds(s['full_build_s'])} |"
                     f" {seconds(s['incremental_s'])} | {seconds(s['hand_sql_s'])} |"
                     f" {quote(s['full_over_hand_sql'], digits=2)} |")
    lines += ["", "Rounds in the order they ran (start, 1-min load average at start, full build):", ""]
    pairs = zip(run["rounds"]["before_split"], run["rounds"]["after_split"], strict=True)
    for pre, post in pairs:
        for side, r in (("before", pre), ("after", post)):
            lines.append(f"- {side}: {r['started_at']}, load {r['loadavg_at_start'][0]:.2f}, "
                         f"full {r['full_build_s']} s, incremental {r['incremental_s']} s")
    return lines


def render_gate_incremental(run: dict) -> list[str]:
    return _sized(run, [("incremental build", "incremental_build_s", seconds),
                        ("dbt tests (wall)", "dbt_tests_wall_s", seconds), ("gate", "gx_gate_s", seconds),
                        ("(dbt tests + gate) / build (target <= 25 %)", "checks_over_build", share),
                        ("whole gate, same build", "whole_gate_s", seconds), ("publish", "publish_s", seconds),
                        ("statements step", "statements_s", seconds),
                        ("statements, nothing moved", "statements_unchanged_s", lambda s: quote(s, " s", digits=2)),
                        ("same, every locked month read (before 0020)", "statements_read_all_s", seconds)])


def render_freshness(run: dict) -> list[str]:
    if "points" not in run:  # runs before size points: rounds of webhooks on an empty warehouse
        return _render_freshness_rounds(run)
    lines = [f"| orders preloaded | p50 (target <= {run['target_p50_s']:.0f} s) | p95 | samples |"
             " queued -> start (median) | outside the tasks (median) | median task seconds of the transform runs |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for size in run["sizes"]:
        s = run["points"][str(size)]["summary"]
        tasks = ", ".join(f"{k} {v:.1f}" for k, v in s["median_task_seconds"].items())
        queued, outside = (f"{s[key]:.1f} s" if s.get(key) is not None else "-"
                           for key in ("median_queued_to_start_s", "median_outside_tasks_s"))
        lines.append(f"| {size:,} | {s['p50']:.1f} s | {s['p95']:.1f} s | {s['n']} | {queued} | {outside} | {tasks} |")
    return [*lines, "", f"{run['samples_per_point']} webhooks per point posted one at a time (each after the previous "
            f"sample's transform run finished); p50 and p95 over all samples of the point; {run['clicks_per_order']} "
            "clicks per preloaded order; each point warmed up to the steady state first (a full and two incremental "
            "transforms published). Outside the tasks: latency minus prepare, dbt_build, quality_gate and publish "
            "(landing, the asset event, scheduling, task start-up)."]


def _render_freshness_rounds(run: dict) -> list[str]:
    s = run["summary"]
    return ["| webhook -> published | median of rounds (best - worst round) |", "|---|---:|",
            f"| p50 (target < 30 s) | {quote(s['p50'], ' s')} |", f"| p95 | {quote(s['p95'], ' s')} |",
            "", f"{run['samples_per_round']} webhooks per round, one at a time; median task seconds of the transform "
            f"runs: {', '.join(f'{k} {v}' for k, v in sorted(run['median_task_seconds'].items()))}."]


def render_webhooks(run: dict) -> list[str]:
    s = run["summary"]
    return [f"| answer latency, {run['idle_connections']} idle connections held | median of rounds "
            "(best - worst round) |", "|---|---:|",
            f"| p50 | {quote(s['answer_p50_ms'], ' ms', digits=2)} |",
            f"| p95 | {quote(s['answer_p95_ms'], ' ms', digits=2)} |"]


def render_ingest(run: dict) -> list[str]:
    lines = [f"{run['orders']:,} orders, pages of {run['page_size']}" + (f"; label: {run['label']}" if run.get("label")
                                                                          else "") + ".", "",
             "| contender | orders/s: median (best - worst round) |", "|---|---:|"]
    for name, s in run["orders_per_second"].items():
        lines.append(f"| {name} | {quote(s, digits=0)} |")
    return lines


def render_shopify_backfill(run: dict) -> list[str]:
    s = run["summary"]
    return [f"{run['orders']:,} orders; throttles: REST {run['throttles']['rest']}, GraphQL "
            f"{run['throttles']['graphql']}.", "",
            "| backfill | time: median (best - worst round) | peak RSS of the ingest process |", "|---|---:|---:|",
            f"| REST paging (`shopify`) | {seconds(s['rest']['seconds'])} | "
            f"{quote(s['rest']['peak_rss_mb'], ' MB', digits=0)} |",
            f"| one bulk operation (`shopify_graphql`) | {seconds(s['bulk']['seconds'])} | "
            f"{quote(s['bulk']['peak_rss_mb'], ' MB', digits=0)} |",
            f"| REST / bulk | {quote(s['rest_over_bulk'], 'x')} | |"]


RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "transform": render_transform, "transform_programme": render_transform, "gate": render_gate,
    "gate_incremental": render_gate_incremental, "transform_split_ab": render_transform_split_ab,
    "freshness": render_freshness, "webhooks": render_webhooks,
    "ingest": render_ingest, "shopify_backfill": render_shopify_backfill}


def render(bench: str, results_dir: Path = RESULTS_DIR) -> str:
    runs = _runs(bench, results_dir)
    if not runs:
        return f"No run of `{bench}` is recorded in bench/results/ yet.\n"
    run = runs[-1]
    return "\n".join([_provenance(run, bench, len(runs)), "", *RENDERERS[bench](run)]) + "\n"


def rewrite(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """The README text with every results block re-rendered from the files."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("bench"), results_dir) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the blocks in bench/README.md")
    args = parser.parse_args(argv)
    if args.write:
        README.write_text(rewrite(README.read_text()))
        print(f"rewrote the results blocks of {README}")
        return 0
    for bench in RENDERERS:
        print(f"## {bench}\n\n{render(bench)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
