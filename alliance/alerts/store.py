"""Where fired alerts are kept: `ops.kpi_alerts` is the source of truth (outside the swapped schema);
`analytics.kpi_alerts` is its published copy, re-materialised by every publish and appended to on firing."""

from __future__ import annotations

import psycopg

ALERT_COLUMNS = (
    "alert_id", "rule_id", "severity", "partner_id", "kpi", "period", "value", "threshold", "comparison",
    "fired_at", "run_id",
)

KPI_ALERTS_DDL = """
create table if not exists {table} (
    alert_id    text primary key,                 -- rule_id:partner_id:period, deterministic
    rule_id     text not null,
    severity    text not null,
    partner_id  text not null,
    kpi         text not null,
    period      date not null,                    -- the KPI day (kpi_date)
    value       numeric,
    threshold   numeric not null,
    comparison  text not null check (comparison in ('above', 'below')),
    fired_at    timestamptz not null default now(),
    run_id      text not null,
    unique (rule_id, partner_id, period)          -- fires once per rule, partner and period
)
"""


def ensure_ops_alerts(conn: psycopg.Connection) -> None:
    """Create ops.kpi_alerts (idempotent); the caller owns the transaction."""
    conn.execute("create schema if not exists ops")
    conn.execute(KPI_ALERTS_DDL.format(table="ops.kpi_alerts"))


def materialise_alerts(conn: psycopg.Connection, schema: str) -> None:
    """Create `<schema>.kpi_alerts` and fill it with every alert of ops.kpi_alerts (used on the build schema)."""
    ensure_ops_alerts(conn)
    conn.execute(KPI_ALERTS_DDL.format(table=f"{schema}.kpi_alerts"))
    conn.execute(
        f"insert into {schema}.kpi_alerts select * from ops.kpi_alerts on conflict do nothing"
    )
    conn.execute(
        f"comment on table {schema}.kpi_alerts is "
        "'Every KPI alert fired (once per rule, partner and day); copy of ops.kpi_alerts.'"
    )
