"""What the scorecard reads: rows of the published marts and the alert table, chosen by the as-of date.

The queries select and group; they compute no KPI. Month-on-month figures come from partner_kpis_monthly, pace from
objective_pace_daily (the row of the as-of date, or a past month's last day), trends from partner_kpis_daily.
Alerts (analytics.kpi_alerts, one row per episode) are grouped per partner and rule: how many, how many still open,
the worst value (the highest for an `above` rule, the lowest for a `below` one) and the periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alliance.schemas import PUBLISHED_SCHEMA

TREND_DAYS = 90  # how far back the trend charts reach from the as-of date

MONTHS = """
    select date_trunc('month', %(as_of)s::date)::date as this_month,
           (date_trunc('month', %(as_of)s::date) - interval '1 month')::date as last_month
"""

MONTHLY = """
    select * from {schema}.partner_kpis_monthly
    where month in (%(this_month)s, %(last_month)s)
    order by partner_id, month
"""

PACE = """
    select distinct on (partner_id, month, metric) *
    from {schema}.objective_pace_daily
    where day <= %(as_of)s and month in (%(this_month)s, %(last_month)s)
    order by partner_id, month, metric, day desc
"""

PACE_DAYS = """
    select partner_id, month, metric, day, attainment_to_date, expected_attainment
    from {schema}.objective_pace_daily
    where day <= %(as_of)s and month in (%(this_month)s, %(last_month)s)
    order by partner_id, month, metric, day
"""

TRENDS = """
    select partner_id, kpi_date, referred_orders, attributed_revenue_rc, conversion_rate, commission_earned_rc
    from {schema}.partner_kpis_daily
    where kpi_date <= %(as_of)s and kpi_date > %(as_of)s::date - %(trend_days)s::int
    order by partner_id, kpi_date
"""

ALERT_GROUPS = """
    select partner_id, rule_id, severity, kind, kpi, comparison,
           count(*) as alerts,
           count(*) filter (where coalesce(state, 'firing') = 'firing') as open_alerts,
           case when comparison = 'above' then max(value) else min(value) end as worst_value,
           array_agg(distinct period order by period) as periods
    from {schema}.kpi_alerts
    where period <= %(as_of)s
    group by partner_id, rule_id, severity, kind, kpi, comparison
    order by count(*) filter (where coalesce(state, 'firing') = 'firing') = 0,
             case severity when 'critical' then 0 when 'warning' then 1 else 2 end, partner_id, rule_id
"""

PAIRS = """
    select referrer_partner_id, destination_partner_id, commission_rc, clawback_rc, adjustments_rc, balance_rc,
           held_rc, held_orders, state
    from {schema}.partner_balances
    where month = %(this_month)s
    order by balance_rc desc, destination_partner_id, referrer_partner_id
"""

SNAPSHOT = "select obj_description(oid, 'pg_namespace') as note from pg_namespace where nspname = %(schema)s"


class ScorecardError(RuntimeError):
    """The published schema lacks what the scorecard reads (nothing published yet, or by an older version)."""


@dataclass(frozen=True)
class ScorecardData:
    """Everything the template shows, as the warehouse returned it."""

    as_of: date
    this_month: date
    last_month: date
    snapshot: str
    monthly: list[dict[str, Any]]
    pace: list[dict[str, Any]]
    pace_days: list[dict[str, Any]]
    trends: list[dict[str, Any]]
    alert_groups: list[dict[str, Any]]
    pairs: list[dict[str, Any]]


def _rows(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    statement = sql.SQL(query).format(schema=sql.Identifier(PUBLISHED_SCHEMA))  # type: ignore[arg-type]
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(statement, params).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        raise ScorecardError(
            f"the warehouse has no published {PUBLISHED_SCHEMA} table the scorecard reads ({exc.diag.message_primary});"
            " publish a run of this version first (`alliance run`)") from None


def read_scorecard(conn: psycopg.Connection, as_of: date) -> ScorecardData:
    """The scorecard's rows for the months of `as_of` (this month) and the one before (last month)."""
    params: dict[str, Any] = {"as_of": as_of, "trend_days": TREND_DAYS, "schema": PUBLISHED_SCHEMA}
    params.update(_rows(conn, MONTHS, params)[0])
    note = _rows(conn, SNAPSHOT, params)
    return ScorecardData(
        as_of=as_of, this_month=params["this_month"], last_month=params["last_month"],
        snapshot=(note[0]["note"] if note else None) or "",
        monthly=_rows(conn, MONTHLY, params), pace=_rows(conn, PACE, params), pace_days=_rows(conn, PACE_DAYS, params),
        trends=_rows(conn, TRENDS, params), alert_groups=_rows(conn, ALERT_GROUPS, params),
        pairs=_rows(conn, PAIRS, params),
    )
