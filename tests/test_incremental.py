"""An incremental run gives exactly what a full refresh gives, and does not recompute history.

Real dbt on a real PostgreSQL: a synthetic alliance (bench/transform/generate.py) is built in full, then 1% new
orders and clicks plus changed orders (late refunds, cancellations) land; the incremental build's published tables
must equal, row for row, a `--full-refresh` build of the same data.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.incremental import dbt_build

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.transform.generate import Generator  # noqa: E402

MARTS = ("fct_orders", "fct_referrals", "fct_order_attribution", "partner_kpis_daily", "partner_balances",
         "objective_progress")
SCHEMA = "inc_build"


def snapshot(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"select * from {SCHEMA}.{t} order by 1, 2, 3, 4").fetchall() for t in MARTS}


def test_incremental_equals_full_refresh(fresh_database_factory) -> None:
    url = fresh_database_factory("inc")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        conn.execute((ROOT / "connectors/raw_schema.sql").read_text())
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=datetime(2026, 12, 1, tzinfo=UTC).date())
    gen = Generator(config, seed=11)
    gen.write(url, 3000, history_until=datetime.now(UTC) - timedelta(hours=1), step_seconds=60)

    first = dbt_build(url, SCHEMA, dbt_vars)
    assert first.full_refresh and first.outcome.success, first.outcome.failures

    # 1% new orders (with their clicks, at the end of the window) and 15 changed orders, landed now
    gen.write(url, 30, start=datetime(2026, 11, 5, tzinfo=UTC), span_seconds=5 * 86400)
    assert gen.change(url, 15) == 15
    second = dbt_build(url, SCHEMA, dbt_vars)
    assert not second.full_refresh and second.outcome.success, second.outcome.failures
    with psycopg.connect(url) as conn:
        recomputed = conn.execute(f"select count(*) from {SCHEMA}_work.int_orders__changed").fetchone()[0]
        total = conn.execute("select count(*) from raw.orders").fetchone()[0]
    assert 45 <= recomputed < total * 0.2, "the incremental run recomputes the changed orders, not history"
    incremental = snapshot(url)

    full = dbt_build(url, SCHEMA, dbt_vars, full_refresh=True)
    assert full.outcome.success, full.outcome.failures
    refreshed = snapshot(url)
    for table in MARTS:
        assert incremental[table] == refreshed[table], f"{table} differs between incremental and full refresh"
    assert len(refreshed["fct_orders"]) == 3030
    models = {row[2] for row in refreshed["fct_order_attribution"]}
    assert models == {"last_click", "first_click", "linear", "position_based", "time_decay"}


def test_config_change_forces_full_refresh(fresh_database_factory) -> None:
    url = fresh_database_factory("inc2")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        conn.execute((ROOT / "connectors/raw_schema.sql").read_text())
        sync_config(conn, config)
    Generator(config, seed=3).write(url, 200)
    dbt_vars = dbt_vars_from_config(config)
    assert dbt_build(url, SCHEMA, dbt_vars).full_refresh
    assert not dbt_build(url, SCHEMA, dbt_vars).full_refresh
    assert dbt_build(url, SCHEMA, {**dbt_vars, "lookback_days": 14}).full_refresh
    with psycopg.connect(url) as conn:
        conn.execute("update raw.cfg_contracts set amount = amount + 1 where contract_type = 'flat'")
    assert dbt_build(url, SCHEMA, {**dbt_vars, "lookback_days": 14}).full_refresh
