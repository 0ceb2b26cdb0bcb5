"""Where alerts are kept: `ops.kpi_alerts` is the source of truth (outside the swapped schema);
`analytics.kpi_alerts` is its published copy, re-materialised by every publish and refreshed on evaluation.

One row per alert episode: it fires (state `firing`) when a rule, partner and period breaches, and is
`resolved` (resolved_at set) when the KPI recovers; a later breach of the same period starts a new episode.
`ops.alert_deliveries` is the delivery outbox: a `pending` row per (episode event, routed channel) is written in the
transaction that records the episode, and becomes `sent`, `failed` or `skipped` once the channel was tried. A run
killed between the two leaves `pending` rows that the next evaluation delivers (at least once: receivers dedupe on
alert_id and event).
"""

from __future__ import annotations

import psycopg

from alliance.migrate import migrate

ALERT_COLUMNS = (
    "alert_id", "rule_id", "severity", "partner_id", "kpi", "period", "value", "threshold", "comparison",
    "fired_at", "run_id", "state", "resolved_at", "resolved_run_id", "resolved_value", "kind", "baseline",
)

# A published copy of ops.kpi_alerts (build schema, analytics): created with the snapshot it belongs to, not by a
# migration; alliance/migrations/0006_alerts.sql holds the same columns for ops.kpi_alerts.
KPI_ALERTS_DDL = """
create table if not exists {table} (
    alert_id    text primary key,                 -- rule_id:partner_id:period:episode, deterministic
    rule_id     text not null,
    severity    text not null,
    partner_id  text not null,
    kpi         text not null,
    period      date not null,                    -- the KPI day (kpi_date), or the month for pace rules
    value       numeric,                          -- the KPI (trailing: the day's value; pace: projected attainment)
    threshold   numeric not null,                 -- what it was compared with (trailing: baseline x (1 + change))
    comparison  text not null check (comparison in ('above', 'below')),
    fired_at    timestamptz not null default now(),
    run_id      text not null,
    state       text not null default 'firing' check (state in ('firing', 'resolved')),
    resolved_at timestamptz,
    resolved_run_id text,
    resolved_value numeric,
    kind        text not null default 'threshold',  -- threshold | trailing | pace
    baseline    numeric                            -- trailing rules: the N-day average compared with
)
"""
COPY_UPGRADES = (
    # Copies created before episodes: one row per (rule, partner, period), always firing.
    "alter table {table} drop constraint if exists kpi_alerts_rule_id_partner_id_period_key",
    "alter table {table} add column if not exists state text not null default 'firing'",
    "alter table {table} add column if not exists resolved_at timestamptz",
    "alter table {table} add column if not exists resolved_run_id text",
    "alter table {table} add column if not exists resolved_value numeric",
    "alter table {table} add column if not exists kind text not null default 'threshold'",
    "alter table {table} add column if not exists baseline numeric",
)


def _ensure_table(conn: psycopg.Connection, table: str) -> None:
    conn.execute(KPI_ALERTS_DDL.format(table=table))
    for statement in COPY_UPGRADES:
        conn.execute(statement.format(table=table))


def ensure_ops_alerts(conn: psycopg.Connection) -> None:
    """ops.kpi_alerts and ops.alert_deliveries exist (alliance/migrations/0006_alerts.sql)."""
    migrate(conn)


def copy_alerts(conn: psycopg.Connection, schema: str) -> None:
    """Make `<schema>.kpi_alerts` an exact copy of ops.kpi_alerts (column by column, whatever their order)."""
    _ensure_table(conn, f"{schema}.kpi_alerts")
    columns = ", ".join(ALERT_COLUMNS)
    conn.execute(f"delete from {schema}.kpi_alerts")
    conn.execute(f"insert into {schema}.kpi_alerts ({columns}) select {columns} from ops.kpi_alerts")


def materialise_alerts(conn: psycopg.Connection, schema: str) -> None:
    """Create `<schema>.kpi_alerts` and fill it with every alert of ops.kpi_alerts (used on the build schema)."""
    ensure_ops_alerts(conn)
    copy_alerts(conn, schema)
    conn.execute(
        f"comment on table {schema}.kpi_alerts is "
        "'Every KPI alert episode: fired once per rule, partner and period, resolved when the KPI recovered; "
        "copy of ops.kpi_alerts.'"
    )
