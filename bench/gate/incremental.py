"""Gate benchmark, incremental runs: the quality gate of an incremental build as a share of that build.

    .venv/bin/python -m bench.gate.incremental --orders 100000 --orders 1000000 --rounds 3

Per size, one fresh database on the warehouse server: the transform benchmark's synthetic raw data
(bench/transform/generate.py, 5 clicks per order), a full build published, then two incremental runs published
(production's steady state: each build starts from the snapshot three publishes old, alliance/publish.py). Then
`--rounds` timed runs, one after another as in production, each: 1% new orders with their clicks and 0.1% changed
orders land; the incremental `dbt build` (its data tests read only the rewritten orders,
dbt_project/macros/incremental/test_scoping.sql); the gate (`run_gate`: GX on the rewritten rows and the raw rows
landed since, plus the whole-table invariants, alliance/gate_scope.py); publish (keeping the counts the gate took, as
alliance/run.py does). Share = (dbt tests + GX gate) /
incremental dbt build (wall, tests included); target <= 25%. dbt tests count as the wall-clock time in which at least
one test ran (run_results.json). Each round also times a whole gate (every row) on the same build, for comparison,
and the first gate of the process (GX imported, as a fresh Airflow task does) is kept as `gx_gate_cold_s`. After
each publish it times the transform's statements step (§9.1: `statements_s`, writing the statements the round's
changes revised), the step again with nothing moved (`statements_unchanged_s`: what a run pays when no locked month
changed), and the same with every source fingerprint cleared, i.e. every locked month read and hashed as before
migration 0020 (`statements_read_all_s`, nothing to write either); `--no-statements` leaves those three out (they take
minutes per round at 1M and are not part of the gate's share).
Every round is appended to bench/results/gate_incremental.json (bench/results.py) with the commit, UTC time and load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg

from alliance.gate import GateSettings, run_gate
from alliance.gate_scope import GateScope
from alliance.incremental import dbt_build
from alliance.publish import publish
from alliance.schemas import BUILD_SCHEMA
from alliance.statements import issue_statements
from alliance.warehouse import warehouse_url
from bench.gate.run import drop_world, synthetic_world
from bench.report import render_gate_incremental
from bench.results import append_run, run_header, summarise_rounds
from bench.transform.run import _quiesce, _slowest_nodes, _test_wall_seconds, land_delta

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = BUILD_SCHEMA
TIMED = ("incremental_build_s", "dbt_tests_wall_s", "gx_gate_s", "checks_over_build", "whole_gate_s", "publish_s",
         "statements_s", "statements_unchanged_s", "statements_read_all_s")


def bench_size(server: str, orders: int, clicks_per_order: int, rounds: int, keep: bool = False,
               statements: bool = True) -> dict:
    world = synthetic_world(server, "alliance_benchgateinc", orders, clicks_per_order)
    url, dbt_vars, base = world.url, world.dbt_vars, world.base
    try:
        # The generator dates changed orders' updated_at after "now": allow them, so every check runs and passes.
        settings = replace(GateSettings.from_config(world.config), future_tolerance_minutes=4000 * 24 * 60)

        def land() -> None:
            land_delta(world.gen, url, orders, clicks_per_order)

        statements_dir = Path(tempfile.mkdtemp(prefix="alliance_bench_statements_"))

        def issue() -> float:
            """The transform's statements step after a publish (§9.1): seconds."""
            t0 = time.perf_counter()
            issue_statements(url, out_dir=statements_dir, run_id="bench")
            return time.perf_counter() - t0

        full = dbt_build(url, SCHEMA, dbt_vars, full_refresh=True)
        assert full.outcome.success, full.outcome.failures
        t0 = time.perf_counter()
        cold = run_gate(url, SCHEMA, settings=settings)  # the process's first gate imports GX, as an Airflow task
        cold_s = time.perf_counter() - t0
        assert cold.passed, cold.failures
        publish(url, SCHEMA, run_id="bench-full")
        for warmup in ("bench-warmup-1", "bench-warmup-2"):
            land()
            warm = dbt_build(url, SCHEMA, dbt_vars)
            assert warm.outcome.success and not warm.full_refresh, warm.outcome.failures
            assert run_gate(url, SCHEMA, settings=settings).passed
            publish(url, SCHEMA, run_id=warmup)
            if statements:
                issue()  # the first issues every locked month's statements
        print(f"[{orders}] {base.orders} orders, {base.clicks} clicks; full build and two incremental runs published;"
              f" first gate of the process (GX import) {cold_s:.1f}s", flush=True)

        out = []
        for number in range(1, rounds + 1):
            land()
            _quiesce(url)
            t0 = time.perf_counter()
            build = dbt_build(url, SCHEMA, dbt_vars)
            build_s = time.perf_counter() - t0
            assert build.outcome.success and not build.full_refresh, build.outcome.failures
            tests_wall_s, slowest = _test_wall_seconds(), _slowest_nodes()
            _quiesce(url)
            t0 = time.perf_counter()
            gate = run_gate(url, SCHEMA, settings=settings)
            gate_s = time.perf_counter() - t0
            assert gate.passed, gate.failures
            assert gate.scope.startswith("rows rewritten"), gate.scope
            t0 = time.perf_counter()
            whole = run_gate(url, SCHEMA, settings=settings, scope=GateScope())
            whole_s = time.perf_counter() - t0
            assert whole.passed, whole.failures
            t0 = time.perf_counter()
            publish(url, SCHEMA, run_id=f"bench-round-{number}", row_counts=gate.row_counts)  # as run.publish
            publish_s = time.perf_counter() - t0
            timed_statements = {}
            if statements:
                # the step as it runs: statements revised by this run's changes are written
                timed_statements["statements_s"] = round(issue(), 2)
                # again, nothing moved: what a run pays when no locked month changed
                timed_statements["statements_unchanged_s"] = round(issue(), 2)
                with psycopg.connect(url) as conn:  # as before the fingerprints: every locked month read and hashed
                    conn.execute("update ops.statement_issues set source_fingerprint = null")
                timed_statements["statements_read_all_s"] = round(issue(), 1)
            share = (tests_wall_s + gate_s) / build_s
            print(f"[{orders}] round {number}: incremental build {build_s:.1f}s (dbt tests {tests_wall_s:.1f}s wall),"
                  f" gate {gate_s:.1f}s on {gate.scope_keys} rewritten keys, whole gate {whole_s:.1f}s,"
                  f" publish {publish_s:.2f}s, statements step {timed_statements or 'not run'};"
                  f" (dbt tests + gate) / build = {share:.1%}", flush=True)
            out.append({"round": number, "orders": orders, "clicks": base.clicks,
                        "rewritten_keys": gate.scope_keys, "incremental_build_s": round(build_s, 1),
                        "dbt_tests_wall_s": tests_wall_s, "gx_gate_s": round(gate_s, 2),
                        "gx_gate_cold_s": round(cold_s, 1), "whole_gate_s": round(whole_s, 1),
                        "publish_s": round(publish_s, 2), **timed_statements,
                        "gx_expectations": gate.checks_passed,
                        "incremental_slowest_nodes_s": slowest,
                        "gate_seconds_by_table": {k: v["seconds"] for k, v in gate.results.items() if "seconds" in v},
                        "whole_gate_seconds_by_table": {k: v["seconds"] for k, v in whole.results.items()
                                                        if "seconds" in v},
                        "gate_scope_copy_steps_s": gate.results.get("scope copies", {}).get("steps"),
                        "checks_over_build": round(share, 3)})
        return {"rounds": out}
    finally:
        drop_world(server, url, keep, orders)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="orders per size (repeatable)")
    parser.add_argument("--clicks-per-order", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timed incremental runs per size (at least 3)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for profiling)")
    parser.add_argument("--no-statements", dest="statements", action="store_false",
                        help="skip the statements step's timings (minutes per round at 1M; not the gate's share)")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a median is quoted with its best and worst round")
    server = warehouse_url()
    import dbt.cli.main  # noqa: F401 - imported once, outside the timed builds (as bench/transform does)
    header = run_header()
    sizes = args.orders or [100_000, 1_000_000]
    by_size = {n: bench_size(server, n, args.clicks_per_order, args.rounds, args.keep, args.statements)["rounds"]
               for n in sizes}
    summary = {str(n): summarise_rounds(rs, TIMED) for n, rs in by_size.items()}
    path = append_run("gate_incremental", {**header, "sizes": sizes, "clicks_per_order": args.clicks_per_order,
                                           "rounds": {str(n): rs for n, rs in by_size.items()}, "summary": summary})
    print("\n".join(render_gate_incremental({"sizes": sizes, "summary": summary})))
    print(f"every round in bench/results/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
