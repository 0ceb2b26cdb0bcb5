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
    assert_every_model_matches(url, truth)
    assert_reconciles(url)


def assert_every_model_matches(url: str, truth) -> None:
    """All five models, every row: credit, the allocated revenue columns, leakage, commission and state."""
    rows = published(
        url,
        "select partner_id, order_id, attribution_model, referrer_partner_id, attribution_reason, credit,"
        " attributed_revenue_rc, net_attributed_revenue_rc, refund_leakage_rc, commission_rc, commission_state"
        " from analytics.fct_order_attribution",
    )
    got = {(p, o, m, r): rest for p, o, m, r, *rest in rows}
    assert len(got) == len(rows)
    assert set(got) == set(truth.credits), "same (order, model, referrer) rows as the oracle"
    mismatches = []
    for key, want in truth.credits.items():
        expected = (want.reason, want.credit, want.attributed_revenue_rc, want.net_attributed_revenue_rc,
                    want.refund_leakage_rc, want.commission_rc, want.commission_state)
        if tuple(got[key]) != expected:
            mismatches.append((key, got[key], expected))
    assert not mismatches, f"{len(mismatches)} model rows differ from the oracle: {mismatches[:5]}"
    models = {key[2] for key in truth.credits}
    assert models == {"last_click", "first_click", "linear", "position_based", "time_decay"}
    split = [key for key, c in truth.credits.items() if c.credit not in (0, 1)]
    assert split, "the sandbox world has orders whose credit is split between referrers"
    contracts = {a.contract.type for a in truth.attribution.values() if a.contract is not None}
    assert contracts == {"percent", "flat"}, "the demo exercises both contract types"
    leakage = published(url, "select referrer_partner_id, destination_partner_id, to_char(month, 'YYYY-MM'),"
                             " refund_leakage_rc from analytics.partner_balances where refund_leakage_rc <> 0")
    assert {(r, d, m): v for r, d, m, v in leakage} == {k: v for k, v in truth.leakage.items() if v != 0}
    assert truth.leakage and any(truth.leakage.values()), "the world has refunds after the lock date"


def assert_reconciles(url: str) -> None:
    """Per order and model, referrers + organic = the order's revenue; per month, earned = owed."""
    orders = published(url, """
        select a.partner_id, a.order_id, a.attribution_model
        from analytics.fct_order_attribution a
        join analytics.fct_orders o using (partner_id, order_id)
        group by 1, 2, 3
        having sum(a.credit) <> 1
            or sum(a.attributed_revenue_rc) <> min(o.commissionable_amount_rc)
            or sum(a.net_attributed_revenue_rc) <> min(o.net_amount_rc)
            or sum(a.refund_leakage_rc) <> min(o.refund_leakage_rc)""")
    assert orders == [], f"{len(orders)} (order, model) do not reconcile: {orders[:5]}"
    months = published(url, """
        select k.month, k.earned, k.owed, b.earned, b.owed from (
            select date_trunc('month', kpi_date)::date as month, sum(commission_earned_rc) as earned,
                   sum(commission_owed_rc) as owed
            from analytics.partner_kpis_daily group by 1) k
        full join (
            select month, sum(commission_earned_rc) as earned, sum(commission_owed_rc) as owed
            from analytics.partner_balances group by 1) b using (month)""")
    assert months and all(len({ke, ko, be, bo}) == 1 for _, ke, ko, be, bo in months), months


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
