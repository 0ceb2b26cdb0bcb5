"""Transform benchmark: full dbt build, incremental run with 1% new data, and a hand-written SQL statement.

    .venv/bin/python -m bench.transform.run --orders 100000 --orders 1000000

For each size, in a fresh database on the warehouse server: synthetic raw data (5 clicks per order) is COPYed into
raw.*, then timed side by side in one run: (1) `dbt build --full-refresh` (models + tests, what a run executes),
(2) 1% new orders with their clicks + 0.1% changed orders land, and the incremental `dbt build` in production's
steady state (the full build and two incremental runs published first, so the build schema is a recycled
snapshot three runs old whose fact tables are updated in place), (3) the
hand-written last-click statement (reference_last_click.sql). `--programme` switches every §8 term on for half the
contracts (bench/transform/programme.py: tiers, caps, clawback; holds, reviews, adjustments) and records the rounds
as bench `transform_programme`. Ratios are printed against the targets
(incremental <= 10% of full, full <= 3x hand-written). `--rounds` (default 3) repeats every size round-robin (a
noisy minute hits each size); every round is appended to bench/results/transform.json (bench/results.py) with the
commit, UTC time and load average, and the median, best and worst round of each figure.

Fair comparison: every table the three read is analysed first; dbt is imported before either build is timed (both
builds then time the same thing: dbt's invocation, parse and the SQL it runs, tests included); the hand-written
statement runs with the same session settings as dbt's connections (alliance.dbt_runner.SESSION_OPTIONS); each of
the three timed steps starts when no autovacuum worker runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import SESSION_OPTIONS, dbt_vars_from_config, target_dir
from alliance.incremental import dbt_build
from alliance.migrate import migrate
from alliance.publish import publish
from alliance.schemas import PUBLISHED_TABLES
from alliance.warehouse import parse_url, warehouse_url
from bench.report import render_transform
from bench.results import run_sized_rounds
from bench.transform.generate import Generated, Generator
from bench.transform.programme import with_programme_terms, with_reviews

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "bench_build"
REFERENCE = Path(__file__).with_name("reference_last_click.sql")


def _database(server: str, name: str) -> str:
    parts = parse_url(server)
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    with psycopg.connect(f"postgresql://{auth}@{parts.host}:{parts.port}/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{name}"


def _phase_seconds() -> dict[str, float]:
    """Seconds per kind of node of the last dbt invocation (run_results.json): intermediate, marts, tests."""
    results = _run_results()
    out = {"intermediate": 0.0, "marts": 0.0, "tests": 0.0}
    for item in results:
        uid = item["unique_id"]
        kind = ("tests" if _is_test(uid) else
                "marts" if ".fct_" in uid or uid.split(".")[-1] in PUBLISHED_TABLES else "intermediate")
        out[kind] += item.get("execution_time") or 0.0
    return {k: round(v, 1) for k, v in out.items()}


def _slowest_nodes(count: int = 12) -> dict[str, float]:
    """The last invocation's slowest nodes (execution seconds): where the next optimisation should look."""
    times = sorted(((item.get("execution_time") or 0.0, item["unique_id"].split(".")[-1]) for item in _run_results()),
                   reverse=True)
    return {name: round(seconds, 1) for seconds, name in times[:count]}


def _run_results() -> list[dict]:
    """The nodes of the last dbt invocation (run_results.json in dbt's target directory)."""
    return json.loads((target_dir() / "run_results.json").read_text())["results"]


def _is_test(unique_id: str) -> bool:
    return unique_id.startswith(("test.", "unit_test."))


def _test_wall_seconds() -> float:
    """Wall-clock seconds during which at least one dbt test ran in the last invocation (run_results.json).

    dbt runs tests on its threads beside models, so summing their execution times counts overlapping seconds twice;
    the union of their execute intervals is the time the build actually spent testing.
    """
    intervals = sorted(
        (datetime.fromisoformat(t["started_at"]).timestamp(), datetime.fromisoformat(t["completed_at"]).timestamp())
        for item in _run_results() if _is_test(item["unique_id"])
        for t in item.get("timing", []) if t.get("name") == "execute" and t.get("started_at")
    )
    total, reached = 0.0, float("-inf")
    for start, end in intervals:  # sorted by start: count only what lies beyond the intervals seen so far
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return round(total, 1)


def _quiesce(url: str, timeout: float = 300.0) -> float:
    """Start a timed step when no autovacuum worker runs: each step's tables are vacuumed after the step before wrote
    them, and without the wait that work lands in whichever step comes next. (No forced checkpoint: right after one,
    every page a step modifies is written to the WAL whole, which would tax the incremental run alone.)"""
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - t0 < timeout and conn.execute(
                "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(0.5)
    return time.perf_counter() - t0


def land_delta(gen: Generator, url: str, orders: int, clicks_per_order: int,
               start: datetime = datetime(2026, 11, 5, tzinfo=UTC)) -> tuple[Generated, int]:
    """What lands between two runs in the steady state: 1% new orders (with their clicks) created in the 5 days from
    `start`, and 0.1% changed orders, then planner statistics for raw.* (bench/freshness.py reaches its steady state
    with this too)."""
    delta = gen.write(url, max(1, orders // 100), clicks_per_order, start=start, span_seconds=5 * 86400)
    changed = gen.change(url, max(1, orders // 1000))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("analyze raw.orders")
        conn.execute("analyze raw.clicks")
    return delta, changed


def bench_size(server: str, orders: int, clicks_per_order: int, keep: bool = False, programme: bool = False) -> dict:
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    folder = Path(tempfile.mkdtemp(prefix="alliance_bench_programme_"))
    if programme:
        config = with_programme_terms(config, folder)
    url = _database(server, f"alliance_bench_{orders}_{uuid.uuid4().hex[:6]}")
    with psycopg.connect(url) as conn:
        migrate(conn)
    gen = Generator(config, seed=orders)
    t0 = time.perf_counter()
    base = gen.write(url, orders, clicks_per_order, history_until=datetime.now(UTC) - timedelta(hours=1))
    if programme:
        config = with_reviews(config, url, folder, count=max(12, orders // 1000))
    with psycopg.connect(url) as conn:
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=datetime(2026, 12, 1, tzinfo=UTC).date())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")  # planner statistics for raw.* and the config tables, as a DBA would
    generated = time.perf_counter() - t0
    print(f"[{orders}] generated {base.orders} orders, {base.clicks} clicks in {generated:.0f}s", flush=True)

    _quiesce(url)
    t0 = time.perf_counter()
    full = dbt_build(url, SCHEMA, dbt_vars, full_refresh=True)
    full_s = time.perf_counter() - t0
    assert full.outcome.success, full.outcome.failures
    full_phases, full_nodes = _phase_seconds(), _slowest_nodes()
    print(f"[{orders}] full build {full_s:.1f}s {full_phases}", flush=True)

    # Production's steady state: every build is published, and the third publish starts recycling the snapshot it
    # retires as the next build schema (alliance/publish.py). Two untimed runs get there; the timed one then brings
    # a snapshot three runs old up to date, as every later run does.
    publish(url, SCHEMA, run_id="bench-full")
    for warmup in ("bench-warmup-1", "bench-warmup-2"):
        land_delta(gen, url, orders, clicks_per_order)
        warm = dbt_build(url, SCHEMA, dbt_vars)
        assert warm.outcome.success and not warm.full_refresh, warm.outcome.failures
        publish(url, SCHEMA, run_id=warmup)
    print(f"[{orders}] published the full build and two incremental runs", flush=True)

    delta, changed = land_delta(gen, url, orders, clicks_per_order)
    _quiesce(url)
    t0 = time.perf_counter()
    inc = dbt_build(url, SCHEMA, dbt_vars)
    inc_s = time.perf_counter() - t0
    assert inc.outcome.success and not inc.full_refresh, inc.outcome.failures
    inc_phases, inc_nodes = _phase_seconds(), _slowest_nodes()
    with psycopg.connect(url) as conn:
        recomputed = conn.execute(f"select count(*) from {SCHEMA}_work.int_orders__changed").fetchone()[0]
    print(f"[{orders}] incremental build {inc_s:.1f}s {inc_phases}, {recomputed} orders recomputed", flush=True)

    sql = REFERENCE.read_text()
    with psycopg.connect(url, autocommit=True, options=SESSION_OPTIONS) as conn:
        conn.execute("analyze")
        conn.execute("create schema if not exists bench_ref")
        conn.execute("drop table if exists bench_ref.last_click")
        _quiesce(url)
        t0 = time.perf_counter()
        conn.execute(sql, {"lock_days": dbt_vars["lock_days"], "lookback_days": dbt_vars["lookback_days"]})
        ref_s = time.perf_counter() - t0
        differ = conn.execute(f"""
            select count(*) from bench_ref.last_click r
            full join (select partner_id, order_id, referrer_partner_id, attribution_reason
                       from {SCHEMA}.fct_order_attribution where attribution_model = 'last_click') d
              using (partner_id, order_id)
            where r.referrer_partner_id is distinct from d.referrer_partner_id
               or r.attribution_reason is distinct from d.attribution_reason""").fetchone()[0]
    print(f"[{orders}] hand-written SQL {ref_s:.1f}s; orders attributed differently from dbt: {differ}", flush=True)
    if keep:
        print(f"[{orders}] kept database {parse_url(url).dbname}", flush=True)
    else:
        with psycopg.connect(server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'drop database if exists "{parse_url(url).dbname}" with (force)')
    return {
        "orders": orders, "programme_terms": programme, "clicks": base.clicks, "new_orders": delta.orders,
        "new_clicks": delta.clicks,
        "changed_orders": changed, "recomputed_orders": recomputed,
        "full_build_s": round(full_s, 1), "full_phases_s": full_phases, "full_slowest_nodes_s": full_nodes,
        "incremental_s": round(inc_s, 1), "incremental_phases_s": inc_phases,
        "incremental_slowest_nodes_s": inc_nodes,
        "hand_sql_s": round(ref_s, 1), "last_click_differences": differ,
        "incremental_over_full": round(inc_s / full_s, 3), "full_over_hand_sql": round(full_s / ref_s, 2),
    }


TIMED = ("full_build_s", "incremental_s", "hand_sql_s", "incremental_over_full", "full_over_hand_sql")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="orders per size (repeatable)")
    parser.add_argument("--clicks-per-order", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median, best and worst reported)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for profiling)")
    parser.add_argument("--programme", action="store_true",
                        help="every §8 programme term on for half the contracts (bench transform_programme)")
    args = parser.parse_args(argv)
    server = warehouse_url()
    import dbt.cli.main  # noqa: F401 - imported once, outside both timed builds
    sizes = args.orders or [100_000]
    bench = "transform_programme" if args.programme else "transform"
    summary, _ = run_sized_rounds(bench, sizes, args.rounds,
                                  lambda n: bench_size(server, n, args.clicks_per_order, args.keep, args.programme),
                                  TIMED,
                                  clicks_per_order=args.clicks_per_order)
    print("\n".join(render_transform({"sizes": sizes, "summary": summary})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
