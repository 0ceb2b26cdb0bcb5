"""bench/transform's `--programme` option at a tiny size: every §8 term on for half the contracts, the full build,
the published steady state and the timed incremental run all succeed (the 1M run is the lead's, on a quiet
machine)."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.transform.run import bench_size  # noqa: E402


def test_transform_bench_with_programme_terms_at_a_tiny_size(fresh_database_factory) -> None:
    server = fresh_database_factory("benchsrv")
    result = bench_size(server, 400, 2, keep=True, programme=True)
    assert result["programme_terms"] and result["recomputed_orders"] > 0
    assert result["last_click_differences"] == 0, "holds and caps change commissions, never who is credited"
    with psycopg.connect(server) as conn:
        database = conn.execute("select datname from pg_database where datname like 'alliance_bench_400_%'"
                                " order by oid desc limit 1").fetchone()[0]
    with psycopg.connect(server.rsplit("/", 1)[0] + f"/{database}") as conn:
        states = {r[0] for r in conn.execute("select distinct commission_state from bench_build.fct_order_attribution")}
        tiers = conn.execute("select count(*) from raw.cfg_partners where commission_tiers is not null").fetchone()[0]
        lines = conn.execute("select count(*) from bench_build.commission_adjustments").fetchone()[0]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'drop database "{database}" with (force)')
    assert "held" in states and tiers > 0 and lines > 0, (states, tiers, lines)
