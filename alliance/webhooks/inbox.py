"""The webhook inbox: a verified delivery is stored here, minimised and scrubbed, before it is answered.

Why inbox first: Shopify and WooCommerce want a 2xx within seconds and punish anything else (retries, removed or
disabled subscriptions). Storing one row is fast and cannot fail on the content; validation, refund look-ups and
landing happen after the answer (alliance/webhooks/processor.py), where a failure is retried instead of refused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from alliance.migrate import migrate
from alliance.webhooks.sources import Source
from connectors.pii import scrub
from connectors.platforms import minimise

log = logging.getLogger("alliance.webhooks")


def ensure_webhook_schema(conn: psycopg.Connection) -> None:
    """The inbox, outbox and landing tables exist (alliance/migrations/0001, 0003)."""
    migrate(conn)


@dataclass(frozen=True)
class Stored:
    """What the inbox keeps of one body: the minimised, scrubbed payload, or why there is none."""

    payload: object | None
    body_error: str | None = None


# Shopify's compliance bodies carry the customer's e-mail and phone: the processor reads only these fields, so
# only these are kept, whatever the data-minimisation lists say (the e-mail becomes the key below).
COMPLIANCE_FIELDS = {
    "customers/redact": ("shop_id", "shop_domain", "orders_to_redact"),
    "customers/data_request": ("shop_id", "shop_domain", "orders_requested", "data_request"),
    "shop/redact": ("shop_id", "shop_domain"),
}


def _compliance_fields(topic: str, parsed: object) -> object:
    if not isinstance(parsed, dict):
        return {}
    kept = {k: parsed[k] for k in COMPLIANCE_FIELDS[topic] if k in parsed}
    if isinstance(kept.get("data_request"), dict):
        kept["data_request"] = {"id": kept["data_request"].get("id")}
    customer = parsed.get("customer")
    if topic != "shop/redact" and isinstance(customer, dict):
        kept["customer"] = {"id": customer.get("id"), "email": customer.get("email")}
    return kept


def prepare(source: Source, topic: str, body: bytes, salt: str) -> Stored:
    """Parse, minimise (allow-list of the platform's topic), scrub e-mails into keys. Never raises on content."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Stored(None, "body is not JSON")
    if topic in COMPLIANCE_FIELDS:
        parsed = _compliance_fields(topic, parsed)
    try:  # each topic has its allow-list in the platform's file (a network's one implicit topic is `clicks`)
        minimised = minimise(source.platform.name, topic, parsed)
    except ValueError as exc:  # no allow-list for this topic: keep nothing of it
        return Stored(None, str(exc)[:300])
    return Stored(scrub(minimised, salt))


async def store(pool: AsyncConnectionPool, source: Source, delivery_id: str, topic: str, stored: Stored | None,
                *, ignored: bool = False, timeout: float = 3.0) -> bool:
    """Insert the delivery once; False when this delivery id was already stored (a retry or a duplicate)."""
    status = "ignored" if ignored else "pending"
    outcome = f"topic `{topic}` is not handled" if ignored else None
    payload = None if stored is None or stored.payload is None else Jsonb(stored.payload)
    body_error = None if stored is None else stored.body_error
    async with pool.connection(timeout=timeout) as conn:
        cur = await conn.execute(
            "insert into raw.webhook_inbox (platform, source_id, delivery_id, topic, payload, body_error, status, "
            "  outcome, processed_at) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, case when %s::text = 'ignored' then now() end) "
            # no conflict target and no RETURNING: both would need SELECT, and the HTTP side's role may only INSERT
            # (the one conflict possible is the delivery's unique key; inbox_id is a fresh serial)
            "on conflict do nothing",
            (source.platform.name, source.source_id, delivery_id, topic, payload, body_error, status, outcome,
             status),
        )
        return cur.rowcount == 1


# Processed deliveries kept this long (days), for tracing a delivery and for the duplicate check of late retries
# (Shopify retries a failed delivery for hours, not weeks); 0 keeps everything. Failed and pending rows, and the
# rows a customers/data_request is recorded against, are never purged.
RETENTION_VARIABLE = "ALLIANCE_WEBHOOK_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30


def retention_days(env: dict[str, str] | None = None) -> int:
    """ALLIANCE_WEBHOOK_RETENTION_DAYS (default 30; 0 = keep everything); a bad value says what is expected."""
    value = ((env if env is not None else os.environ).get(RETENTION_VARIABLE) or "").strip()
    if not value:
        return DEFAULT_RETENTION_DAYS
    if not value.isdigit():
        raise ValueError(f"{RETENTION_VARIABLE} must be a whole number of days (0 keeps every delivery)")
    return int(value)


def purge_processed(conn: psycopg.Connection, days: int) -> tuple[int, int]:
    """Delete inbox rows processed (done, ignored) more than `days` days ago, and outbox rows notified as long ago;
    returns (inbox rows, outbox rows) deleted. The inbox only grows otherwise: one row per delivery, for ever."""
    if days <= 0:
        return 0, 0
    with conn.transaction():
        inbox = conn.execute(
            """delete from raw.webhook_inbox as i
               where i.status in ('done', 'ignored') and i.processed_at < now() - make_interval(days => %s)
                 and not exists (select 1 from raw.webhook_data_requests as r where r.inbox_id = i.inbox_id)""",
            (days,)).rowcount
        outbox = conn.execute(
            "delete from raw.webhook_outbox where notified_at < now() - make_interval(days => %s)", (days,)).rowcount
    if inbox or outbox:
        log.info("webhook retention: %d processed deliveries and %d notified events older than %d days purged",
                 inbox, outbox, days)
    return inbox, outbox
