"""The webhook receiver: verify, reject replays, land durably in raw, answer, then tell Airflow.

Why this order: a partner retries until it gets a 2xx, so we answer 200 only once the event and
its outbox row are committed in the warehouse. Everything rejected (forged 401, replayed 409,
malformed 400, oversized 413) lands nothing. The notification to Airflow happens after the
answer, from the outbox, so an unreachable Airflow or a restart never loses an acknowledged event.

Routes (POST, body = the platform's JSON):
  /webhooks/shopify/<partner_id>      X-Shopify-Hmac-Sha256, X-Shopify-Webhook-Id, X-Shopify-Topic
  /webhooks/woocommerce/<partner_id>  X-WC-Webhook-Signature, X-WC-Webhook-Delivery-ID, X-WC-Webhook-Topic
  /webhooks/network/<network_id>      X-Alliance-Signature, X-Alliance-Delivery-Id (one click or a list)
GET /healthz answers 200 when the warehouse is reachable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import requests

from alliance.assets import table_uri
from alliance.config import AllianceConfig, Partner
from alliance.warehouse import connect
from connectors.errors import SourceError, SourceRef
from connectors.http import HttpPolicy, make_session
from connectors.ingest import source_credentials
from connectors.landing import (
    RecordError,
    ensure_raw_schema,
    finish_load,
    land_clicks_page,
    land_orders_page,
    start_load,
    validate_click,
    validate_shopify_order,
    validate_woocommerce_order,
)
from connectors.pii import pii_salt
from connectors.woocommerce import attach_refunds, orders_url, split_key_secret

log = logging.getLogger("alliance.webhooks")

SCHEMA = Path(__file__).with_name("schema.sql")
MAX_BODY_BYTES = 1_000_000  # Shopify order payloads are far below this; anything bigger is refused (413)
# The sender waits for our answer: a refund lookup gets a few quick retries, not the poll's patient backoff.
REFUND_LOOKUP_POLICY = HttpPolicy(retries=2, connect_retries=1, read_retries=1, backoff_factor=0.2, backoff_max=2.0,
                                  retry_after_max=2.0, connect_timeout=3.0, read_timeout=10.0)
# Webhooks never move a poll cursor: the hourly pull still reconciles whatever a webhook missed.
_NO_CURSOR_MOVE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Platform:
    name: str  # shopify | woocommerce | network
    signature_header: str
    delivery_header: str
    topic_header: str | None
    topics: frozenset[str]
    entity: str  # orders | clicks


PLATFORMS = {
    "shopify": Platform("shopify", "X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Topic",
                        frozenset({"orders/create", "orders/updated"}), "orders"),
    "woocommerce": Platform("woocommerce", "X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID",
                            "X-WC-Webhook-Topic", frozenset({"order.created", "order.updated"}), "orders"),
    "network": Platform("network", "X-Alliance-Signature", "X-Alliance-Delivery-Id", None,
                        frozenset({"clicks"}), "clicks"),
}


# Records the landing rules would quarantine are refused with 400 instead: the sender can fix and resend.
VALIDATORS = {
    "shopify": validate_shopify_order, "woocommerce": validate_woocommerce_order, "network": validate_click,
}


class Rejected(Exception):
    """A request we refuse; status and a short reason for the sender (never a secret or payload)."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, raw body)): Shopify's, WooCommerce's and our network scheme."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def ensure_webhook_schema(conn: psycopg.Connection) -> None:
    ensure_raw_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('alliance.webhook_schema'))")
        conn.execute(SCHEMA.read_text())


@dataclass(frozen=True)
class Source:
    platform: Platform
    source_id: str
    secret: str
    partner: Partner | None = None  # the storefront's config (API base URL and credentials), for refund lookups


def resolve_sources(config: AllianceConfig) -> dict[tuple[str, str], Source]:
    """(route platform, id) → source with its secret, for every partner/network with a webhook secret set."""
    sources: dict[tuple[str, str], Source] = {}
    for partner in config.storefronts:
        if partner.webhook_secret_env and partner.platform in ("shopify", "woocommerce"):
            secret = os.environ.get(partner.webhook_secret_env, "")
            if secret.strip():
                sources[(partner.platform, partner.id)] = Source(PLATFORMS[partner.platform], partner.id, secret,
                                                                 partner)
            else:
                log.warning("%s: %s is not set; its webhooks are refused", partner.id, partner.webhook_secret_env)
    for network in config.referral_networks:
        if network.webhook_secret_env:
            secret = os.environ.get(network.webhook_secret_env, "")
            if secret.strip():
                sources[("network", network.id)] = Source(PLATFORMS["network"], network.id, secret)
            else:
                log.warning("%s: %s is not set; its webhooks are refused", network.id, network.webhook_secret_env)
    return sources


class Receiver:
    """The request logic, independent of the HTTP server so it can be reasoned about and tested."""

    def __init__(self, config: AllianceConfig, warehouse_url: str, *, max_body: int = MAX_BODY_BYTES,
                 on_landed: callable | None = None) -> None:  # type: ignore[valid-type]
        self.sources = resolve_sources(config)
        self.url = warehouse_url
        self.max_body = max_body
        self.on_landed = on_landed
        self.salt = pii_salt()
        with connect(warehouse_url) as conn:
            ensure_webhook_schema(conn)

    def route(self, path: str) -> Source:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "webhooks" or parts[1] not in PLATFORMS:
            raise Rejected(HTTPStatus.NOT_FOUND, "unknown route; POST /webhooks/{shopify|woocommerce|network}/<id>")
        source = self.sources.get((parts[1], parts[2]))
        if source is None:
            raise Rejected(HTTPStatus.NOT_FOUND, f"no {parts[1]} source `{parts[2]}` with a webhook secret")
        return source

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[HTTPStatus, str]:
        """Verify and land one delivery; returns (status, message). Headers are matched case-insensitively."""
        h = {k.lower(): v for k, v in headers.items()}
        source = self.route(path)
        platform = source.platform
        given = h.get(platform.signature_header.lower(), "")
        if not given or not hmac.compare_digest(given.strip(), sign(source.secret, body)):
            raise Rejected(HTTPStatus.UNAUTHORIZED, f"missing or wrong {platform.signature_header}")
        delivery_id = h.get(platform.delivery_header.lower(), "").strip()
        if not delivery_id or len(delivery_id) > 200:
            raise Rejected(HTTPStatus.BAD_REQUEST, f"missing {platform.delivery_header}")
        topic = h.get(platform.topic_header.lower(), "").strip() if platform.topic_header else "clicks"
        if topic not in platform.topics:
            raise Rejected(HTTPStatus.BAD_REQUEST, f"topic `{topic}` not handled; expected {sorted(platform.topics)}")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Rejected(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        records = payload if isinstance(payload, list) else [payload]
        if not records or not all(isinstance(r, dict) for r in records):
            raise Rejected(HTTPStatus.BAD_REQUEST, "body must be a JSON object (or a list of objects)")
        if platform.entity == "orders" and len(records) != 1:
            raise Rejected(HTTPStatus.BAD_REQUEST, "an order webhook carries exactly one order object")
        validate = VALIDATORS.get(platform.name)
        if validate is not None:
            for position, record in enumerate(records, start=1):
                try:
                    validate(record, position, self.salt)
                except RecordError as exc:  # the sender sees which field is wrong; nothing is landed
                    raise Rejected(HTTPStatus.BAD_REQUEST, str(exc)) from None
        self._fetch_refunds(source, records)
        return self._land(source, delivery_id, topic, records)

    def _fetch_refunds(self, source: Source, records: list[dict]) -> None:
        """A WooCommerce order body lists its refunds by id and total only; their dates and amounts come from
        `/orders/{id}/refunds`, fetched here as the poll does. Landing the body as it is would make the order's
        refunds vanish (and its commission grow) until the next poll. When the partner API cannot answer, 503
        makes WooCommerce deliver again later; nothing is landed meanwhile."""
        partner = source.partner
        if source.platform.name != "woocommerce" or partner is None or not any(r.get("refunds") for r in records):
            return
        ref = SourceRef(partner.id, partner.credentials_env or "")
        try:
            auth = split_key_secret(source_credentials(partner), ref)
            with make_session(REFUND_LOOKUP_POLICY, partner.requests_per_second) as session:
                attach_refunds(session, orders_url(partner.base_url or ""), ref, auth, records)
        except (SourceError, requests.RequestException) as exc:
            log.warning("%s: webhook order refunds not fetched: %s", partner.id, str(exc).splitlines()[0][:300])
            raise Rejected(HTTPStatus.SERVICE_UNAVAILABLE,
                           "the order's refunds could not be fetched from the storefront API; deliver again later"
                           ) from None

    def _seen(self, conn: psycopg.Connection, source: Source, delivery_id: str) -> bool:
        row = conn.execute(
            "select 1 from raw.webhook_deliveries where platform = %s and source_id = %s and delivery_id = %s",
            (source.platform.name, source.source_id, delivery_id),
        ).fetchone()
        conn.commit()
        return row is not None

    def _land(self, source: Source, delivery_id: str, topic: str, records: list[dict]) -> tuple[HTTPStatus, str]:
        platform = source.platform
        with connect(self.url) as conn:
            if self._seen(conn, source, delivery_id):
                raise Rejected(HTTPStatus.CONFLICT, f"delivery {delivery_id} was already received")
            load_platform = "referral_network" if platform.name == "network" else platform.name
            load_id = start_load(conn, source.source_id, f"webhook_{platform.entity}", load_platform, None)
            try:
                with conn.transaction():
                    inserted = conn.execute(
                        "insert into raw.webhook_deliveries (platform, source_id, delivery_id, topic, load_id) "
                        "values (%s, %s, %s, %s, %s) on conflict do nothing",
                        (platform.name, source.source_id, delivery_id, topic, load_id),
                    ).rowcount
                    if inserted != 1:  # a concurrent duplicate won the race
                        raise Rejected(HTTPStatus.CONFLICT, f"delivery {delivery_id} was already received")
                    if platform.entity == "orders":
                        outcome = land_orders_page(conn, load_id, source.source_id, platform.name, records,
                                                   salt=self.salt, cursor_cap=_NO_CURSOR_MOVE)
                    else:
                        outcome = land_clicks_page(conn, load_id, source.source_id, records, salt=self.salt,
                                                   cursor_cap=_NO_CURSOR_MOVE)
                    conn.execute(
                        "insert into raw.webhook_outbox (asset_uri, platform, source_id, delivery_id) "
                        "values (%s, %s, %s, %s)",
                        (table_uri("raw", platform.entity, self.url), platform.name, source.source_id, delivery_id),
                    )
            except Rejected as exc:
                finish_load(conn, load_id, "failed", exc.reason)
                raise
            except Exception as exc:
                finish_load(conn, load_id, "failed", f"{type(exc).__name__}: {exc}")
                raise
            finish_load(conn, load_id, "succeeded")
        log.info("%s %s delivery %s (%s): %d landed, %d quarantined", platform.name, source.source_id,
                 delivery_id, topic, outcome.landed, outcome.quarantined)
        if self.on_landed:
            self.on_landed()
        return HTTPStatus.OK, f"landed {outcome.landed}, quarantined {outcome.quarantined}"


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "alliance-webhooks"

        def _answer(self, status: HTTPStatus, message: str) -> None:
            data = json.dumps({"status": int(status), "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/healthz":
                self._answer(HTTPStatus.NOT_FOUND, "not found")
                return
            try:
                with connect(receiver.url) as conn:
                    conn.execute("select 1")
                self._answer(HTTPStatus.OK, "ok")
            except Exception as exc:  # noqa: BLE001 - health is a yes/no
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, type(exc).__name__)

        def do_POST(self) -> None:  # noqa: N802
            try:
                length_text = self.headers.get("Content-Length")
                if length_text is None or not length_text.isdigit():
                    self.close_connection = True
                    raise Rejected(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
                length = int(length_text)
                if length > receiver.max_body:
                    self.close_connection = True  # do not read (or land) an oversized body
                    raise Rejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {receiver.max_body} bytes")
                body = self.rfile.read(length)
                status, message = receiver.handle(self.path, dict(self.headers.items()), body)
                self._answer(status, message)
            except Rejected as exc:
                log.warning("refused %s: %d %s", self.path, exc.status, exc.reason)
                self._answer(exc.status, exc.reason)
            except Exception:
                log.exception("webhook %s failed; answered 500 so the sender retries", self.path)
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; retry later")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep access logs quiet
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class WebhookServer:
    """A ThreadingHTTPServer in a background thread, plus the outbox notifier; `stop()` ends both."""

    def __init__(self, receiver: Receiver, host: str = "127.0.0.1", port: int = 0, notifier=None) -> None:  # noqa: ANN001
        self.receiver = receiver
        self.httpd = ThreadingHTTPServer((host, port), make_handler(receiver))
        self.httpd.daemon_threads = True
        self.notifier = notifier
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="webhooks", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookServer:
        if self.notifier:
            self.notifier.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.notifier:
            self.notifier.stop()
