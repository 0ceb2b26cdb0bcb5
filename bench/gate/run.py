"""Gate benchmark: the GX and dbt checks as a share of the dbt build, at 100k and 1M orders.

    .venv/bin/python -m bench.gate.run --orders 100000 --orders 1000000

For each size, in a fresh database on the warehouse server: the transform benchmark's synthetic raw data
(bench/transform/generate.py, 5 clicks per order), then one `dbt build --full-refresh` (what a run executes), split
from dbt's run_results.json into models and tests, then the whole quality gate (`run_gate`: every GX suite on raw.*
and on the build schema, row-count bounds against a published snapshot, the e-mail scan over every text column,
the reconciliations), then one publish. The gate runs twice: the first time against an empty `analytics` (nothing
to compare row counts with), the second after that build was published, as every later run does; the second is the
one reported. Share = (dbt tests + GX gate) / dbt build (models + tests, wall); target <= 25%. dbt tests count as
the wall-clock time in which at least one test ran (union of their intervals in run_results.json); the share with
their execution times summed over dbt's threads is reported beside it.
`--rounds` (default 3) repeats every size round-robin; every round is appended to bench/results/gate.json
(bench/results.py) with the commit, UTC time and load average, and the median, best and worst round of each figure.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alliance.config import AllianceConfig, load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.gate import GateSettings, run_gate
from alliance.incremental import dbt_build
from alliance.migrate import migrate
from alliance.publish import publish
from alliance.schemas import BUILD_SCHEMA
from alliance.warehouse import parse_url, warehouse_url
from bench.report import render_gate
from bench.results import run_sized_rounds
from bench.transform.generate import Generated, Generator
from bench.transform.run import _database, _phase_seconds, _test_wall_seconds

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = BUILD_SCHEMA  # the gate checks the run's build schema


@dataclass
class World:
    """A fresh benchmark database with the demo config and `orders` synthetic orders landed in raw."""

    config: AllianceConfig
    url: str
    dbt_vars: dict
    gen: Generator
    base: Generated


def synthetic_world(server: str, prefix: str, orders: int, clicks_per_order: int) -> World:
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    url = _database(server, f"{prefix}_{orders}_{uuid.uuid4().hex[:6]}")
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=datetime(2026, 12, 1, tzinfo=UTC).date())
    gen = Generator(config, seed=orders)
    base = gen.write(url, orders, clicks_per_order, history_until=datetime.now(UTC) - timedelta(hours=1))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    return World(config, url, dbt_vars, gen, base)


def drop_world(server: str, url: str, keep: bool, orders: int) -> None:
    if keep:
        print(f"[{orders}] kept database {parse_url(url).dbname}", flush=True)
        return
    with psycopg.connect(server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{parse_url(url).dbname}" with (force)')


def bench_size(server: str, orders: int, clicks_per_order: int, keep: bool = False) -> dict:
    world = synthetic_world(server, "alliance_benchgate", orders, clicks_per_order)
    config, url, dbt_vars, base = world.config, world.url, world.dbt_vars, world.base
    try:
        print(f"[{orders}] generated {base.orders} orders, {base.clicks} clicks", flush=True)

        t0 = time.perf_counter()
        build = dbt_build(url, SCHEMA, dbt_vars, full_refresh=True)
        build_s = time.perf_counter() - t0
        assert build.outcome.success, build.outcome.failures
        phases = _phase_seconds()
        tests_wall_s = _test_wall_seconds()
        models_s = phases["intermediate"] + phases["marts"]
        print(f"[{orders}] dbt build {build_s:.1f}s {phases}", flush=True)

        # The generator dates some refunds (hence orders' updated_at) after "now": allow them, so every check still
        # runs at full cost and passes. Everything else is the configured default.
        settings = replace(GateSettings.from_config(config), future_tolerance_minutes=400 * 24 * 60)
        t0 = time.perf_counter()
        first = run_gate(url, SCHEMA, settings=settings)  # includes importing GX (once per process)
        first_s = time.perf_counter() - t0
        assert first.passed, first.failures
        t0 = time.perf_counter()
        published = publish(url, SCHEMA, run_id=f"bench-{orders}")
        publish_s = time.perf_counter() - t0
        with psycopg.connect(url) as conn:  # the next run's build: the same tables again, beside analytics
            conn.execute(f"create schema {SCHEMA}")
            for table in published.row_counts:
                conn.execute(f"create table {SCHEMA}.{table} as table analytics.{table}")
            conn.execute("analyze")
        t0 = time.perf_counter()
        gate = run_gate(url, SCHEMA, settings=settings)
        gate_s = time.perf_counter() - t0
        assert gate.passed, gate.failures
        per_table = {name: r.get("statistics", {}).get("evaluated_expectations") for name, r in gate.results.items()}
        # dbt's tests: wall-clock seconds in which a test ran (the share reported) and, for reference, their
        # execution times summed over dbt's threads (counts seconds twice where two tests ran at once)
        tests_s = phases["tests"]
        share = (tests_wall_s + gate_s) / build_s
        node_share = (tests_s + gate_s) / build_s
        print(f"[{orders}] gate {gate_s:.1f}s (first, with GX import: {first_s:.1f}s), {gate.checks_passed} "
              f"expectations; publish {publish_s:.2f}s; dbt tests {tests_wall_s:.1f}s wall ({tests_s:.1f} node-s); "
              f"(dbt tests + GX) / dbt build = {share:.1%} (node-seconds: {node_share:.1%})", flush=True)
        return {
            "orders": orders, "clicks": base.clicks, "dbt_build_s": round(build_s, 1), "dbt_phases_s": phases,
            "dbt_models_s": round(models_s, 1), "dbt_tests_wall_s": tests_wall_s, "dbt_tests_s": round(tests_s, 1),
            "gx_gate_s": round(gate_s, 1),
            "gx_gate_first_s": round(first_s, 1), "gx_expectations": gate.checks_passed,
            "expectations_per_suite": per_table, "publish_s": round(publish_s, 2),
            "gx_over_build": round(gate_s / build_s, 3), "dbt_tests_over_build": round(tests_s / build_s, 3),
            "checks_over_build": round(share, 3), "checks_over_build_node_seconds": round(node_share, 3),
        }
    finally:
        drop_world(server, url, keep, orders)


TIMED = ("dbt_build_s", "dbt_tests_wall_s", "gx_gate_s", "gx_over_build", "checks_over_build",
         "checks_over_build_node_seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="orders per size (repeatable)")
    parser.add_argument("--clicks-per-order", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median, best and worst reported)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for profiling the gate)")
    args = parser.parse_args(argv)
    server = warehouse_url()
    import dbt.cli.main  # noqa: F401 - imported once, outside the timed build (as bench/transform does)
    sizes = args.orders or [100_000]
    summary, _ = run_sized_rounds("gate", sizes, args.rounds,
                                  lambda n: bench_size(server, n, args.clicks_per_order, args.keep), TIMED,
                                  clicks_per_order=args.clicks_per_order)
    print("\n".join(render_gate({"sizes": sizes, "summary": summary})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
