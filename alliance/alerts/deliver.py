"""Deliver alert events to channels: each channel in its own thread (a slow or dead one delays no other),
bounded retries with exponential backoff, every outcome recorded in ops.alert_deliveries."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alliance.alerts.channels import ChannelNotConfigured
from alliance.warehouse import connect

if TYPE_CHECKING:
    from alliance.alerts.channels import Channel
    from alliance.alerts.evaluate import FiredAlert

log = logging.getLogger("alliance.alerts.deliver")


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
            if attempts <= retries:
                time.sleep(backoff * 2 ** (attempts - 1))
    return Delivery(alert.alert_id, event, channel.name, "failed", attempts, error)


def _run_channel(channel: Channel, alerts: list[FiredAlert]) -> list[Delivery]:
    return [_send_with_retries(channel, alert) for alert in alerts]


def deliver(warehouse_url: str, routes: list[tuple[Channel, list[FiredAlert]]], run_id: str) -> list[Delivery]:
    """Send each channel its events in parallel; record and return every delivery. Never raises for a channel."""
    if not routes:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(routes)), thread_name_prefix="alert-channel") as pool:
        futures = [pool.submit(_run_channel, channel, alerts) for channel, alerts in routes]
        deliveries = [d for f in futures for d in f.result()]
    try:
        with connect(warehouse_url) as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    """insert into ops.alert_deliveries (alert_id, event, channel, status, attempts, error, run_id)
                       values (%s, %s, %s, %s, %s, %s, %s)
                       on conflict (alert_id, event, channel) do update set status = excluded.status,
                           attempts = ops.alert_deliveries.attempts + excluded.attempts, error = excluded.error,
                           run_id = excluded.run_id, attempted_at = now()""",
                    [(d.alert_id, d.event, d.channel, d.status, d.attempts, d.error, run_id) for d in deliveries],
                )
    except Exception:  # recording must not fail the run either: the alerts themselves are committed
        log.exception("could not record %d alert deliveries", len(deliveries))
    return deliveries
