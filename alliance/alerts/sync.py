"""Mirror the alert rules into raw.cfg_alert_rules: dbt judges every rule (kpi_alert_observations), Python only
reads the verdicts and keeps the episodes."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from alliance.alerts.rules import AlertRule
from alliance.migrate import migrate


def sync_alert_rules(conn: psycopg.Connection, rules: Sequence[AlertRule]) -> None:
    """Replace raw.cfg_alert_rules with these rules, in the caller's transaction."""
    migrate(conn)  # raw.cfg_alert_rules: alliance/migrations/0009_alert_rules.sql
    conn.execute("delete from raw.cfg_alert_rules")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.cfg_alert_rules values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (r.id, r.kind, r.kpi, r.comparison, r.threshold, r.trailing_days,
                 r.min_volume.kpi if r.min_volume else None, r.min_volume.at_least if r.min_volume else 0,
                 r.min_elapsed_days if r.kind == "pace" else None)
                for r in rules
            ],
        )
