"""Mirror the alert rules into raw.cfg_alert_rules: dbt judges every rule (kpi_alert_observations), Python only
reads the verdicts and keeps the episodes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import psycopg

from alliance.alerts.rules import AlertRule
from alliance.migrate import migrate

HELD_SHARE_KPI = "held_share"  # the name a held-share rule's observations carry in the kpi column
DEFAULT_MIN_ORDERS = 10  # a held-share rule judges a referrer's month from this many orders on


def _min_volume(rule: AlertRule) -> Decimal:
    """What the rule's window must reach: min_volume for trailing rules, min_orders for held-share rules."""
    if rule.kind == "held_share":
        return Decimal(rule.min_orders or DEFAULT_MIN_ORDERS)
    return rule.min_volume.at_least if rule.min_volume else Decimal(0)


def sync_alert_rules(conn: psycopg.Connection, rules: Sequence[AlertRule]) -> None:
    """Replace raw.cfg_alert_rules with these rules, in the caller's transaction."""
    migrate(conn)  # raw.cfg_alert_rules: alliance/migrations/0009_alert_rules.sql
    conn.execute("delete from raw.cfg_alert_rules")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.cfg_alert_rules (rule_id, rule_kind, kpi, comparison, threshold, trailing_days, "
            "min_volume_kpi, min_volume, min_elapsed_days, method, min_training_days, min_day_volume_kpi, "
            "min_day_volume) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (r.id, r.kind, HELD_SHARE_KPI if r.kind == "held_share" else r.kpi, r.comparison, r.threshold,
                 r.trailing_days, r.min_volume.kpi if r.min_volume else None, _min_volume(r),
                 r.min_elapsed_days if r.kind == "pace" else None, r.method,
                 r.training_days_needed if r.kind == "trailing" else None,
                 r.min_day_volume.kpi if r.min_day_volume else None,
                 r.min_day_volume.at_least if r.min_day_volume else Decimal(0))
                for r in rules
            ],
        )
