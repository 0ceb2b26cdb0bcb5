"""The webhook receiver on real uvicorn over loopback, with a real PostgreSQL: verified deliveries are stored in the
inbox and answered 2xx at once (duplicates and unknown topics too), then processed into raw; everything refused
stores nothing; the inbox survives a restart, a partner API outage and a dead Airflow."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import requests
import uvicorn
from conftest import shared_fixtures_dir

from alliance.config import AllianceConfig, Partner, ReferralNetwork, load_config
from alliance.webhooks import AirflowClient, Limits, build_server, sign
from alliance.webhooks.notify import OutboxNotifier, drain_outbox
from connectors.pii import customer_key
from devstack.sandbox.env import load_sandbox_env

ROOT = Path(__file__).parents[1]
SECRET = "sandbox-northwind-webhook-secret"
NET_SECRET = "sandbox-network-webhook-secret"
WOO_SECRET = "woo-webhook-secret"
SALT = "alliance-demo-salt-not-secret"  # config/sandbox.env
TEST_LIMITS = Limits(max_body=200_000, body_timeout=1.5)


def order(order_id: str = "9001", updated: str = "2026-10-20T10:00:00Z", email: str = "Ada@Example.com") -> dict:
    return {
        "id": order_id, "created_at": "2026-10-20T09:59:00Z", "updated_at": updated, "currency": "USD",
        "subtotal_price": "120.00", "email": email, "discount_codes": [{"code": "BRIGHT5"}], "refunds": [],
        "landing_site": "/?ref=BRIGHT5", "financial_status": "paid",
    }


class Storefront:
    """A WooCommerce REST API on loopback serving the published refunds fixture; `down` makes it answer 503."""

    def __init__(self) -> None:
        refunds = (shared_fixtures_dir() / "woocommerce_order_refunds.json").read_bytes()
        self.down = False
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.seen.append((self.path, self.headers.get("Authorization")))
                ok = self.path.split("?")[0] == "/wp-json/wc/v3/orders/723/refunds"
                status = 503 if outer.down else 200 if ok else 404
                data = refunds if status == 200 else b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"


@pytest.fixture()
def storefront() -> Iterator[Storefront]:
    api = Storefront()
    yield api
    api.httpd.shutdown()
    api.httpd.server_close()


def test_config(storefront_url: str) -> AllianceConfig:
    return AllianceConfig(
        partners=[
            Partner(id="northwind", platform="shopify", base_url="http://127.0.0.1:1",
                    credentials_env="NORTHWIND_TOKEN", webhook_secret_env="NORTHWIND_WEBHOOK_SECRET"),
            Partner(id="woo", platform="woocommerce", base_url=storefront_url, credentials_env="WOO_TOKEN",
                    webhook_secret_env="WOO_SECRET"),
        ],
        referral_networks=[ReferralNetwork(id="alliance_network", platform="referral_network",
                                           base_url="http://127.0.0.1:1", credentials_env="NETWORK_SID_TOKEN",
                                           webhook_secret_env="NETWORK_WEBHOOK_SECRET")],
    )


test_config.__test__ = False  # a helper, not a test


@pytest.fixture()
def make_server(warehouse, storefront, monkeypatch) -> Iterator[Callable[..., object]]:
    load_sandbox_env()
    monkeypatch.setenv("WOO_SECRET", WOO_SECRET)
    monkeypatch.setenv("WOO_TOKEN", "ck_test:cs_test")
    started = []

    def make(**kwargs):
        kwargs.setdefault("limits", TEST_LIMITS)
        kwargs.setdefault("retry_base", 0.2)
        srv = build_server(test_config(storefront.url), warehouse, **kwargs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture()
def server(make_server):
    return make_server()


def post(url: str, body: bytes, *, platform: str = "shopify", source: str = "northwind", secret: str = SECRET,
         delivery: str | None = None, topic: str | None = "orders/create", signature: str | None = None
         ) -> requests.Response:
    names = {"shopify": ("X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Topic"),
             "woocommerce": ("X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic"),
             "network": ("X-Alliance-Signature", "X-Alliance-Delivery-Id", None)}[platform]
    headers = {names[0]: signature if signature is not None else sign(secret, body),
               names[1]: delivery or str(uuid.uuid4()), "Content-Type": "application/json"}
    if names[2] and topic is not None:
        headers[names[2]] = topic
    return requests.post(f"{url}/webhooks/{platform}/{source}", data=body, headers=headers, timeout=15)


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def counts(url: str) -> tuple[int, ...]:
    return query(url, "select (select count(*) from raw.webhook_inbox), (select count(*) from raw.orders), "
                      "(select count(*) from raw.clicks), (select count(*) from raw.quarantine), "
                      "(select count(*) from raw.order_deletions)")[0]


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Poll until `check()` is truthy (the processor works after the answer); fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.05)


def processed(url: str, delivery: str) -> bool:
    return bool(query(url, "select 1 from raw.webhook_inbox where delivery_id = %s and status <> 'pending'",
                      (delivery,)))


def raw_http(base_url: str, data: bytes, *, timeout: float = 15.0, then: Callable[[socket.socket], None] | None = None
             ) -> bytes:
    """Send raw bytes, read until the server closes the connection (or `timeout`); returns what it answered."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if then:
                then(sock)
        except OSError:  # the server may answer and close before we are done sending: what it said still counts
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def head(path: str, headers: dict[str, str | bytes]) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- accepted deliveries -------------------------------------------------------------------------------------

def test_signed_order_is_stored_scrubbed_answered_then_landed(server, warehouse):
    body = json.dumps(order()).encode()
    resp = post(server.url, body, delivery="d-1")
    assert resp.status_code == 200, resp.text
    wait_for(lambda: processed(warehouse, "d-1"), "delivery d-1 processed")
    inbox = query(warehouse, "select status, payload::text, received_at from raw.webhook_inbox")
    assert [row[0] for row in inbox] == ["done"]
    assert "example.com" not in inbox[0][1].lower(), "the inbox stores the scrubbed payload only"
    (partner, order_id, payload, key), = query(warehouse, "select partner_id, order_id, payload::text, customer_key "
                                                          "from raw.orders")
    assert (partner, order_id) == ("northwind", "9001")
    assert key == customer_key("ada@example.com", SALT), "the key of the e-mail, not a hash of the key"
    assert json.loads(payload)["email"] == key and "example.com" not in payload.lower()
    pending = query(warehouse, "select asset_uri from raw.webhook_outbox where notified_at is null")
    assert [p[0].endswith("/raw/orders") for p in pending] == [True]
    assert query(warehouse, "select count(*) from raw.cursors where cursor_value > '2000-01-01'")[0][0] == 0, \
        "a webhook never moves the poll cursor forward"


def test_orders_updated_keeps_latest_version(server, warehouse):
    assert post(server.url, json.dumps(order(updated="2026-10-20T12:00:00Z")).encode(), delivery="u-1",
                topic="orders/updated").status_code == 200
    wait_for(lambda: processed(warehouse, "u-1"), "u-1 processed")
    stale = dict(order(updated="2026-10-20T11:00:00Z"), subtotal_price="1.00")
    assert post(server.url, json.dumps(stale).encode(), delivery="u-2", topic="orders/updated").status_code == 200
    wait_for(lambda: processed(warehouse, "u-2"), "u-2 processed")
    assert query(warehouse, "select payload->>'subtotal_price' from raw.orders") == [("120.00",)]


def test_duplicate_delivery_is_2xx_stored_once_landed_once(server, warehouse):
    body = json.dumps(order()).encode()
    first = post(server.url, body, delivery="dup-1")
    replay = post(server.url, json.dumps(order(updated="2026-10-21T00:00:00Z")).encode(), delivery="dup-1")
    assert (first.status_code, replay.status_code) == (200, 200)
    assert "duplicate" in replay.json()["message"]
    wait_for(lambda: processed(warehouse, "dup-1"), "dup-1 processed")
    assert counts(warehouse)[:2] == (1, 1)
    assert query(warehouse, "select records_landed from raw.loads") == [(1,)], "landed once"
    assert query(warehouse, "select updated_at::text from raw.orders")[0][0].startswith("2026-10-20")


def test_unknown_topic_and_woocommerce_ping_are_2xx_and_land_nothing(server, warehouse):
    resp = post(server.url, json.dumps({"id": 5, "email": "ada@example.com"}).encode(), delivery="t-1",
                topic="customers/create")
    assert resp.status_code == 200 and "ignored" in resp.json()["message"]
    assert query(warehouse, "select status, payload from raw.webhook_inbox") == [("ignored", None)]
    ping = requests.post(f"{server.url}/webhooks/woocommerce/woo", data=b"webhook_id=17", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 200, ping.text
    unsigned = requests.post(f"{server.url}/webhooks/woocommerce/woo", data=b'{"id": 1}', timeout=10)
    assert unsigned.status_code == 401, "only the creation ping may come unsigned"
    assert counts(warehouse) == (1, 0, 0, 0, 0)


# --- refused requests ----------------------------------------------------------------------------------------

def test_refused_requests_store_and_land_nothing(server, warehouse):
    body = json.dumps(order()).encode()
    path = "/webhooks/shopify/northwind"
    assert post(server.url, body, secret="wrong-secret").status_code == 401
    assert post(server.url, body, signature="").status_code == 401
    assert post(server.url, body, secret="sandbox-lumen-webhook-secret").status_code == 401  # another partner's
    assert post(server.url, body, source="nobody").status_code == 404
    # a signature header with non-ASCII bytes: a wrong signature (401), not a crash (500)
    non_ascii = raw_http(server.url, head(path, {"X-Shopify-Hmac-Sha256": "sïgnature==".encode(),
                                                 "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "na",
                                                 "Content-Length": str(len(body)), "Connection": "close"}) + body)
    assert non_ascii.startswith(b"HTTP/1.1 401"), non_ascii[:80]
    # over the cap by Content-Length: refused before reading
    big = b'{"pad": "' + b"x" * (TEST_LIMITS.max_body + 10) + b'"}'
    assert post(server.url, big).status_code == 413
    # over the cap while streaming (chunked, no Content-Length): refused once the cap is passed, connection closed

    def chunks(sock: socket.socket) -> None:
        for _ in range(40):
            sock.sendall(b"2000\r\n" + b"x" * 0x2000 + b"\r\n")
        sock.sendall(b"0\r\n\r\n")

    streamed = raw_http(server.url, head(path, {"Transfer-Encoding": "chunked", "X-Shopify-Topic": "orders/create",
                                                "X-Shopify-Hmac-Sha256": "x"}), then=chunks)
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:80]
    # Transfer-Encoding together with Content-Length: refused and closed (h11 alone would let chunked win)
    smuggled = raw_http(server.url, head(path, {"Transfer-Encoding": "chunked", "Content-Length": "5",
                                                "X-Shopify-Hmac-Sha256": sign(SECRET, b"{}")})
                        + b"2\r\n{}\r\n0\r\n\r\n")
    assert smuggled.startswith(b"HTTP/1.1 400") and b"Transfer-Encoding" in smuggled, smuggled[:120]
    # a lying Content-Length: the body never completes; 400 after the read timeout and the connection closed
    liar = raw_http(server.url, head(path, {"Content-Length": "500", "X-Shopify-Topic": "orders/create",
                                            "X-Shopify-Hmac-Sha256": sign(SECRET, body[:100])}) + body[:100])
    assert liar.startswith(b"HTTP/1.1 400"), liar[:80]
    assert counts(warehouse) == (0, 0, 0, 0, 0)


def test_verified_but_invalid_bodies_are_quarantined_not_refused(server, warehouse):
    no_timestamp = dict(order("77"), updated_at=None)
    answers = [post(server.url, json.dumps(no_timestamp).encode(), delivery="q-1").status_code,
               post(server.url, b"{not json", delivery="q-2").status_code,
               post(server.url, b"[1, 2]", delivery="q-3").status_code]
    assert answers == [200, 200, 200]
    wait_for(lambda: all(processed(warehouse, d) for d in ("q-1", "q-2", "q-3")), "q-* processed")
    reasons = [r[0] for r in query(warehouse, "select reason from raw.quarantine where source_id = 'northwind' "
                                              "order by reason")]
    assert len(reasons) == 3, reasons
    assert all(r.startswith("northwind shopify webhook orders/create") for r in reasons), reasons
    assert any("order 77: updated_at" in r and "ISO-8601" in r for r in reasons), reasons
    assert any("body is not JSON" in r for r in reasons) and any("not one order object" in r for r in reasons)
    assert not any("example.com" in r.lower() for r in reasons)
    dumped = query(warehouse, "select string_agg(payload, ' ') from raw.quarantine")[0][0] or ""
    assert "example.com" not in dumped.lower()
    assert counts(warehouse)[1] == 0


# --- topics ----------------------------------------------------------------------------------------------------

def test_delete_topics_record_the_deletion_at_the_inbox_receipt_time(server, warehouse):
    assert post(server.url, json.dumps(order("555")).encode(), delivery="c-555").status_code == 200
    assert post(server.url, b'{"id": 555}', delivery="del-1", topic="orders/delete").status_code == 200
    woo = post(server.url, b'{"id": 723}', platform="woocommerce", source="woo", secret=WOO_SECRET,
               delivery="del-2", topic="order.deleted")
    assert woo.status_code == 200
    assert post(server.url, b'{"name": "no id"}', delivery="del-3", topic="orders/delete").status_code == 200
    wait_for(lambda: all(processed(warehouse, d) for d in ("c-555", "del-1", "del-2", "del-3")), "deletions")
    rows = query(warehouse, "select d.partner_id, d.order_id, d.source, d.deleted_at = i.received_at "
                            "from raw.order_deletions d join raw.webhook_inbox i "
                            "on i.source_id = d.partner_id and i.topic = d.source "
                            "where i.delivery_id in ('del-1', 'del-2') order by 1")
    assert rows == [("northwind", "555", "orders/delete", True), ("woo", "723", "order.deleted", True)]
    reason = query(warehouse, "select reason from raw.quarantine")[0][0]
    assert reason.startswith("northwind shopify webhook orders/delete") and "id: missing" in reason


def test_woocommerce_order_lands_with_refunds_and_an_api_outage_is_retried(make_server, storefront, warehouse):
    """The body lists refunds by id only; the processor fetches them as the poll does. With the storefront API
    down the inbox row stays pending with its error (the sender already has its 200) and lands once it is back."""
    storefront.down = True
    server = make_server()
    woo_order = json.loads((shared_fixtures_dir() / "woocommerce_orders.json").read_text())[1]  # id 723, 2 refunds
    resp = post(server.url, json.dumps(woo_order).encode(), platform="woocommerce", source="woo", secret=WOO_SECRET,
                delivery="w-1", topic="order.updated")
    assert resp.status_code == 200
    wait_for(lambda: query(warehouse, "select attempts >= 1 and last_error like '%%refunds could not be fetched%%' "
                                      "from raw.webhook_inbox where delivery_id = 'w-1'")[0][0], "a failed look-up")
    assert query(warehouse, "select status from raw.webhook_inbox") == [("pending",)]
    assert counts(warehouse)[1] == 0, "never landed without its refunds"
    storefront.down = False
    wait_for(lambda: processed(warehouse, "w-1"), "w-1 processed once the API is back")
    stored = query(warehouse, "select payload -> 'alliance_refunds', payload::text from raw.orders "
                              "where partner_id = 'woo' and order_id = '723'")[0]
    assert [(r["id"], r["amount"], r["date_created_gmt"]) for r in stored[0]] == [
        (726, "10.00", "2017-03-21T20:07:11"), (724, "9.00", "2017-03-21T19:55:37")]
    assert "@" not in stored[1]
    assert storefront.seen[-1][0] == "/wp-json/wc/v3/orders/723/refunds"


def test_a_row_that_keeps_failing_is_marked_failed_for_an_operator(make_server, storefront, warehouse):
    storefront.down = True
    server = make_server(max_attempts=2)
    woo_order = json.loads((shared_fixtures_dir() / "woocommerce_orders.json").read_text())[1]
    assert post(server.url, json.dumps(woo_order).encode(), platform="woocommerce", source="woo", secret=WOO_SECRET,
                delivery="w-9", topic="order.updated").status_code == 200
    row = wait_for(lambda: query(warehouse, "select attempts, last_error from raw.webhook_inbox "
                                            "where status = 'failed'"), "the row marked failed")[0]
    assert row[0] == 2 and "refunds could not be fetched" in row[1]
    health = requests.get(f"{server.url}/healthz", timeout=10).json()
    assert (health["inbox_pending"], health["inbox_failed"]) == (0, 1)
    assert counts(warehouse)[1] == 0


def test_woocommerce_restored_order_lands_as_a_new_version(server, warehouse):
    woo_order = json.loads((shared_fixtures_dir() / "woocommerce_orders.json").read_text())[0]
    assert not woo_order.get("refunds")
    assert post(server.url, json.dumps({"id": woo_order["id"]}).encode(), platform="woocommerce", source="woo",
                secret=WOO_SECRET, delivery="x-1", topic="order.deleted").status_code == 200
    assert post(server.url, json.dumps(woo_order).encode(), platform="woocommerce", source="woo", secret=WOO_SECRET,
                delivery="x-2", topic="order.restored").status_code == 200
    wait_for(lambda: processed(warehouse, "x-1") and processed(warehouse, "x-2"), "both processed")
    assert query(warehouse, "select order_id, payload->>'status', customer_key is not null from raw.orders") == [
        (str(woo_order["id"]), woo_order["status"], True)]
    assert query(warehouse, "select order_id from raw.order_deletions") == [(str(woo_order["id"]),)]


def test_network_clicks_are_verified_and_landed(server, warehouse):
    clicks = [{"Id": "c-1", "EventDate": "2026-10-20T09:00:00Z", "ReferrerPartnerId": "brightpath",
               "DestinationPartnerId": "northwind", "ReferralCode": "BRIGHT5", "CustomerEmail": "ada@example.com"}]
    body = json.dumps(clicks).encode()
    assert post(server.url, body, platform="network", source="alliance_network", secret="nope").status_code == 401
    assert post(server.url, body, platform="network", source="alliance_network", secret=NET_SECRET,
                delivery="n-1").status_code == 200
    wait_for(lambda: processed(warehouse, "n-1"), "n-1 processed")
    (network, click, key, payload), = query(warehouse, "select network_id, click_id, customer_key, payload::text "
                                                       "from raw.clicks")
    assert (network, click) == ("alliance_network", "c-1") and "example.com" not in payload
    assert key == customer_key("ada@example.com", SALT)


def test_customers_data_request_is_recorded_without_personal_data(server, warehouse):
    body = json.dumps({"shop_id": 954889, "shop_domain": "northwind.myshopify.com", "orders_requested": [299938],
                       "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
                       "data_request": {"id": 9999}}).encode()
    assert post(server.url, body, delivery="dr-1", topic="customers/data_request").status_code == 200
    wait_for(lambda: processed(warehouse, "dr-1"), "dr-1 processed")
    (partner, key, request_id), = query(warehouse, "select partner_id, customer_key, shopify_request_id "
                                                   "from raw.webhook_data_requests")
    assert (partner, key, request_id) == ("northwind", customer_key("john@example.com", SALT), "9999")
    stored = query(warehouse, "select payload::text from raw.webhook_inbox")[0][0]
    assert "john@example.com" not in stored


def test_processed_deliveries_past_their_retention_are_purged_the_rest_kept(server, warehouse):
    """The inbox gets a row per delivery for ever unless processed rows go after ALLIANCE_WEBHOOK_RETENTION_DAYS;
    rows still pending or failed, and those a data request is recorded against, stay. The rows' times are moved
    back instead of waiting (the purge compares with the warehouse clock)."""
    from alliance.webhooks.inbox import purge_processed, retention_days

    assert post(server.url, json.dumps(order("9101")).encode(), delivery="ret-1").status_code == 200
    request = json.dumps({"shop_id": 954889, "orders_requested": [1], "customer": {"email": "kim@example.com"},
                          "data_request": {"id": 77}}).encode()
    assert post(server.url, request, delivery="ret-2", topic="customers/data_request").status_code == 200
    assert post(server.url, json.dumps(order("9103")).encode(), delivery="ret-3").status_code == 200
    for delivery in ("ret-1", "ret-2", "ret-3"):
        wait_for(lambda d=delivery: processed(warehouse, d), f"{delivery} processed")
    landed = counts(warehouse)[1]
    with psycopg.connect(warehouse) as conn:  # ret-1 and ret-2 processed 31 days ago, ret-3 today; one row failed
        conn.execute("update raw.webhook_inbox set processed_at = processed_at - interval '31 days'"
                     " where delivery_id in ('ret-1', 'ret-2')")
        # no Airflow here: the events were "notified" 31 days ago, but for ret-3's, still waiting for Airflow
        conn.execute("update raw.webhook_outbox set notified_at = now() - interval '31 days'"
                     " where delivery_id <> 'ret-3'")
        conn.execute("insert into raw.webhook_inbox (platform, source_id, delivery_id, topic, status, next_attempt_at)"
                     " values ('shopify', 'northwind', 'ret-4', 'orders/create', 'failed', now())")
        conn.execute("update raw.webhook_inbox set received_at = received_at - interval '60 days'"
                     " where delivery_id = 'ret-4'")
    with psycopg.connect(warehouse) as conn:
        assert purge_processed(conn, 0) == (0, 0), "0 keeps everything"
        inbox, outbox = purge_processed(conn, 30)
    assert inbox == 1 and outbox == 1
    assert query(warehouse, "select delivery_id from raw.webhook_outbox") == [("ret-3",)], "pending events stay"
    assert {d for (d,) in query(warehouse, "select delivery_id from raw.webhook_inbox")} == {"ret-2", "ret-3", "ret-4"}
    assert query(warehouse, "select count(*) from raw.webhook_data_requests") == [(1,)]
    assert counts(warehouse)[1] == landed, "landed orders are not the inbox's: nothing else is deleted"
    assert retention_days({}) == 30 and retention_days({"ALLIANCE_WEBHOOK_RETENTION_DAYS": "7"}) == 7
    with pytest.raises(ValueError, match="whole number of days"):
        retention_days({"ALLIANCE_WEBHOOK_RETENTION_DAYS": "a month"})


@pytest.mark.parametrize("topic", ["customers/redact", "shop/redact"])
def test_redact_topics_call_erasure_with_the_customer_key(make_server, warehouse, monkeypatch, topic):
    """The processor hands erasure the customer's key at this partner (the scrubbed payload holds it). Until
    connectors/erasure.py is implemented it raises NotImplementedError: the row must then stay pending with the
    error recorded, nothing else changes and nothing crashes; once it is, the row is done and the key is gone."""
    import alliance.webhooks.processor as processor_module

    calls: list[tuple] = []
    real_customer, real_shop = processor_module.erase_customer, processor_module.erase_storefront_customers

    def spy_customer(conn, key, *, partner_id=None):
        calls.append(("customer", key, partner_id))
        return real_customer(conn, key, partner_id=partner_id)

    def spy_shop(conn, partner_id):
        calls.append(("shop", partner_id))
        return real_shop(conn, partner_id)

    monkeypatch.setattr(processor_module, "erase_customer", spy_customer)
    monkeypatch.setattr(processor_module, "erase_storefront_customers", spy_shop)
    server = make_server()
    assert post(server.url, json.dumps(order("1")).encode(), delivery="o-1").status_code == 200
    wait_for(lambda: processed(warehouse, "o-1"), "the customer's order landed")
    body = json.dumps({"shop_id": 954889, "shop_domain": "northwind.myshopify.com", "orders_to_redact": [1],
                       "customer": {"id": 191167, "email": "ADA@example.com ", "phone": "555-625-1199"}}).encode()
    assert post(server.url, body, delivery="r-1", topic=topic).status_code == 200
    row = wait_for(lambda: query(warehouse, "select status, attempts, last_error from raw.webhook_inbox "
                                            "where delivery_id = 'r-1' and attempts >= 1"), "a redact attempt")[0]
    key = customer_key("ada@example.com", SALT)
    assert calls[0] == (("customer", key, "northwind") if topic == "customers/redact" else ("shop", "northwind"))
    assert "555-625" not in query(warehouse, "select payload::text from raw.webhook_inbox where delivery_id = 'r-1'"
                                  )[0][0]
    if topic == "customers/redact":  # without an e-mail, the customer is found through the listed orders
        no_email = json.dumps({"shop_id": 954889, "customer": {"id": 191167}, "orders_to_redact": [1]}).encode()
        assert post(server.url, no_email, delivery="r-2", topic=topic).status_code == 200
        second = wait_for(lambda: query(warehouse, "select coalesce(last_error, outcome) from raw.webhook_inbox "
                                                   "where delivery_id = 'r-2' and attempts >= 1"), "r-2 attempted")
        assert "NotImplementedError" in second[0][0] or second[0][0].startswith("customers/redact: erased"), second
        # the listed order's customer: its key, or (once r-1 erased it) the surrogate it carried, erased again
        assert calls[0] == ("customer", key, "northwind") and len(calls) == 2
        assert calls[1][0] == "customer" and calls[1][2] == "northwind" and len(calls[1][1]) == 64
    if row[0] == "done":  # erasure implemented: the customer's key is gone from their orders
        assert query(warehouse, "select customer_key <> %s from raw.orders", (key,)) == [(True,)]
    else:
        assert row[0] == "pending" and "NotImplementedError" in row[2], row
        assert query(warehouse, "select customer_key from raw.orders") == [(key,)]


# --- restart, load, health -------------------------------------------------------------------------------------

def test_rows_left_unprocessed_are_processed_after_a_restart(make_server, warehouse):
    first = make_server(process=False)  # answers and stores, as a receiver stopped right after answering
    assert post(first.url, json.dumps(order("42")).encode(), delivery="r-42").status_code == 200
    first.stop()
    assert query(warehouse, "select status from raw.webhook_inbox") == [("pending",)]
    assert counts(warehouse)[1] == 0
    make_server()  # a new receiver picks the pending row up at start
    wait_for(lambda: processed(warehouse, "r-42"), "r-42 processed by the new receiver")
    assert query(warehouse, "select order_id from raw.orders") == [("42",)]


def test_300_idle_and_slow_connections_do_not_starve_a_signed_delivery(server, warehouse):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    held = []
    try:
        for i in range(300):
            sock = socket.create_connection((host, int(port)), timeout=10)
            if i % 2:  # slow: a request head trickling in, never finished
                sock.sendall(b"POST /webhooks/shopify/northwind HTTP/1.1\r\nHost: x\r\nX-Shopify-Topic: ord")
            held.append(sock)
        resp = post(server.url, json.dumps(order("300")).encode(), delivery="busy-1")
        assert resp.status_code == 200, resp.text
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: processed(warehouse, "busy-1"), "busy-1 processed")


def test_requests_in_flight_are_limited_idle_connections_are_not(make_server, warehouse):
    """Requests whose head arrived count against the limit (here 2: two bodies that never finish); idle
    connections do not. Over the limit: 503 at once, nothing stored; once they time out, deliveries pass again."""
    server = make_server(limits=Limits(max_in_flight=2, body_timeout=3.0))
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
    stuck = []
    try:
        assert post(server.url, json.dumps(order("1")).encode(), delivery="f-1").status_code == 200
        for _ in range(2):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(head("/webhooks/shopify/northwind", {"Content-Length": "100", "X-Shopify-Hmac-Sha256": "x"}))
            stuck.append(sock)
        over = wait_for(lambda: [r for r in [post(server.url, b"{}", delivery="f-2")] if r.status_code == 503],
                        "the limit reached", timeout=10)
        assert over[0].headers["Retry-After"] == "1"
        assert query(warehouse, "select count(*) from raw.webhook_inbox where delivery_id = 'f-2'") == [(0,)]
        for sock in stuck:  # their body timeout ends them with 400
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert post(server.url, json.dumps(order("3")).encode(), delivery="f-3").status_code == 200
    finally:
        for sock in idle + stuck:
            sock.close()


def test_uvicorn_limit_concurrency_counts_idle_connections():
    """Why the receiver does not use uvicorn's limit_concurrency: it compares the limit with open connections,
    so idle sockets alone make uvicorn answer 503 to a real request."""

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, limit_concurrency=20, lifespan="off", log_config=None,
                                           http="h11"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_for(lambda: server.started, "uvicorn started", timeout=20)
        assert requests.get(url, timeout=5).status_code == 200
        idle = [socket.create_connection(sock.getsockname(), timeout=5) for _ in range(25)]
        time.sleep(0.2)  # let the server accept them (not a timing assertion)
        assert requests.get(url, timeout=5).status_code == 503
        for s in idle:
            s.close()
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_a_request_head_that_never_completes_is_closed(make_server):
    server = make_server(limits=Limits(header_timeout=0.5))
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"POST /webhooks/shopify/northwind HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(100) == b"", "the server closes a connection whose head does not complete"


def test_healthz_uses_the_pool_not_a_connection_per_call(server, warehouse):
    dbname = warehouse.rsplit("/", 1)[1].split("?")[0]

    def backends() -> int:
        return query(warehouse, "select count(*) from pg_stat_activity where datname = %s "
                                "and backend_type = 'client backend' and pid <> pg_backend_pid()", (dbname,))[0][0]

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.extend(
        requests.get(f"{server.url}/healthz", timeout=10).status_code for _ in range(10))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 50
    assert backends() <= TEST_LIMITS.pool_size + 2, "pool + processor + notifier at most"
    assert requests.get(f"{server.url}/healthz", timeout=10).json()["inbox_pending"] == 0


def test_outbox_survives_unreachable_airflow_and_restart(warehouse):
    """Airflow down: the event is stored, processed and acknowledged; the outbox row stays pending and a later
    drain announces it."""
    load_sandbox_env()
    cfg = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    dead = AirflowClient("http://127.0.0.1:9", timeout=1)  # nothing listens on the discard port
    srv = build_server(cfg, warehouse, client=dead, poll=0.2).start()
    try:
        assert post(srv.url, json.dumps(order("1")).encode(), delivery="a-1").status_code == 200
        assert post(srv.url, json.dumps(order("2")).encode(), delivery="a-2").status_code == 200
        wait_for(lambda: processed(warehouse, "a-1") and processed(warehouse, "a-2"), "both processed")
        wait_for(lambda: query(warehouse, "select min(attempts) >= 1 from raw.webhook_outbox")[0][0],
                 "a failed notification attempt")
    finally:
        srv.stop()  # "restart": the process is gone, the outbox is in the warehouse
    assert query(warehouse, "select count(*) from raw.webhook_outbox where notified_at is null") == [(2,)]

    events: list[tuple[str, dict]] = []

    class Recording(AirflowClient):
        def asset_event(self, uri: str, extra: dict) -> None:
            events.append((uri, extra))

    assert drain_outbox(warehouse, Recording("http://unused")) == 2
    assert len(events) == 1 and events[0][1]["deliveries"] == 2, "pending deliveries collapse into one event"
    assert drain_outbox(warehouse, Recording("http://unused")) == 0
    assert OutboxNotifier(warehouse, None).client is None
