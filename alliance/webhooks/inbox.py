"""The webhook inbox: a verified delivery is stored here, minimised and scrubbed, before it is answered.

Why inbox first: Shopify and WooCommerce want a 2xx within seconds and punish anything else (retries, removed or
disabled subscriptions). Storing one row is fast and cannot fail on the content; validation, refund look-ups and
landing happen after the answer (alliance/webhooks/processor.py), where a failure is retried instead of refused.
"""

from __future__ import annotations

import logging
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
