"""Evaluate alert rules on the published partner_kpis_daily; record and send only newly fired alerts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel

from alliance.alerts.channels import Channel, LogChannel
from alliance.alerts.rules import KPI_COLUMNS, AlertRule
from alliance.alerts.store import ALERT_COLUMNS, ensure_ops_alerts
from alliance.publish import PUBLISH_LOCK_KEY, PUBLISHED_SCHEMA
from alliance.warehouse import connect

log = logging.getLogger(__name__)


class AlertError(RuntimeError):
    """Alerts cannot be evaluated (nothing published yet)."""


class FiredAlert(BaseModel):
    """A row of analytics.kpi_alerts."""

    alert_id: str
    rule_id: str
    severity: str
    partner_id: str
    kpi: str
    period: date
    value: Decimal | None
    threshold: Decimal
    comparison: str
    fired_at: datetime
    run_id: str


def _insert_sql(rule: AlertRule, dated: bool) -> str:
    assert rule.kpi in KPI_COLUMNS  # validated by AlertRule; the column name is interpolated
    operator = ">" if rule.comparison == "above" else "<"
    columns = ", ".join(ALERT_COLUMNS)
    return f"""
        insert into ops.kpi_alerts ({columns})
        select %(rule_id)s || ':' || k.partner_id || ':' || k.kpi_date::text, %(rule_id)s, %(severity)s,
               k.partner_id, %(kpi)s, k.kpi_date, k.{rule.kpi}, %(threshold)s, %(comparison)s, now(), %(run_id)s
        from {PUBLISHED_SCHEMA}.partner_kpis_daily k
        where k.{rule.kpi} {operator} %(threshold)s {"and k.kpi_date <= %(as_of)s" if dated else ""}
        order by k.kpi_date, k.partner_id
        on conflict do nothing
        returning {columns}
    """


def evaluate_alerts(
    warehouse_url: str,
    rules: Sequence[AlertRule],
    run_id: str,
    as_of: date | None = None,
    channels: Sequence[Channel] | None = None,
) -> list[FiredAlert]:
    """Fire each rule once per (partner, kpi_date) on published data, up to `as_of` (all days when None).

    Recording happens in one transaction under the publish lock, so a concurrent publish cannot drop an alert
    between ops.kpi_alerts and analytics.kpi_alerts; channels are called only after the commit.
    """
    fired: list[FiredAlert] = []
    with connect(warehouse_url) as conn:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
            published = conn.execute(
                "select to_regclass(%s), to_regclass(%s)",
                (f"{PUBLISHED_SCHEMA}.partner_kpis_daily", f"{PUBLISHED_SCHEMA}.kpi_alerts"),
            ).fetchone()
            if published[0] is None:
                raise AlertError(
                    f"{PUBLISHED_SCHEMA}.partner_kpis_daily does not exist: alerts run on published data only; "
                    "publish a build first"
                )
            ensure_ops_alerts(conn)
            for rule in rules:
                params = {
                    "rule_id": rule.id, "severity": rule.severity, "kpi": rule.kpi, "threshold": rule.threshold,
                    "comparison": rule.comparison, "run_id": run_id, "as_of": as_of,
                }
                rows = conn.execute(_insert_sql(rule, as_of is not None), params).fetchall()
                fired += [FiredAlert(**dict(zip(ALERT_COLUMNS, row, strict=True))) for row in rows]
            if fired and published[1] is not None:
                ids = [a.alert_id for a in fired]
                conn.execute(
                    f"insert into {PUBLISHED_SCHEMA}.kpi_alerts select * from ops.kpi_alerts "
                    "where alert_id = any(%s) on conflict do nothing",
                    (ids,),
                )
    for alert in fired:
        for channel in channels if channels is not None else [LogChannel()]:
            try:
                channel.send(alert)
            except Exception:  # one broken channel must not hide the alert from the others
                log.exception("alert channel %s failed for %s", getattr(channel, "name", channel), alert.alert_id)
    log.info("alerts: %d rule(s) evaluated, %d newly fired", len(rules), len(fired))
    return fired
