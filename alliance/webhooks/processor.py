"""Process the webhook inbox after the answer: validate, look up WooCommerce refunds, land, erase, announce.

Why a separate step: the sender already has its 2xx, so nothing here may lose an event. Each inbox row is handled
in one transaction that holds the row (FOR UPDATE SKIP LOCKED, so two receivers never process it twice), the landed
data, the outbox row for Airflow and the row's new status. Any failure (partner API down, warehouse hiccup,
erasure not possible yet) rolls the work back and leaves the row pending with its error and a later retry time
(exponential backoff); after `max_attempts` it is marked failed for an operator. A record that breaks a data rule
is not a failure: it is quarantined with a reason naming the partner, the field and the rule, and the row is done.
Rows left pending by a stopped receiver are picked up by the next one at start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import psycopg
import requests

from alliance.assets import table_uri
from alliance.config import AllianceConfig, Partner
from alliance.warehouse import connect
from alliance.webhooks.inbox import purge_processed
from alliance.webhooks.inbox import retention_days as inbox_retention_days
from connectors.credentials import ConnectionLookup, credentials_label
from connectors.erasure import erase_customer, erase_storefront_customers
from connectors.errors import SourceError, SourceRef
from connectors.http import HttpPolicy, make_session
from connectors.ingest import source_credentials
from connectors.landing import land_clicks_page, land_order_deletion, land_orders_page, start_load
from connectors.pii import pii_salt, scrub
from connectors.platform import Platform
from connectors.platforms import PreparedPage, minimise, prepare_page
from connectors.platforms import get as get_platform
from connectors.records import RecordError

log = logging.getLogger("alliance.webhooks.processor")

# The sender is no longer waiting: a look-up may take its time, and a failure only delays the row.
REFUND_LOOKUP_POLICY = HttpPolicy(retries=2, connect_retries=1, read_retries=1, backoff_factor=0.5, backoff_max=5.0,
                                  retry_after_max=10.0, connect_timeout=5.0, read_timeout=20.0)
# Webhooks never move a poll cursor forward: the hourly pull still reconciles whatever a webhook missed.
_NO_CURSOR_MOVE = datetime(1970, 1, 1, tzinfo=UTC)


class RetryLater(RuntimeError):
    """Processing cannot finish now (e.g. the partner API is down); the row is retried with backoff."""


@dataclass(frozen=True)
class InboxItem:
    inbox_id: int
    platform: str
    source_id: str
    delivery_id: str
    topic: str
    received_at: datetime
    payload: object | None
    body_error: str | None

    @property
    def where(self) -> str:
        """How reasons and logs name the delivery: partner (or network), topic, delivery id; never a value."""
        return f"{self.source_id} {self.platform} webhook {self.topic} (delivery {self.delivery_id})"


@dataclass(frozen=True)
class Outcome:
    message: str
    assets: tuple[str, ...] = ()  # raw tables changed: announced to Airflow through the outbox


def _stored_key(platform: Platform, record: dict) -> str | None:
    """The customer_key already in a scrubbed record (its e-mail field holds the key, never the address)."""
    value = platform.customer_email(record)
    return value if isinstance(value, str) and value else None


def prepare_scrubbed(platform: Platform, records: list, salt: str, where: str) -> PreparedPage:
    """Validate inbox records with the landing rules. The inbox holds them scrubbed already, so the stored payload
    and customer_key are taken as they are (scrubbing twice would hash the key again); reasons name the source."""
    good = []
    bad = []
    for record in records:  # one at a time, so each valid record is paired with its own stored payload
        page = prepare_page(platform.name, [record], salt)
        bad.extend(page.bad)
        good.extend(dataclasses.replace(valid, customer_key=_stored_key(platform, record),
                                        payload_json=orjson.dumps(record).decode()) for valid in page.good)
    bad = [(RecordError(f"{where}: {error}", error.record_key), record) for error, record in bad]
    return PreparedPage(good, bad)


class InboxProcessor:
    """A background thread draining due inbox rows; woken after every stored delivery, else every `poll` s."""

    def __init__(self, config: AllianceConfig, warehouse_url: str, *, on_landed: Callable[[], None] | None = None,
                 poll: float = 1.0, retry_base: float = 5.0, retry_max: float = 900.0, max_attempts: int = 20,
                 refund_policy: HttpPolicy = REFUND_LOOKUP_POLICY, connections: ConnectionLookup | None = None,
                 retention_days: int | None = None, purge_every: float = 3600.0) -> None:
        self.partners: dict[str, Partner] = {p.id: p for p in config.storefronts}
        self.url = warehouse_url
        self.on_landed = on_landed
        self.poll = poll
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.max_attempts = max_attempts
        self.refund_policy = refund_policy
        self.connections = connections  # where `credentials_conn` secrets come from (refund look-ups)
        self.salt = pii_salt()
        self.retention_days = inbox_retention_days() if retention_days is None else retention_days
        self.purge_every = purge_every  # seconds between retention purges (alliance.webhooks.inbox.purge_processed)
        self._purged_at: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="webhook-inbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                with connect(self.url) as conn:
                    while not self._stop.is_set():
                        self._wake.clear()
                        self.drain(conn)
                        self.purge_if_due(conn)
                        delay = 1.0
                        self._wake.wait(self.poll)
            except Exception as exc:  # noqa: BLE001 - the warehouse may be away; rows wait in the inbox
                log.warning("webhook inbox processing paused, retrying in %.0fs: %s", delay,
                            str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
                self._stop.wait(delay)
                delay = min(delay * 2, 60.0)

    def purge_if_due(self, conn: psycopg.Connection) -> None:
        """Retention: at start and then every `purge_every` seconds, processed rows past their days go."""
        now = time.monotonic()
        if self._purged_at is not None and now - self._purged_at < self.purge_every:
            return
        self._purged_at = now
        purge_processed(conn, self.retention_days)

    # --- processing ---

    def drain(self, conn: psycopg.Connection) -> int:
        """Process every due row; returns how many were handled (done, quarantined or retried)."""
        handled = 0
        while not self._stop.is_set() and self.process_next(conn):
            handled += 1
        return handled

    def process_next(self, conn: psycopg.Connection) -> bool:
        """Process the oldest due row, if any; False when nothing is due."""
        landed = False
        with conn.transaction():
            row = conn.execute(
                "select inbox_id, platform, source_id, delivery_id, topic, received_at, payload, body_error "
                "from raw.webhook_inbox where status = 'pending' and next_attempt_at <= now() "
                "order by next_attempt_at, inbox_id limit 1 for update skip locked"
            ).fetchone()
            if row is None:
                return False
            item = InboxItem(*row)
            try:
                with conn.transaction():  # a savepoint: a failure undoes the work, the row lock stays
                    outcome = self.handle(conn, item)
                    for uri in outcome.assets:
                        conn.execute(
                            "insert into raw.webhook_outbox (asset_uri, platform, source_id, delivery_id) "
                            "values (%s, %s, %s, %s)", (uri, item.platform, item.source_id, item.delivery_id))
                    conn.execute(
                        "update raw.webhook_inbox set status = 'done', processed_at = now(), outcome = %s, "
                        "  attempts = attempts + 1, last_error = null where inbox_id = %s",
                        (outcome.message[:500], item.inbox_id))
                landed = bool(outcome.assets)
                log.info("%s: %s", item.where, outcome.message)
            except Exception as exc:  # noqa: BLE001 - recorded on the row and retried; never lost, never a crash
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
                status = conn.execute(
                    "update raw.webhook_inbox set attempts = attempts + 1, last_error = %s, "
                    "  next_attempt_at = now() + make_interval(secs => least(%s * power(2, attempts), %s)), "
                    "  status = case when attempts + 1 >= %s then 'failed' else 'pending' end "
                    "where inbox_id = %s returning status, attempts",
                    (error, self.retry_base, self.retry_max, self.max_attempts, item.inbox_id)).fetchone()
                log.warning("%s: not processed (attempt %d, %s): %s", item.where, status[1], status[0], error)
        if landed and self.on_landed:
            self.on_landed()
        return True

    def handle(self, conn: psycopg.Connection, item: InboxItem) -> Outcome:
        """One delivery's effect, in the caller's transaction."""
        if item.body_error is not None:
            return self._quarantine(conn, item, item.body_error)
        payload = item.payload
        platform = get_platform(item.platform)
        scheme = platform.webhooks
        assert scheme is not None  # a delivery only reaches the inbox through its platform's scheme
        if item.topic in scheme.record_topics and platform.entity == "clicks":
            return self._land(conn, item, platform, payload if isinstance(payload, list) else [payload])
        if item.topic in scheme.record_topics:
            if not isinstance(payload, dict):
                return self._quarantine(conn, item, f"body is {type(payload).__name__}, not one order object")
            self._attach_refunds(item, platform, payload)
            return self._land(conn, item, platform, [payload])
        if item.topic in scheme.delete_topics:
            order_id = payload.get("id") if isinstance(payload, dict) else None
            if isinstance(order_id, bool) or not isinstance(order_id, (int, str)) or not str(order_id).strip():
                return self._quarantine(conn, item, "id: missing or not an integer or string (a deletion names "
                                        "the deleted order's id)", entity="orders")
            land_order_deletion(conn, item.source_id, str(order_id).strip(), item.received_at, item.topic)
            return Outcome(f"deletion of order {str(order_id).strip()} recorded",
                           (table_uri("raw", "orders", self.url),))
        if item.topic in scheme.compliance_topics:
            return self._compliance(conn, item, payload if isinstance(payload, dict) else {})
        raise RuntimeError(f"topic `{item.topic}` has no handler")  # stored as ignored at the door; never here

    def _compliance(self, conn: psycopg.Connection, item: InboxItem, payload: dict) -> Outcome:
        customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
        key = customer.get("email") if isinstance(customer.get("email"), str) and customer.get("email") else None
        changed = (table_uri("raw", "orders", self.url), table_uri("raw", "clicks", self.url))
        if item.topic == "shop/redact":
            result = erase_storefront_customers(conn, item.source_id)
            return Outcome(f"shop/redact: erased {result.orders} orders, {result.clicks} clicks", changed)
        if item.topic == "customers/redact":
            keys = [key] if key else self._keys_of_orders(conn, item.source_id, payload.get("orders_to_redact"))
            if not keys:
                return Outcome("customers/redact names no customer e-mail and no order alliance holds: "
                               "nothing to erase")
            orders = clicks = 0
            for each in keys:
                result = erase_customer(conn, each, partner_id=item.source_id)
                orders, clicks = orders + result.orders, clicks + result.clicks
                log.info("%s: erased customer %s…", item.where, each[:8])
            return Outcome(f"customers/redact: erased {orders} orders, {clicks} clicks", changed)
        orders = payload.get("orders_requested")
        request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
        conn.execute(
            "insert into raw.webhook_data_requests (inbox_id, partner_id, customer_key, shopify_request_id, "
            "  order_ids, received_at) values (%s, %s, %s, %s, %s, %s) on conflict (inbox_id) do nothing",
            (item.inbox_id, item.source_id, key,
             None if request.get("id") is None else str(request.get("id")),
             orjson.dumps([str(o) for o in orders] if isinstance(orders, list) else []).decode(),
             item.received_at))
        return Outcome("customers/data_request recorded for the partner manager (raw.webhook_data_requests)")

    @staticmethod
    def _keys_of_orders(conn: psycopg.Connection, partner_id: str, order_ids: object) -> list[str]:
        """A redact request without an e-mail (Shopify sends some): the keys of the listed orders at this partner."""
        if not isinstance(order_ids, list) or not order_ids:
            return []
        rows = conn.execute(
            "select distinct customer_key from raw.orders where partner_id = %s and order_id = any(%s) "
            "and customer_key is not null order by 1",
            (partner_id, [str(o) for o in order_ids if isinstance(o, (int, str)) and not isinstance(o, bool)]))
        return [r[0] for r in rows.fetchall()]

    def _attach_refunds(self, item: InboxItem, platform: Platform, order: dict) -> None:
        """A WooCommerce order body lists its refunds by id and total only; their dates and line amounts come from
        the storefront API (the platform's `refund_lookup`), as in the poll. Without them the order's refunds would
        vanish until the next poll, so a failed look-up keeps the row pending (RetryLater) instead of landing it
        incomplete."""
        partner = self.partners.get(item.source_id)
        if platform.refund_lookup is None or not platform.refunds_key or not order.get("refunds") or partner is None:
            return
        ref = SourceRef(partner.id, credentials_label(partner))
        fetched = [dict(order)]
        try:
            credentials = source_credentials(partner, self.connections)
            with make_session(self.refund_policy, partner.requests_per_second,
                              origin_url=partner.base_url) as session:
                platform.refund_lookup(session, partner.base_url or "", credentials, ref, fetched)
        except (SourceError, requests.RequestException) as exc:
            raise RetryLater(f"{partner.id}: the order's refunds could not be fetched from the storefront API: "
                             f"{str(exc).splitlines()[0][:200]}") from None
        refunds = fetched[0].get(platform.refunds_key)
        if refunds is not None:
            order[platform.refunds_key] = scrub(minimise(platform.name, "refunds", refunds), self.salt)

    def _land(self, conn: psycopg.Connection, item: InboxItem, platform: Platform, records: list) -> Outcome:
        entity = platform.entity
        load_id = start_load(conn, item.source_id, f"webhook_{entity}", platform.name, None)
        page = prepare_scrubbed(platform, records, self.salt, item.where)
        if entity == "orders":
            result = land_orders_page(conn, load_id, item.source_id, platform.name, page, salt=self.salt,
                                      cursor_cap=_NO_CURSOR_MOVE)
        else:
            result = land_clicks_page(conn, load_id, item.source_id, page, salt=self.salt,
                                      cursor_cap=_NO_CURSOR_MOVE)
        conn.execute("update raw.loads set status = 'succeeded', finished_at = now() where load_id = %s", (load_id,))
        assets = (table_uri("raw", entity, self.url),) if result.landed else ()
        return Outcome(f"landed {result.landed}, quarantined {result.quarantined}", assets)

    def _quarantine(self, conn: psycopg.Connection, item: InboxItem, reason: str, entity: str | None = None
                    ) -> Outcome:
        """The whole delivery cannot be read: one quarantine row naming source, topic and rule (no value kept)."""
        if entity is None:
            platform = get_platform(item.platform)
            compliance = platform.webhooks is not None and item.topic in platform.webhooks.compliance_topics
            entity = "webhooks" if compliance else platform.entity
        conn.execute(
            "insert into raw.quarantine (load_id, source_id, entity, record_key, reason, payload) "
            "values (null, %s, %s, %s, %s, '')",
            (item.source_id, entity, item.delivery_id, f"{item.where}: {reason}"))
        return Outcome(f"quarantined: {reason}")
