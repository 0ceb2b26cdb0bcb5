"""The whole pipeline through Airflow against the sandbox, checked against an independent oracle.

Real parts only: the sandbox over loopback HTTP, the embedded PostgreSQL, `airflow dags
test` running the real DAGs (metadata in PostgreSQL), dbt, GX, the atomic publish.
Every published commission is compared to tests/oracle.py to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from oracle import compute

from alliance.config import load_config, read_fx_rates
from alliance.demo import load_sandbox_env

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"


@pytest.fixture()
def sandbox(monkeypatch):
    from alliance.sandbox.server import start_sandbox
    from alliance.sandbox.world import build_world

    load_sandbox_env()
    world = build_world(load_config(DEMO, require_secrets=False), seed=42)
    handle = start_sandbox(world)
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    yield world
    handle.stop()


def published(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def assert_matches_oracle(url: str, world) -> None:
    cfg = load_config(DEMO)
    truth = compute(cfg, read_fx_rates(cfg), world.orders, world.clicks, datetime.now(UTC).date())

    orders = {
        (p, o): (cancelled, test, new, commissionable_rc, refunded_rc, net_rc)
        for p, o, cancelled, test, new, commissionable_rc, refunded_rc, net_rc in published(
            url,
            "select partner_id, order_id, is_cancelled, is_test, is_new_customer, commissionable_amount_rc,"
            " refunded_amount_rc, net_amount_rc from analytics.fct_orders",
        )
    }
    assert set(orders) == set(truth.orders), "every sandbox order is published once"
    for key, order in truth.orders.items():
        assert orders[key][1] == order.is_test, key
        assert orders[key][2] == order.is_new_customer, key
        assert orders[key][3] == order.commissionable_amount_rc, key
        assert orders[key][4] == order.refunded_amount_rc, key
        assert orders[key][5] == order.net_amount_rc, key

    rows = published(
        url,
        "select partner_id, order_id, referrer_partner_id, attribution_reason, credit, commission_rc,"
        " commission_state from analytics.fct_order_attribution where attribution_model = 'last_click'",
    )
    got = {(p, o): (ref, reason, credit, commission, state) for p, o, ref, reason, credit, commission, state in rows}
    assert len(got) == len(rows), "one last_click row per order"
    assert set(got) == set(truth.attribution), "attributed orders match (test and cancelled excluded)"
    mismatches = []
    for key, expected in truth.attribution.items():
        ref, reason, credit, commission, state = got[key]
        want = (expected.referrer_partner_id, expected.reason, Decimal(1), expected.commission_rc,
                expected.commission_state)
        if (ref, reason, Decimal(credit), Decimal(commission), state) != want:
            mismatches.append((key, (ref, reason, credit, commission, state), want))
    assert not mismatches, f"{len(mismatches)} attribution rows differ from the oracle: {mismatches[:5]}"
    reasons = {expected.reason for expected in truth.attribution.values()}
    assert reasons == {"code", "click", "organic"}, "the sandbox world exercises every rule"

    earned: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for (referrer, destination, month), amount in truth.balances.items():
        earned[(referrer, destination, month)] += amount
    balances = published(
        url,
        "select referrer_partner_id, destination_partner_id, to_char(month, 'YYYY-MM'), commission_earned_rc"
        " from analytics.partner_balances",
    )
    got_balances = {(r, d, m): Decimal(v) for r, d, m, v in balances if Decimal(v) != 0}
    assert got_balances == {k: v for k, v in earned.items() if v != 0}


def test_airflow_pipeline_matches_oracle_and_reruns_duplicate_nothing(
    warehouse, sandbox, fresh_database_factory, tmp_path, monkeypatch
):
    from alliance.airflow_local import airflow_env, dags_test, ensure_metadata_db

    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        fresh_database_factory("airflow").replace("postgresql://", "postgresql+psycopg://"),
    )
    env = airflow_env(warehouse, DEMO)
    ensure_metadata_db(env)
    log = tmp_path / "airflow.log"
    for dag_id in ("alliance_ingest", "alliance_transform"):
        assert dags_test(dag_id, env, log) == 0, log.read_text()[-5000:]
    assert_matches_oracle(warehouse, sandbox)

    counts_before = published(
        warehouse,
        "select (select count(*) from raw.orders), (select count(*) from raw.clicks),"
        " (select count(*) from analytics.fct_order_attribution), (select count(*) from analytics.kpi_alerts)",
    )
    for dag_id in ("alliance_ingest", "alliance_transform"):
        assert dags_test(dag_id, env, log) == 0, log.read_text()[-5000:]
    counts_after = published(
        warehouse,
        "select (select count(*) from raw.orders), (select count(*) from raw.clicks),"
        " (select count(*) from analytics.fct_order_attribution), (select count(*) from analytics.kpi_alerts)",
    )
    assert counts_after == counts_before, "a second run duplicates nothing"
    assert_matches_oracle(warehouse, sandbox)
    runs = published(warehouse, "select count(*) from ops.runs where status in ('succeeded')")
    assert runs[0][0] >= 2
