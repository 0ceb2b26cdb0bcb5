"""Keep alert episodes from what dbt judged: open an episode for each new breach inside the rule's detection window,
resolve episodes whose KPI recovered, then tell the routed channels (after the commit, one message per channel,
with retries, recorded in ops.alert_deliveries).

The detection window (`detection_days`, default 2) is counted back from the run's as-of date (`as_of`, else the
latest published KPI day, the same reference the pace projection uses): only a period ending inside it may OPEN an
episode, so the first run on a long history fires about the last days, not about September. It never closes one:
an open episode resolves when dbt judges its period within bounds again, whenever that is, and otherwise stays
firing (a period no longer judged at all, e.g. a day that lost its volume, keeps its episode as it is).

The rules themselves (baselines, pace projections, breaches) are business rules and live in dbt:
`analytics.kpi_alert_observations`, built from the rules the transform mirrored into raw.cfg_alert_rules
(alliance/alerts/sync.py). This module only reads it; a rule edited after a build takes effect at the next build."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from alliance.alerts.channels import Channel, LogChannel, build_channel
from alliance.alerts.deliver import Delivery, deliver_pending, enqueue
from alliance.alerts.episode import FiredAlert
from alliance.alerts.message import MONTHLY_KINDS
from alliance.alerts.rules import AlertRule, AlertsFile, ChannelConfig
from alliance.alerts.store import ALERT_COLUMNS, ensure_ops_alerts, sync_alerts
from alliance.locks import PUBLISH
from alliance.schemas import PUBLISHED_SCHEMA
from alliance.warehouse import connect

log = logging.getLogger(__name__)
K = PUBLISHED_SCHEMA
PUBLISH_LOCK_KEY = PUBLISH.key  # alert recording and the analytics swap exclude each other (alliance/locks.py)


class AlertError(RuntimeError):
    """Alerts cannot be evaluated (nothing published yet)."""


@dataclass
class AlertOutcome:
    fired: list[FiredAlert] = field(default_factory=list)
    resolved: list[FiredAlert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


OBSERVATIONS = "kpi_alert_observations"  # dbt_project/models/marts/kpi_alert_observations.sql


def _observed(conn: psycopg.Connection, rule: AlertRule, as_of: date | None) -> dict[tuple, tuple]:
    """(partner_id, kpi, period) -> (value, threshold, baseline, breached) of the periods dbt judged for the rule."""
    rows = conn.execute(
        f"""select partner_id, kpi, period, value, threshold, baseline, breached from {K}.{OBSERVATIONS}
            where rule_id = %(rule)s and (period <= %(as_of)s::date or %(as_of)s::date is null)""",
        {"rule": rule.id, "as_of": as_of},
    )
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def reference_day(conn: psycopg.Connection, as_of: date | None) -> date | None:
    """The run's as-of date: `as_of`, else the latest published KPI day (None when nothing is published)."""
    if as_of is not None:
        return as_of
    return conn.execute(f"select max(kpi_date) from {K}.partner_kpis_daily").fetchone()[0]


def _period_end(rule: AlertRule, period: date) -> date:
    if rule.kind not in MONTHLY_KINDS:
        return period
    return (period.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def in_detection_window(rule: AlertRule, period: date, reference: date | None) -> bool:
    """Whether the period ends within the rule's last `detection_days` days up to the reference day."""
    if reference is None:
        return False
    return _period_end(rule, period) >= reference - timedelta(days=rule.detection_days - 1)


def _apply_rule(conn: psycopg.Connection, rule: AlertRule, run_id: str, as_of: date | None,
                reference: date | None) -> AlertOutcome:
    observed = _observed(conn, rule, as_of)
    columns = ", ".join(ALERT_COLUMNS)
    open_rows = {
        (row[3], row[4], row[5]): row
        for row in conn.execute(
            f"select {columns} from ops.kpi_alerts where rule_id = %s and state = 'firing'", (rule.id,)
        )
    }
    outcome = AlertOutcome()
    for key, (value, threshold, baseline, breached) in sorted(observed.items(), key=lambda i: (i[0][2], i[0][0])):
        if not breached or key in open_rows or not in_detection_window(rule, key[2], reference):
            continue
        partner, kpi, period = key
        episode = conn.execute(
            "select count(*) + 1 from ops.kpi_alerts where rule_id = %s and partner_id = %s and kpi = %s "
            "and period = %s", (rule.id, partner, kpi, period),
        ).fetchone()[0]
        alert_id = f"{rule.id}:{partner}:{period}" + (f":{kpi}" if rule.kind == "pace" else "") + f":{episode}"
        row = conn.execute(
            f"""insert into ops.kpi_alerts ({columns})
                values (%s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, 'firing', null, null, null, %s, %s)
                returning {columns}""",
            (alert_id, rule.id, rule.severity, partner, kpi, period, value, threshold, rule.comparison, run_id,
             rule.kind, baseline),
        ).fetchone()
        outcome.fired.append(FiredAlert(**dict(zip(ALERT_COLUMNS, row, strict=True))))
    for key, row in open_rows.items():
        current = observed.get(key)
        if current is None or current[3]:
            continue  # still breaching, or not judged by this evaluation: the episode stays as it is
        resolved = conn.execute(
            f"""update ops.kpi_alerts set state = 'resolved', resolved_at = now(), resolved_run_id = %s,
                       resolved_value = %s
                where alert_id = %s returning {columns}""",
            (run_id, current[0], row[0]),
        ).fetchone()
        outcome.resolved.append(FiredAlert(**dict(zip(ALERT_COLUMNS, resolved, strict=True))))
    return outcome


def evaluate(
    warehouse_url: str,
    rules: Sequence[AlertRule] | AlertsFile,
    run_id: str,
    as_of: date | None = None,
    channels: Sequence[Channel] | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> AlertOutcome:
    """Judge every rule on published data (up to `as_of`), record new and resolved episodes, then deliver them.

    Recording happens in one transaction under the publish lock, so a concurrent publish cannot drop an alert
    between ops.kpi_alerts and analytics.kpi_alerts; it takes no table lock a BI reader waits for (store.py). The
    same transaction queues one outbox row per routed channel, and channels are called only after the commit (with
    any rows a killed run left); a failing channel never raises here. `channels` (objects) overrides the file's
    routing and gets every event. `now` is the delivery clock that decides when a daily digest is due.
    """
    spec = rules if isinstance(rules, AlertsFile) else AlertsFile(
        rules=list(rules), channels={"log": ChannelConfig(type="log")})
    if channels is not None:
        objects: dict[str, Channel] = {c.name: c for c in channels}
        by_rule = {r.id: tuple(objects) for r in spec.rules}
    else:
        objects = {name: LogChannel() if config.type == "log" and name == "log" else build_channel(name, config, env)
                   for name, config in spec.channels.items()}
        by_rule = {r.id: tuple(spec.channels_for(r)) for r in spec.rules}
    outcome = AlertOutcome()
    with connect(warehouse_url) as conn:
        ensure_ops_alerts(conn)  # pending migrations commit on their own, before the recording transaction
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
            published = conn.execute(
                "select to_regclass(%s), to_regclass(%s)", (f"{K}.{OBSERVATIONS}", f"{K}.kpi_alerts"),
            ).fetchone()
            if published[0] is None:
                raise AlertError(
                    f"{K}.{OBSERVATIONS} does not exist: alerts run on published data only (dbt judges the rules in "
                    "the build); publish a build first"
                )
            reference = reference_day(conn, as_of)
            for rule in spec.rules:
                result = _apply_rule(conn, rule, run_id, as_of, reference)
                outcome.fired += result.fired
                outcome.resolved += result.resolved
            # Episodes of rules removed from the file would stay "active" forever: close them quietly.
            conn.execute(
                "update ops.kpi_alerts set state = 'resolved', resolved_at = now(), resolved_run_id = %s "
                "where state = 'firing' and rule_id <> all(%s)", (run_id, [r.id for r in spec.rules]),
            )
            enqueue(conn, [(a.alert_id, "resolved" if a.state == "resolved" else "fired", name)
                           for a in outcome.fired + outcome.resolved for name in by_rule.get(a.rule_id, ())
                           if name in objects], run_id)
            if published[1] is not None:
                sync_alerts(conn, K)  # row locks only: BI readers of analytics.kpi_alerts never wait (§5)
    digest_rules = {r.id for r in spec.rules if r.delivery == "digest"}
    outcome.deliveries = deliver_pending(warehouse_url, objects, run_id, digest_rules, now)
    log.info("alerts: %d rule(s) evaluated, %d newly fired, %d resolved", len(spec.rules), len(outcome.fired),
             len(outcome.resolved))
    return outcome


def evaluate_alerts(
    warehouse_url: str,
    rules: Sequence[AlertRule] | AlertsFile,
    run_id: str,
    as_of: date | None = None,
    channels: Sequence[Channel] | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[FiredAlert]:
    """`evaluate`, returning only the newly fired alerts."""
    return evaluate(warehouse_url, rules, run_id, as_of, channels, env, now).fired
