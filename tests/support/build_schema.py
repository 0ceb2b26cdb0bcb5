"""Helpers (no tests) shared by the gate/publish/alerts tests: a tiny build schema with the §5 columns.

The rows reconcile as the gate demands: every attribution model credits the same orders with the same revenue,
and commission earned = owed = 610.00 in attribution (configured model), balances, daily and monthly KPIs; one manual §8
adjustment of 5.00 makes the month's balance 615.00, and both sides' statement lines add up to it.

dbt owns the real marts; these hand-written tables carry only the contract's minimum columns, so the gate and
publish are tested against the contract rather than against one dbt implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from alliance.alerts import AlertRule, sync_alert_rules
from alliance.dbt_runner import run_dbt
from alliance.warehouse import connect

TABLES_DDL = """
create table {s}.fct_orders (
    partner_id text not null, order_id text not null, ordered_at timestamptz, updated_at timestamptz,
    customer_key text, currency text, commissionable_amount numeric, refunded_amount numeric,
    commissionable_amount_rc numeric, refunded_amount_rc numeric, net_amount_rc numeric,
    is_cancelled boolean, is_test boolean, is_new_customer boolean
);
create table {s}.fct_referrals (
    click_id text, referrer_partner_id text, destination_partner_id text, clicked_at timestamptz,
    referral_code text, customer_key text
);
create table {s}.fct_order_attribution (
    partner_id text, order_id text, attribution_model text, referrer_partner_id text, attribution_reason text,
    credit numeric, attributed_revenue_rc numeric, commission_rc numeric, commission_state text,
    net_attributed_revenue_rc numeric default 0, refund_leakage_rc numeric default 0,
    is_commission_model boolean default true, is_commissioned boolean default true, held_rc numeric
);
create table {s}.partner_kpis_daily (
    kpi_date date, partner_id text, clicks_sent bigint, referred_orders bigint, conversion_rate numeric,
    attributed_revenue_rc numeric, net_attributed_revenue_rc numeric, aov_rc numeric, refund_rate numeric,
    new_customer_rate numeric, epc_rc numeric, commission_earned_rc numeric, commission_owed_rc numeric,
    refund_leakage_rc numeric default 0
);
create table {s}.partner_balances (
    referrer_partner_id text, destination_partner_id text, month date, commission_earned_rc numeric,
    commission_owed_rc numeric, state text, net_attributed_revenue_rc numeric default 0,
    refund_leakage_rc numeric default 0, commissioned_orders bigint default 1, held_orders bigint default 0,
    commission_rc numeric default 610.00, clawback_rc numeric default 0, adjustments_rc numeric default 5.00,
    held_rc numeric default 0, balance_rc numeric default 615.00
);
create table {s}.partner_kpis_monthly (
    partner_id text, month date, clicks_sent bigint, referred_orders bigint, conversion_rate numeric,
    attributed_revenue_rc numeric, net_attributed_revenue_rc numeric, commission_earned_rc numeric,
    commission_owed_rc numeric, clawback_rc numeric, adjustments_rc numeric, held_rc numeric, held_orders bigint,
    balance_earned_rc numeric, balance_owed_rc numeric, net_balance_rc numeric
);
create table {s}.commission_adjustments (
    kind text, month date, referrer_partner_id text, destination_partner_id text, order_id text, amount_rc numeric,
    reason text, line_date date, line_key text
);
create table {s}.partner_statement_lines (
    partner_id text, direction text, counterparty_partner_id text, line_key text, month date, referrer_partner_id text,
    destination_partner_id text, line_kind text, in_totals boolean, order_id text, line_date date,
    attribution_model text, credit numeric, commissionable_amount_rc numeric, refunded_before_lock_rc numeric,
    rate_applied numeric, is_capped boolean, amount_rc numeric, held_rc numeric, state text, reason text
);
create table {s}.objective_progress (
    partner_id text, month date, metric text, target numeric, actual numeric, attainment numeric
);
create table {s}.partner_claims (
    claim_id text, referrer_partner_id text, destination_partner_id text, order_id text, claimed_at timestamptz,
    status text, reason text, claimant_credit numeric, credited_referrers text, source_file text, source_line integer
);
"""

GOOD_ROWS = """
insert into {s}.fct_orders
select 'northwind', 'o' || g, timestamptz '2026-10-01 10:00+00' + g * interval '1 hour',
       timestamptz '2026-10-02 10:00+00', 'k' || g, 'USD', 100.00, 0, 100.00, 0, 100.00, false, false, g = 1
from generate_series(1, {n}) g;
insert into {s}.fct_referrals
select 'c' || g, 'lumen', 'northwind', timestamptz '2026-10-01 09:00+00', null, 'k' || g
from generate_series(1, {n}) g;
insert into {s}.fct_order_attribution
select 'northwind', 'o' || g, 'last_click', 'lumen', 'click', 1, 100.00, case when g = 1 then 610.00 else 0 end,
       'pending'
from generate_series(1, {n}) g;
insert into {s}.fct_order_attribution (partner_id, order_id, attribution_model, referrer_partner_id,
    attribution_reason, credit, attributed_revenue_rc, commission_rc, commission_state, is_commission_model)
select 'northwind', 'o' || g, 'linear', null, 'organic', 1, 100.00, null, null, false
from generate_series(2, {n}) g
union all values
    ('northwind', 'o1', 'linear', 'lumen', 'click', 0.5, 50.00, null::numeric, null, false),
    ('northwind', 'o1', 'linear', 'tidewater', 'click', 0.5, 50.00, null, null, false);
insert into {s}.partner_kpis_daily values
    ('2026-10-01', 'lumen', 100, 1, 0.01, 100.00, 100.00, 100.00, 0.30, 0.5, 1.00, 600.00, 0),
    ('2026-10-01', 'northwind', 0, 0, 0.05, 0, 0, 0, 0, 0, 0, 0, 600.00),
    ('2026-10-02', 'lumen', 10, 1, 0.10, 100.00, 100.00, 100.00, 0, 0, 10.00, 10.00, 0),
    ('2026-10-02', 'northwind', 0, 0, null, 0, 0, null, 0, 0, 0, 0, 10.00);
insert into {s}.partner_balances values ('lumen', 'northwind', '2026-10-01', 610.00, 610.00, 'pending');
insert into {s}.partner_kpis_monthly values
    ('lumen', '2026-10-01', 110, 2, 0.0182, 200.00, 200.00, 610.00, 0, 0, 5.00, 0, 0, 615.00, 0, 615.00),
    ('northwind', '2026-10-01', 0, 0, null, 0, 0, 0, 610.00, 0, 0, 0, 0, 0, 615.00, -615.00);
insert into {s}.commission_adjustments values
    ('manual', '2026-10-01', 'lumen', 'northwind', null, 5.00, 'launch bonus', '2026-10-01', 'manual:2');
insert into {s}.partner_statement_lines
select case when d = 'earned' then 'lumen' else 'northwind' end, d, case when d = 'earned' then 'northwind' else
       'lumen' end, key, '2026-10-01', 'lumen', 'northwind', kind, true, oid, day,
       model, credit, amount, 0, null, false, rc, null, 'pending', reason
from (values ('order', 'order:o1', 'o1', date '2026-10-01', 'last_click', 1, 100.00, 610.00, null),
             ('manual', 'manual:2', null, date '2026-10-01', null, null, null, 5.00, 'launch bonus'))
     as l (kind, key, oid, day, model, credit, amount, rc, reason)
cross join (values ('earned'), ('owed')) as d (d);
insert into {s}.objective_progress values ('northwind', '2026-10-01', 'referred_orders', 200, {n}, {n} / 200.0);
insert into {s}.partner_claims values ('claim-1', 'lumen', 'northwind', 'o1', '2026-11-01 00:00+00', 'credited',
    'credited to lumen (1) by click', 1, 'lumen', 'claims.csv', 2);
"""


def make_build_schema(
    url: str, schema: str = "alliance_build", rows: int = 5, rules: Sequence[AlertRule] | None = None
) -> None:
    """Create `schema` with all published tables filled with `rows` consistent, valid rows (and, given alert
    rules, dbt's judgement of them: see judge_alert_rules)."""
    with connect(url) as conn:
        conn.execute(f"drop schema if exists {schema} cascade")  # e.g. a snapshot recycled by the last publish
        conn.execute(f"create schema {schema}")
        conn.execute(TABLES_DDL.format(s=schema))
        conn.execute(GOOD_ROWS.format(s=schema, n=rows))
    if rules is not None:
        judge_alert_rules(url, rules, schema)


def judge_alert_rules(
    url: str, rules: Sequence[AlertRule], schema: str = "alliance_build", as_of: date | None = None
) -> None:
    """Build dbt's kpi_alert_observations for `rules` over the KPI tables of `schema`, as a transform does (the alert
    evaluator reads only that table): the rules mirrored into raw.cfg_alert_rules, then the real models (the pace
    rules read objective_pace_daily, built from the schema's objective_progress and partner_kpis_daily)."""
    with connect(url) as conn:
        sync_alert_rules(conn, rules)
    models = "stg_cfg__alert_rules objective_pace_daily kpi_alert_observations"
    outcome = run_dbt(["run", "--select", models], url, schema, {"as_of_date": as_of.isoformat() if as_of else ""})
    assert outcome.success, outcome.failures


def table_counts(url: str, schema: str) -> dict[str, int]:
    """Row count of every table in `schema`, for before/after comparisons."""
    with connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = %s order by 1", (schema,))]
        return {n: conn.execute(f'select count(*) from {schema}."{n}"').fetchone()[0] for n in names}
