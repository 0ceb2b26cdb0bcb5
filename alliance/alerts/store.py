"""Where alerts are kept: `ops.kpi_alerts` is the source of truth (outside the swapped schema);
`analytics.kpi_alerts` is its published copy, created with every publish and kept in step on evaluation.

One row per alert episode: it fires (state `firing`) when a rule, partner and period breaches, and is
`resolved` (resolved_at set) when the KPI recovers; a later breach of the same period starts a new episode.
`ops.alert_deliveries` is the delivery outbox: a `pending` row per (episode event, routed channel) is written in the
transaction that records the episode, and becomes `sent`, `failed` or `skipped` once the channel was tried. A run
killed between the two leaves `pending` rows that the next evaluation delivers (at least once: receivers dedupe on
alert_id and event).

Why two functions with different locks (PRODUCT.md §5: alert evaluation appends "without a lock that would block a
reader"): the table's shape is set in one place, alliance/migrations/0006_alerts.sql for ops.kpi_alerts, and the
published copy is created `like` it, by `materialise_alerts` on the build schema only (no reader sees that schema
before the swap). On the live `analytics`, `sync_alerts` runs DML only (ROW EXCLUSIVE, which no reader's ACCESS
SHARE waits for): it upserts the episodes that are new or changed and leaves the others' rows untouched. Any
ALTER TABLE, even a no-op `add column if not exists`, takes ACCESS EXCLUSIVE and queues every BI read behind the
oldest open one; a change to the shape is therefore a migration that alters ops.kpi_alerts and the published copies
(as 0013 does).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from alliance.migrate import migrate

ALERT_COLUMNS = (
    "alert_id", "rule_id", "severity", "partner_id", "kpi", "period", "value", "threshold", "comparison",
    "fired_at", "run_id", "state", "resolved_at", "resolved_run_id", "resolved_value", "kind", "baseline",
)
KEY = "alert_id"
TABLE_COMMENT = ("Every KPI alert episode: fired once per rule, partner and period, resolved when the KPI recovered; "
                 "copy of ops.kpi_alerts.")


def ensure_ops_alerts(conn: psycopg.Connection) -> None:
    """ops.kpi_alerts and ops.alert_deliveries exist (alliance/migrations/0006_alerts.sql)."""
    migrate(conn)


def _copy(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, "kpi_alerts")


def _columns(prefix: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.Identifier(prefix, c) if prefix else sql.Identifier(c) for c in ALERT_COLUMNS)


def create_alerts_copy(conn: psycopg.Connection, schema: str) -> None:
    """DDL, for a schema no reader sees yet (the build schema): an empty `<schema>.kpi_alerts` shaped like
    ops.kpi_alerts, keyed by alert_id. Only the primary key is copied, not the one-firing-episode index: the copy
    follows ops, it does not judge."""
    table = _copy(schema)
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    conn.execute(sql.SQL("create table {} (like ops.kpi_alerts including defaults including constraints)")
                 .format(table))
    conn.execute(sql.SQL("alter table {} add primary key ({})").format(table, sql.Identifier(KEY)))
    conn.execute(sql.SQL("comment on table {} is {}").format(table, sql.Literal(TABLE_COMMENT)))


def sync_alerts(conn: psycopg.Connection, schema: str) -> None:
    """DML only (ROW EXCLUSIVE): make `<schema>.kpi_alerts` an exact copy of ops.kpi_alerts again.

    Only rows that differ are written: a new episode is inserted, a resolved (or otherwise changed) one updated by
    alert_id, one that ops no longer has (a copy restored by a rollback can be ahead) deleted; unchanged rows are
    not touched, so the table is not rewritten and readers holding it never wait.
    """
    table = _copy(schema)
    set_clause = sql.SQL(", ").join(
        sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in ALERT_COLUMNS if c != KEY)
    changed = sql.SQL(
        "insert into {table} ({cols}) select {o_cols} from ops.kpi_alerts o"
        " where not exists (select from {table} a where a.{key} = o.{key}"
        " and ({a_cols}) is not distinct from ({o_cols}))"
        " on conflict ({key}) do update set {set_clause}"
    ).format(table=table, cols=_columns(), o_cols=_columns("o"), a_cols=_columns("a"), key=sql.Identifier(KEY),
             set_clause=set_clause)
    conn.execute(changed)
    conn.execute(sql.SQL(
        "delete from {table} a where not exists (select from ops.kpi_alerts o where o.{key} = a.{key})"
    ).format(table=table, key=sql.Identifier(KEY)))


def materialise_alerts(conn: psycopg.Connection, schema: str) -> None:
    """Create `<schema>.kpi_alerts` and fill it with every alert of ops.kpi_alerts (the build schema, at publish)."""
    ensure_ops_alerts(conn)
    create_alerts_copy(conn, schema)
    conn.execute(sql.SQL("insert into {} ({cols}) select {cols} from ops.kpi_alerts")
                 .format(_copy(schema), cols=_columns()))
