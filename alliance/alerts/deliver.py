"""Deliver alert events to channels through the ops.alert_deliveries outbox: one message per channel per run (the
events grouped by partner and rule, alliance/alerts/message.py), each channel in its own thread (a slow or dead one
delays no other), bounded retries with exponential backoff, every outcome recorded per event.

Rules with `delivery: digest` leave their events pending until the channel's digest is due: the first delivery of a
UTC day (of the delivery clock) that has such events sends them all, together with that run's immediate events, and
ops.alert_digests records the (channel, day), so later runs that day hold new digest events for the next day.

Delivery is at least once: a pending row is sent again if the run dies after sending and before recording.
A `failed` row (retries exhausted) is final, so a dead channel is not hammered every run; the table shows it."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from alliance.alerts.channels import Channel, ChannelNotConfigured
from alliance.alerts.episode import FiredAlert
from alliance.alerts.message import AlertEvent, AlertMessage
from alliance.alerts.store import ALERT_COLUMNS
from alliance.failure_notify import SmtpSecurityError
from alliance.locks import ALERT_DELIVERY
from alliance.warehouse import connect

log = logging.getLogger("alliance.alerts.deliver")
DELIVERY_LOCK_KEY = ALERT_DELIVERY.key  # session advisory lock: one alert deliverer at a time (alliance/locks.py)


@dataclass(frozen=True)
class Delivery:
    alert_id: str
    event: str
    channel: str
    status: str  # sent | failed | skipped
    attempts: int
    error: str | None


def _short(exc: BaseException) -> str:
    """Exception type plus a reason that carries no URL, token or address."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, ChannelNotConfigured):
        return str(exc)
    if isinstance(exc, SmtpSecurityError):  # names the mail server and the setting to fix (no secret, no recipient)
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__ + (f" (HTTP {status})" if status else "")


def _send_with_retries(channel: Channel, message: AlertMessage) -> list[Delivery]:
    """Send the channel's one message; every event it carries gets the outcome."""
    retries = int(getattr(channel, "retries", 0))
    backoff = float(getattr(channel, "backoff_seconds", 0.0))
    attempts = 0
    error: str | None = None

    def outcome(status: str, why: str | None) -> list[Delivery]:
        return [Delivery(e.alert.alert_id, e.event, channel.name, status, attempts, why) for e in message.events]

    while attempts <= retries:
        attempts += 1
        try:
            channel.send(message)
            return outcome("sent", None)
        except ChannelNotConfigured as exc:
            log.warning("alert channel %s not configured: %s", channel.name, exc)
            return outcome("skipped", str(exc))
        except Exception as exc:  # any failure of a channel is recorded, never raised into the pipeline
            error = _short(exc)
            log.warning("alert channel %s failed for run %s (attempt %d/%d): %s",
                        channel.name, message.run_id, attempts, retries + 1, error)
            if isinstance(exc, SmtpSecurityError):
                break  # final: the same certificate (or missing STARTTLS) is met again on a retry
            if attempts <= retries:
                time.sleep(backoff * 2 ** (attempts - 1))
    return outcome("failed", error)


def enqueue(conn: psycopg.Connection, events: list[tuple[str, str, str]], run_id: str) -> None:
    """Write a `pending` outbox row per (alert_id, event, channel) in the caller's transaction (the one recording
    the episodes), so a crash before sending leaves work for the next run instead of losing the message."""
    if not events:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "insert into ops.alert_deliveries (alert_id, event, channel, status, attempts, run_id) "
            "values (%s, %s, %s, 'pending', 0, %s) on conflict (alert_id, event, channel) do nothing",
            [(alert_id, event, channel, run_id) for alert_id, event, channel in events],
        )


def _send(routes: list[tuple[Channel, AlertMessage]]) -> list[Delivery]:
    """Each channel in its own thread, one message each."""
    if not routes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(routes)), thread_name_prefix="alert-channel") as pool:
        futures = [pool.submit(_send_with_retries, channel, message) for channel, message in routes]
        return [d for f in futures for d in f.result()]


def _record(conn: psycopg.Connection, deliveries: list[Delivery], run_id: str) -> None:
    try:
        with conn.cursor() as cur:
            cur.executemany(
                """insert into ops.alert_deliveries (alert_id, event, channel, status, attempts, error, run_id)
                   values (%s, %s, %s, %s, %s, %s, %s)
                   on conflict (alert_id, event, channel) do update set status = excluded.status,
                       attempts = ops.alert_deliveries.attempts + excluded.attempts, error = excluded.error,
                       run_id = excluded.run_id, attempted_at = now()""",
                [(d.alert_id, d.event, d.channel, d.status, d.attempts, d.error, run_id) for d in deliveries],
            )
    except Exception:  # recording must not fail the run: the rows stay pending and are sent again (at least once)
        log.exception("could not record %d alert deliveries", len(deliveries))


def _digests_sent(conn: psycopg.Connection, day: date) -> set[str]:
    return {row[0] for row in conn.execute("select channel from ops.alert_digests where digest_day = %s", (day,))}


def _pending(conn: psycopg.Connection) -> list[tuple[str, str, FiredAlert]]:
    """(event, channel, alert as it was when the event happened) for every pending outbox row, in order."""
    columns = sql.SQL(", ").join(sql.Identifier("a", c) for c in ALERT_COLUMNS)
    rows = conn.execute(sql.SQL(
        "select d.event, d.channel, {} from ops.alert_deliveries d "
        "join ops.kpi_alerts a using (alert_id) where d.status = 'pending' order by d.delivery_id"
    ).format(columns)).fetchall()
    out = []
    for event, channel, *values in rows:
        alert = FiredAlert(**dict(zip(ALERT_COLUMNS, values, strict=True)))
        if event == "fired" and alert.state != "firing":  # resolved since: tell what fired, then the rest
            alert = alert.model_copy(update={"state": "firing", "resolved_at": None,
                                             "resolved_run_id": None, "resolved_value": None})
        out.append((event, channel, alert))
    return out


def deliver_pending(warehouse_url: str, channels: Mapping[str, Channel], run_id: str,
                    digest_rules: Collection[str] = (), now: datetime | None = None) -> list[Delivery]:
    """Send every pending outbox row (this run's and any a killed run left), one message per channel, and record
    the outcome; never raises for a channel. Events of `digest_rules` wait for the channel's daily digest (the UTC
    day of `now`, default the clock). One deliverer at a time (advisory lock): a concurrent run leaves the rows to
    the one sending."""
    day = (now or datetime.now(UTC)).astimezone(UTC).date()
    with connect(warehouse_url, autocommit=True) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (DELIVERY_LOCK_KEY,)).fetchone()[0]:
            log.info("another run is delivering alerts: its deliverer sends the pending ones")
            return []
        try:
            pending = _pending(conn)
            digested = _digests_sent(conn, day)
            per_channel: dict[str, list[AlertEvent]] = {}
            digests: dict[str, int] = {}
            deliveries: list[Delivery] = []
            for event, channel, alert in pending:
                if channel not in channels:
                    deliveries.append(Delivery(alert.alert_id, event, channel, "skipped", 0,
                                               "channel no longer in the alerts file"))
                    continue
                if alert.rule_id in digest_rules:
                    if channel in digested:
                        continue  # today's digest went out: this waits for tomorrow's
                    digests[channel] = digests.get(channel, 0) + 1
                per_channel.setdefault(channel, []).append(AlertEvent(event, alert))
            routes = [(channels[name], AlertMessage(run_id, tuple(events), digest=name in digests))
                      for name, events in per_channel.items()]
            deliveries += _send(routes)
            _record(conn, deliveries, run_id)
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into ops.alert_digests (channel, digest_day, run_id, events) values (%s, %s, %s, %s) "
                    "on conflict (channel, digest_day) do nothing",
                    [(name, day, run_id, count) for name, count in digests.items()])
            return deliveries
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (DELIVERY_LOCK_KEY,))
