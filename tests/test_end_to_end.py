"""The whole pipeline against the sandbox, every published table checked against an independent oracle.

Real parts only: the sandbox over loopback HTTP, the embedded PostgreSQL, `airflow dags test` running the real DAGs
(metadata in PostgreSQL), dbt, GX, the atomic publish, the alert evaluation. tests/oracle.py recomputes every column
of every row of every published table from the config file, the FX CSV and the payloads the sandbox serves;
tests/oracle_compare.py compares cell by cell (missing and extra rows included). One pipeline run per config
variant: `tests/data/oracle_alliance.yml` (Shopify + WooCommerce in EUR, overlapping contracts, last_click) through
Airflow, and config/demo.yml (Shopify in EUR) with `attribution.model: time_decay` in-process.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import oracle
import psycopg
import pytest
from oracle_compare import TABLE_KEYS, compare_published, summarize

from alliance.config import load_config
from devstack.sandbox.env import load_sandbox_env
from devstack.sandbox.shopify_graphql import served_orders

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"
WORLD_CONFIG = ROOT / "tests" / "data" / "oracle_alliance.yml"
RULES = ROOT / "tests" / "data" / "oracle_alerts.yml"  # one rule of each kind
AS_OF = date(2026, 12, 5)  # the in-process run's "today": October locked (lock 11-30), November pending (12-30)
# the Airflow runs' "today" (ALLIANCE_AS_OF): October locked, and November still in the month rules' two-day detection
# window, so alerts fire (pace, held share)
DAG_AS_OF = date(2026, 12, 1)


@contextmanager
def sandbox_for(config_path: Path, monkeypatch) -> Iterator:
    from devstack.sandbox.server import start_sandbox
    from devstack.sandbox.world import build_world, woocommerce_credentials

    load_sandbox_env()
    cfg = load_config(config_path, require_secrets=False)
    for partner in cfg.partners:
        if partner.platform == "woocommerce":
            monkeypatch.setenv(partner.credentials_env, woocommerce_credentials(partner.id))
    world = build_world(cfg, seed=42)
    handle = start_sandbox(world)
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    try:
        yield world
    finally:
        handle.stop()


def model_variant(config_path: Path, model: str, rules: Path, directory: Path) -> Path:
    """The same alliance with another configured attribution model and rules file (paths made absolute)."""
    text = config_path.read_text()
    assert "model: last_click" in text
    text = text.replace("model: last_click", f"model: {model}")
    text = text.replace("fx_rates: demo_fx_rates.csv", f"fx_rates: {config_path.parent / 'demo_fx_rates.csv'}")
    text = text.replace("alerts: alerts.yml", f"alerts: {rules}")
    text = text.replace("claims: demo_claims.csv", f"claims: {config_path.parent / 'demo_claims.csv'}")
    path = directory / f"{config_path.stem}_{model}.yml"
    path.write_text(text)
    return path


def ingest_and_transform(config_path: Path, url: str, as_of: date):
    """Ingest everything the sandbox serves and transform in-process at `as_of`; the run and when the ingest began
    (for the oracle's future-dated cut, §7)."""
    from alliance.run import transform
    from connectors.ingest import ingest_all

    cfg = load_config(config_path)
    landed = datetime.now(UTC)
    results = ingest_all(cfg, url)
    assert all(getattr(r, "ok", True) for r in results), results
    outcome = transform(cfg, url, as_of=as_of)
    assert outcome.published, outcome.failures
    return outcome, landed


def oracle_truth(config_path: Path, world, as_of: date, alerts_as_of: date | None = None,
                 landed_at: datetime | None = None) -> oracle.OracleResult:
    """The oracle on what the sandbox serves now; `landed_at`: when the ingest started (records dated more than
    10 minutes after it are quarantined, §7)."""
    with world.lock:
        return oracle.compute(oracle.load_config(config_path), None, served_orders(world), world.clicks, as_of,
                              refunds=world.refunds, alerts_as_of=alerts_as_of, landed_at=landed_at)


def published(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def assert_matches_oracle(url: str, truth: oracle.OracleResult) -> None:
    diffs = compare_published(url, truth, os.environ["ALLIANCE_PII_SALT"])
    assert not diffs, summarize(diffs)
    assert_reconciles(url)


def assert_world_exercises_the_rules(world, truth: oracle.OracleResult) -> None:
    """The comparison means something only if the world holds the cases: say which ones, by scenario."""
    reasons = {a.reason for a in truth.attribution.values()}
    assert reasons == {"code", "click", "organic"}, "the world exercises every §6 rule"
    assert [k for k, c in truth.credits.items() if c.credit not in (0, 1)], "some credit is split between referrers"
    assert {a.contract.type for a in truth.attribution.values() if a.contract} == {"percent", "flat"}
    assert truth.leakage and any(truth.leakage.values()), "the world has refunds after the lock date"
    assert any(o.is_cancelled and not o.counts_as_cancelled for o in truth.orders.values()), "cancelled after lock"
    assert {b.state for b in truth.balance_rows.values()} <= {"locked", "pending"}
    assert truth.kpis and truth.objectives and truth.alerts, "KPI rows, objectives and some firing alert"
    assert any(o.currency != "USD" for o in truth.orders.values()), "a non-USD storefront"


def assert_programme_terms_exercised(truth: oracle.OracleResult) -> None:
    """§8: the world's contracts use every term, and the data reaches each of them (tests/data/oracle_alliance.yml)."""
    rows = [c for c in truth.credits.values() if c.model == truth.configured_model and c.referrer_partner_id]
    assert {"held", "rejected", "approved", "locked", "pending"} <= {c.commission_state for c in rows}
    assert any(c.contract.tiers and c.rate_applied in {t for _, t in c.contract.tiers} for c in rows), "a tier rate"
    assert any(c.contract.cap_per_order is not None and c.commission_rc == c.contract.cap_per_order for c in rows)
    assert any(c.cap_room is not None and c.is_commissioned and c.commission_rc == c.cap_room for c in rows)
    assert {line.kind for line in truth.lines.values()} == {"clawback", "manual", "approval"}
    assert any(line.order_id and "refund" in line.reason for line in truth.lines.values()), "a late refund"
    assert any(b.held_rc > 0 for b in truth.balance_rows.values()), "a month with held rows"


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
        select month, coalesce(k.earned, 0), coalesce(k.owed, 0), coalesce(b.earned, 0), coalesce(b.owed, 0) from (
            select date_trunc('month', kpi_date)::date as month, sum(commission_earned_rc) as earned,
                   sum(commission_owed_rc) as owed
            from analytics.partner_kpis_daily group by 1) k
        full join (
            select month, sum(commission_earned_rc) as earned, sum(commission_owed_rc) as owed
            from analytics.partner_balances group by 1) b using (month)""")
    assert months and all(len({ke, ko, be, bo}) == 1 for _, ke, ko, be, bo in months), months
    lines = published(url, """
        select b.referrer_partner_id, b.destination_partner_id, b.month from analytics.partner_balances b
        left join (select referrer_partner_id, destination_partner_id, month, sum(amount_rc) as lines_rc
                   from analytics.commission_adjustments group by 1, 2, 3) l
            using (referrer_partner_id, destination_partner_id, month)
        where b.balance_rc <> b.commission_rc + coalesce(l.lines_rc, 0)""")
    assert lines == [], f"balances do not add up to commission + lines: {lines[:5]}"


def test_airflow_pipeline_matches_oracle_and_reruns_duplicate_nothing(
    warehouse, fresh_database_factory, tmp_path, monkeypatch
):
    """Shopify + WooCommerce (EUR: trash, failed, coupons, `_alliance_ref`, /refunds, refunds past zero),
    overlapping contracts, last_click, config/alerts.yml; through Airflow: a run, a rerun that changes nothing,
    and a run after a trashed order is restored and another edited in the trash."""
    from devstack.airflow_local import airflow_env, dags_test, ensure_metadata_db

    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALLIANCE_STATEMENTS_DIR", str(tmp_path / "home" / "statements"))
    monkeypatch.setenv("ALLIANCE_AS_OF", DAG_AS_OF.isoformat())  # the DAG's "today" (airflow_support.dag_as_of)
    monkeypatch.setenv(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        fresh_database_factory("airflow").replace("postgresql://", "postgresql+psycopg://"),
    )
    with sandbox_for(WORLD_CONFIG, monkeypatch) as world:
        env = airflow_env(warehouse, WORLD_CONFIG)
        ensure_metadata_db(env)
        log = tmp_path / "airflow.log"
        landed = datetime.now(UTC)
        for dag_id in ("alliance_ingest", "alliance_transform"):
            assert dags_test(dag_id, env, log) == 0, log.read_text()[-5000:]
        truth = oracle_truth(WORLD_CONFIG, world, DAG_AS_OF, alerts_as_of=DAG_AS_OF, landed_at=landed)
        assert_world_exercises_the_rules(world, truth)
        assert_woocommerce_cases(world, truth)
        assert_programme_terms_exercised(truth)
        held_months = [o for o in truth.observations.values() if o.rule_kind == "held_share"]
        assert held_months and any(o.value > 0 for o in held_months), "the held-share rule judges months with holds"
        assert_matches_oracle(warehouse, truth)
        # §9.1 the DAG's statements task issued every locked month (October's lock date, 11-30, is before DAG_AS_OF)
        issues_sql = "select month, partner_id, revision, revised_at from ops.statement_issues order by 1, 2"
        issued = published(warehouse, issues_sql)
        assert date(2026, 10, 1) in {m for m, _, _, _ in issued}
        assert all(revision == 0 and revised_at is None for _, _, revision, revised_at in issued)
        assert all((tmp_path / "home" / "statements" / f"{m:%Y-%m}" / f"{p}.html").is_file() for m, p, _, _ in issued)

        count_sql = ("select (select count(*) from raw.orders), (select count(*) from raw.clicks),"
                     " (select count(*) from analytics.fct_order_attribution),"
                     " (select count(*) from analytics.kpi_alerts)")
        counts_before = published(warehouse, count_sql)
        landed = datetime.now(UTC)
        for dag_id in ("alliance_ingest", "alliance_transform"):
            assert dags_test(dag_id, env, log) == 0, log.read_text()[-5000:]
        assert published(warehouse, count_sql) == counts_before, "a second run duplicates nothing"
        assert published(warehouse, issues_sql) == issued, "a run that changes nothing revises no statement"
        assert_matches_oracle(warehouse, oracle_truth(WORLD_CONFIG, world, DAG_AS_OF, alerts_as_of=DAG_AS_OF,
                                                      landed_at=landed))

        # The storefront changes after a publish: a trashed order is restored (no longer cancelled, so it resets the
        # click its customer's next order had), another is edited in the trash (§3: still cancelled at the first
        # trashed version's date_modified_gmt). The oracle sees every version served.
        restored, edited = world.scenarios["woo_trash"][0], world.scenarios["woo_trash_after_lock"][0]
        with world.lock:
            earlier = [copy.deepcopy(world.find_order(r["partner_id"], r["order_id"])) for r in (restored, edited)]
        world.update_order(restored["partner_id"], restored["order_id"], status="processing")
        world.update_order(edited["partner_id"], edited["order_id"])
        firing_before = {a for (a,) in published(warehouse, "select alert_id from analytics.kpi_alerts")}
        landed = datetime.now(UTC)
        for dag_id in ("alliance_ingest", "alliance_transform"):
            assert dags_test(dag_id, env, log) == 0, log.read_text()[-5000:]
        versions = {p: list(orders) for p, orders in served_orders(world).items()}
        for ref, version in zip((restored, edited), earlier, strict=True):
            versions[ref["partner_id"]].append(version)
        with world.lock:
            truth = oracle.compute(oracle.load_config(WORLD_CONFIG), None, versions, world.clicks,
                                   DAG_AS_OF, refunds=world.refunds, alerts_as_of=DAG_AS_OF, landed_at=landed)
        key = (restored["partner_id"], str(restored["order_id"]))
        assert not truth.orders[key].is_cancelled and truth.attribution[key].reason == "code"
        assert truth.attribution[assert_after_trash_key(world)].reason == "organic", "the restored order reset it"
        diffs = compare_published(warehouse, truth, os.environ["ALLIANCE_PII_SALT"],
                                  tables=tuple(t for t in TABLE_KEYS if t != "kpi_alerts"))
        # includes the order edited while in the trash: cancelled at its FIRST trashed version (§3), not the edit's
        assert not diffs, summarize(diffs)
        # alerts: the episodes of periods still breaching stay firing, new breaches fire, recovered ones resolve
        states = published(warehouse, "select alert_id, state from analytics.kpi_alerts")
        firing = {a for a, state in states if state == "firing"}
        resolved = {a for a, state in states if state == "resolved"}
        assert firing == set(truth.alerts) and resolved == firing_before - set(truth.alerts)
    runs = published(warehouse, "select count(*) from ops.runs where status in ('succeeded')")
    assert runs[0][0] >= 3


def assert_after_trash_key(world) -> tuple[str, str]:
    ref = world.scenarios["woo_after_trash_click"][0]
    return (ref["partner_id"], str(ref["order_id"]))


def assert_woocommerce_cases(world, truth: oracle.OracleResult) -> None:
    """The WooCommerce scenarios are in the world and the oracle reads them as §3 says."""
    def order(name: str):
        ref = world.scenarios[name][0]
        return truth.orders[(ref["partner_id"], str(ref["order_id"]))]

    trashed, failed, late = order("woo_trash"), order("woo_failed"), order("woo_trash_after_lock")
    assert trashed.platform == "woocommerce" and trashed.is_cancelled and trashed.counts_as_cancelled
    assert trashed.cancelled_at == trashed.updated_at, "trash: cancelled at the version's date_modified_gmt"
    assert failed.is_cancelled and failed.key not in truth.attribution
    assert late.is_cancelled and not late.counts_as_cancelled and truth.attribution[late.key].commission_rc > 0
    after = truth.attribution[order("woo_after_trash_click").key]
    assert after.reason == "click", "a trashed order is no purchase: the earlier click still counts"
    past = order("refund_past_zero")
    assert past.refunded_before_lock > past.commissionable_amount and past.net_amount_rc < 0
    assert truth.attribution[past.key].commission_rc == 0 and truth.attribution[past.key].contract.type == "percent"
    brightpath = {a.contract.rate for a in truth.attribution.values()
                  if a.referrer_partner_id == "brightpath" and a.partner_id == "northwind"}
    assert {Decimal("0.05"), Decimal("0.06")} <= brightpath, "both overlapping brightpath contracts price orders"
    assert any(o.codes for o in truth.orders.values() if o.platform == "woocommerce"), "coupon codes / _alliance_ref"
    assert any(o.actual == 0 for o in truth.objectives.values()), "an objective with no activity (actual 0)"
    alone = order("only_order_of_month_refunded")
    zero = truth.balance_rows[(truth.attribution[alone.key].referrer_partner_id, alone.partner_id,
                               alone.ordered_at.date().replace(day=1))]
    assert (zero.attributed_orders, zero.commission_rc, zero.state) == (1, 0, "locked"), "a zero balance row"
    owes = truth.kpis[(alone.ordered_at.date(), alone.partner_id)]
    assert (owes.clicks_sent, owes.referred_orders, owes.commission_owed_rc) == (0, 0, 0), "owes 0.00 only"


def test_time_decay_variant_in_process_matches_oracle(warehouse, tmp_path, monkeypatch):
    """config/demo.yml (Shopify storefronts, lumen in EUR) with time_decay driving commissions, a rules file with
    every kind of rule, and an injected "today" (AS_OF), run in-process (ingest, transform)."""
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "home"))
    config_path = model_variant(DEMO, "time_decay", RULES, tmp_path)
    with sandbox_for(config_path, monkeypatch) as world:
        _, landed = ingest_and_transform(config_path, warehouse, AS_OF)
        truth = oracle_truth(config_path, world, AS_OF, alerts_as_of=AS_OF, landed_at=landed)
    assert truth.configured_model == "time_decay"
    assert_world_exercises_the_rules(world, truth)
    claims = {t.status for t in truth.claims.values()}  # config/demo_claims.csv, judged under time_decay
    assert len(claims) >= 5 and {"credited", "credited_to_other", "outside_window", "no_click"} <= claims, claims
    assert {a.kind for a in truth.alerts.values()} == {"threshold", "trailing", "pace"}
    assert {b.state for b in truth.balance_rows.values()} == {"locked", "pending"}
    assert_matches_oracle(warehouse, truth)
    assert_comparison_sees_damage(warehouse, truth)


def assert_comparison_sees_damage(url: str, truth: oracle.OracleResult) -> None:
    """The comparison can fail: a changed cell, a lost row and an extra row are each reported, and nothing else."""
    with psycopg.connect(url) as conn:
        day, partner = conn.execute("select kpi_date, partner_id from analytics.partner_kpis_daily"
                                    " order by 1, 2 limit 1").fetchone()
        conn.execute("update analytics.partner_kpis_daily set epc_rc = coalesce(epc_rc, 0) + 0.01"
                     " where kpi_date = %s and partner_id = %s", (day, partner))
        lost = conn.execute("delete from analytics.partner_balances where ctid = (select ctid from"
                            " analytics.partner_balances order by referrer_partner_id, destination_partner_id,"
                            " month limit 1) returning referrer_partner_id, destination_partner_id, month").fetchone()
        conn.execute("insert into analytics.objective_progress (partner_id, month, metric, target, actual, attainment)"
                     " values ('lumen', '2026-10-01', 'clicks_sent', 1, 0, 0)")
    got = {(d.table, d.column, d.key) for d in compare_published(url, truth, os.environ["ALLIANCE_PII_SALT"])}
    assert got == {("partner_kpis_daily", "epc_rc", (day, partner)), ("partner_balances", "<row>", tuple(lost)),
                   ("objective_progress", "<row>", ("lumen", date(2026, 10, 1), "clicks_sent"))}, got


@pytest.mark.parametrize("path", [WORLD_CONFIG, DEMO])
def test_oracle_reads_the_config_like_the_product(path):
    """The oracle parses the config itself; on the basics it must agree with alliance.config."""
    mine, theirs = oracle.load_config(path), load_config(path, require_secrets=False)
    assert mine.model == theirs.attribution.model and mine.lock_days == theirs.lock_days
    assert [p.id for p in mine.partners] == [p.id for p in theirs.partners]
    assert [len(p.contracts) for p in mine.partners] == [len(p.contracts) for p in theirs.partners]
    assert mine.fx_rates.resolve() == theirs.fx_rates.resolve() and mine.alerts.resolve() == theirs.alerts.resolve()
