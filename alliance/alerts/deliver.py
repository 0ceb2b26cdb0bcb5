"""Deliver alert events to channels through the ops.alert_deliveries outbox: each channel in its own thread (a
slow or dead one delays no other), bounded retries with exponential backoff, every outcome recorded.

Delivery is at least once: a pending row is sent again if the run dies after sending and before recording.
A `failed` row (retries exhausted) is final, so a dead channel is not hammered every run; the table shows it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import sql

from alliance.alerts.channels import Channel, ChannelNotConfigured
from alliance.alerts.episode import FiredAlert
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


def _send_with_retries(channel: Channel, alert: FiredAlert) -> Delivery:
    retries = int(getattr(channel, "retries", 0))
    backoff = float(getattr(channel, "backoff_seconds", 0.0))
    event = "resolved" if alert.state == "resolved" else "fired"
    attempts = 0
    error: str | None = None
    while attempts <= retries:
        attempts += 1
        try:
            channel.send(alert)
            return Delivery(alert.alert_id, event, channel.name, "sent", attempts, None)
        except ChannelNotConfigured as exc:
            log.warning("alert channel %s not configured: %s", channel.name, exc)
            return Delivery(alert.alert_id, event, channel.name, "skipped", attempts, str(exc))
        except Exception as exc:  # any failure of a channel is recorded, never raised into the pipeline
            error = _short(exc)
            log.warning("alert channel %s failed for %s (attempt %d/%d): %s",
                        channel.name, alert.alert_id, attempts, retries + 1, error)
            if isinstance(exc, SmtpSecurityError):
                break  # final: the same certificate (or missing STARTTLS) is met again on a retry
            if attempts <= retries:
                time.sleep(backoff * 2 ** (attempts - 1))
    return Delivery(alert.alert_id, event, channel.name, "failed", attempts, error)


def _run_channel(channel: Channel, alerts: list[FiredAlert]) -> list[Delivery]:
    return [_send_with_retries(channel, alert) for alert in alerts]


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


def _send(routes: list[tuple[Channel, list[FiredAlert]]]) -> list[Delivery]:
    """Each channel in its own thread, its events in order."""
    if not routes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(routes)), thread_name_prefix="alert-channel") as pool:
        futures = [pool.submit(_run_channel, channel, alerts) for channel, alerts in routes]
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


def deliver_pending(warehouse_url: str, channels: Mapping[str, Channel], run_id: str) -> list[Delivery]:
    """Send every pending outbox row (this run's and any a killed run left) and record the outcome; never raises
    for a channel. One deliverer at a time (advisory lock): a concurrent run leaves the rows to the one sending."""
    columns = sql.SQL(", ").join(sql.Identifier("a", c) for c in ALERT_COLUMNS)
    with connect(warehouse_url, autocommit=True) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (DELIVERY_LOCK_KEY,)).fetchone()[0]:
            log.info("another run is delivering alerts: its deliverer sends the pending ones")
            return []
        try:
            rows = conn.execute(sql.SQL(
                "select d.event, d.channel, {} from ops.alert_deliveries d "
                "join ops.kpi_alerts a using (alert_id) where d.status = 'pending' order by d.delivery_id"
            ).format(columns)).fetchall()
            per_channel: dict[str, list[FiredAlert]] = {}
            deliveries: list[Delivery] = []
            for event, channel, *values in rows:
                alert = FiredAlert(**dict(zip(ALERT_COLUMNS, values, strict=True)))
                if event == "fired" and alert.state != "firing":  # resolved since: tell what fired, then the rest
                    alert = alert.model_copy(update={"state": "firing", "resolved_at": None,
                                                     "resolved_run_id": None, "resolved_value": None})
                if channel in channels:
                    per_channel.setdefault(channel, []).append(alert)
                else:
                    deliveries.append(Delivery(alert.alert_id, event, channel, "skipped", 0,
                                               "channel no longer in the alerts file"))
            deliveries += _send([(channels[name], alerts) for name, alerts in per_channel.items()])
            _record(conn, deliveries, run_id)
            return deliveries
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (DELIVERY_LOCK_KEY,))
