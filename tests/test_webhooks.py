"""The webhook receiver over real loopback HTTP and a real PostgreSQL: accepted events land before the 200,
forged / replayed / malformed / oversized ones land nothing, and the outbox survives a dead Airflow."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import shared_fixtures_dir

from alliance.config import AllianceConfig, Partner, load_config
from alliance.demo import load_sandbox_env
from alliance.freshness import free_port
from alliance.webhooks import AirflowClient, build_server, sign
from alliance.webhooks.notify import OutboxNotifier, drain_outbox
from alliance.webhooks.receiver import Receiver, Rejected

ROOT = Path(__file__).parents[1]
SECRET = "sandbox-northwind-webhook-secret"
NET_SECRET = "sandbox-network-webhook-secret"


def order(order_id: str = "9001", updated: str = "2026-10-20T10:00:00Z", email: str = "Ada@Example.com") -> dict:
    return {
        "id": order_id, "created_at": "2026-10-20T09:59:00Z", "updated_at": updated, "currency": "USD",
        "subtotal_price": "120.00", "email": email, "discount_codes": [{"code": "BRIGHT5"}], "refunds": [],
        "landing_site": "/?ref=BRIGHT5", "financial_status": "paid",
    }


@pytest.fixture()
def server(warehouse):
    load_sandbox_env()
    srv = build_server(load_config(ROOT / "config" / "demo.yml", require_secrets=False), warehouse).start()
    yield srv
    srv.stop()


def post_shopify(url: str, body: bytes, *, secret: str = SECRET, delivery: str | None = None,
                 topic: str = "orders/create", partner: str = "northwind") -> requests.Response:
    headers = {
        "X-Shopify-Hmac-Sha256": sign(secret, body), "X-Shopify-Webhook-Id": delivery or str(uuid.uuid4()),
        "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": f"{partner}.myshopify.com",
        "Content-Type": "application/json",
    }
    return requests.post(f"{url}/webhooks/shopify/{partner}", data=body, headers=headers, timeout=10)


def counts(url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(
            "select (select count(*) from raw.orders), (select count(*) from raw.clicks), "
            "(select count(*) from raw.webhook_deliveries), (select count(*) from raw.webhook_outbox)"
        ).fetchone())


def test_accepted_order_is_landed_scrubbed_before_the_200(server, warehouse):
    resp = post_shopify(server.url, json.dumps(order()).encode())
    assert resp.status_code == 200, resp.text
    with psycopg.connect(warehouse) as conn:
        partner, order_id, payload, key = conn.execute(
            "select partner_id, order_id, payload::text, customer_key from raw.orders").fetchone()
        pending = conn.execute("select asset_uri from raw.webhook_outbox where notified_at is null").fetchall()
        cursors = conn.execute("select count(*) from raw.cursors where cursor_value > '2000-01-01'").fetchone()[0]
    assert (partner, order_id) == ("northwind", "9001")
    assert "example.com" not in payload.lower() and key and len(key) == 64
    assert [p[0].endswith("/raw/orders") for p in pending] == [True]
    assert cursors == 0, "a webhook never moves the poll cursor forward"


def test_orders_updated_keeps_latest_version(server, warehouse):
    assert post_shopify(server.url, json.dumps(order(updated="2026-10-20T12:00:00Z")).encode(),
                        topic="orders/updated").status_code == 200
    stale = dict(order(updated="2026-10-20T11:00:00Z"), subtotal_price="1.00")
    assert post_shopify(server.url, json.dumps(stale).encode(), topic="orders/updated").status_code == 200
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select payload->>'subtotal_price' from raw.orders").fetchone()[0] == "120.00"


def test_forged_replayed_malformed_oversized_land_nothing(server, warehouse):
    body = json.dumps(order()).encode()
    assert post_shopify(server.url, body, secret="wrong-secret").status_code == 401
    headers = {"X-Shopify-Webhook-Id": "x", "X-Shopify-Topic": "orders/create"}
    assert requests.post(f"{server.url}/webhooks/shopify/northwind", data=body, headers=headers,
                         timeout=10).status_code == 401  # no signature at all
    # signed with another partner's secret: still forged for this partner
    assert post_shopify(server.url, body, secret="sandbox-lumen-webhook-secret").status_code == 401
    assert post_shopify(server.url, b"{not json", delivery="m1").status_code == 400
    assert post_shopify(server.url, b"[1, 2]", delivery="m2").status_code == 400
    assert post_shopify(server.url, body, topic="customers/create").status_code == 400
    no_timestamp = dict(order(), updated_at=None)
    refused = post_shopify(server.url, json.dumps(no_timestamp).encode())
    assert refused.status_code == 400 and "updated_at" in refused.json()["message"]
    assert post_shopify(server.url, body, partner="nobody").status_code == 404
    big = b'{"pad": "' + b"x" * 1_100_000 + b'"}'
    assert post_shopify(server.url, big).status_code == 413
    assert counts(warehouse) == (0, 0, 0, 0)
    assert post_shopify(server.url, body, delivery="d-1").status_code == 200
    replay = json.dumps(order(updated="2026-10-21T00:00:00Z")).encode()  # same delivery id, newer body
    assert post_shopify(server.url, replay, delivery="d-1").status_code == 409
    assert counts(warehouse) == (1, 0, 1, 1)
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select updated_at::text from raw.orders").fetchone()[0].startswith("2026-10-20")


def test_woocommerce_and_network_signatures(server, warehouse, monkeypatch):
    clicks = [{"Id": "c-1", "EventDate": "2026-10-20T09:00:00Z", "ReferrerPartnerId": "brightpath",
               "DestinationPartnerId": "northwind", "ReferralCode": "BRIGHT5", "CustomerEmail": "ada@example.com"}]
    body = json.dumps(clicks).encode()
    url = f"{server.url}/webhooks/network/alliance_network"
    forged = requests.post(url, data=body, timeout=10,
                           headers={"X-Alliance-Signature": sign("nope", body), "X-Alliance-Delivery-Id": "n1"})
    assert forged.status_code == 401
    ok = requests.post(url, data=body, timeout=10,
                       headers={"X-Alliance-Signature": sign(NET_SECRET, body), "X-Alliance-Delivery-Id": "n1"})
    assert ok.status_code == 200, ok.text
    with psycopg.connect(warehouse) as conn:
        row = conn.execute("select network_id, click_id, payload::text from raw.clicks").fetchone()
    assert row[:2] == ("alliance_network", "c-1") and "example.com" not in row[2]
    # WooCommerce: a partner on woocommerce with its own secret
    monkeypatch.setenv("WOO_SECRET", "woo-secret")
    cfg = AllianceConfig(partners=[Partner(id="woo", platform="woocommerce", base_url="http://127.0.0.1:1",
                                           credentials_env="WOO_TOKEN", webhook_secret_env="WOO_SECRET")])
    receiver = Receiver(cfg, warehouse)
    fixture = shared_fixtures_dir() / "woocommerce_orders.json"
    woo = json.dumps(json.loads(fixture.read_text())[0]).encode()  # a real WooCommerce order body
    base = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Delivery-ID": "w1"}
    with pytest.raises(Rejected) as forged_woo:
        receiver.handle("/webhooks/woocommerce/woo", {**base, "X-WC-Webhook-Signature": sign("x", woo)}, woo)
    assert forged_woo.value.status == 401
    signed = {**base, "X-WC-Webhook-Signature": sign("woo-secret", woo)}
    status, _ = receiver.handle("/webhooks/woocommerce/woo", signed, woo)
    assert status == 200
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select count(*) from raw.webhook_deliveries where platform = 'woocommerce'"
                            ).fetchone()[0] == 1
        landed = conn.execute("select platform, payload::text from raw.orders where partner_id = 'woo'").fetchall()
    assert len(landed) == 1 and landed[0][0] == "woocommerce" and "@" not in landed[0][1]
    broken = json.dumps({"id": 78, "status": "processing"}).encode()  # no date_modified_gmt: refused, not landed
    bad = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Delivery-ID": "w2",
           "X-WC-Webhook-Signature": sign("woo-secret", broken)}
    with pytest.raises(Rejected) as refused:
        receiver.handle("/webhooks/woocommerce/woo", bad, broken)
    assert refused.value.status == 400


def test_outbox_survives_unreachable_airflow_and_restart(warehouse):
    """Airflow down: the event is landed and acknowledged, stays pending, and a later drain announces it."""
    load_sandbox_env()
    cfg = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    dead = AirflowClient("http://127.0.0.1:9", timeout=1)  # nothing listens on the discard port
    srv = build_server(cfg, warehouse, client=dead, poll=0.2).start()
    try:
        assert post_shopify(srv.url, json.dumps(order("1")).encode()).status_code == 200
        assert post_shopify(srv.url, json.dumps(order("2")).encode()).status_code == 200
    finally:
        srv.stop()  # "restart": the process is gone, the outbox is in the warehouse
    with psycopg.connect(warehouse) as conn:
        pending, attempts = conn.execute(
            "select count(*), max(attempts) from raw.webhook_outbox where notified_at is null").fetchone()
    assert pending == 2 and attempts >= 1

    events: list[tuple[str, dict]] = []

    class Recording(AirflowClient):
        def asset_event(self, uri: str, extra: dict) -> None:
            events.append((uri, extra))

    assert drain_outbox(warehouse, Recording("http://unused")) == 2
    assert len(events) == 1 and events[0][1]["deliveries"] == 2, "pending deliveries collapse into one event"
    assert drain_outbox(warehouse, Recording("http://unused")) == 0
    assert OutboxNotifier(warehouse, None).client is None


def test_woocommerce_webhook_order_lands_with_its_refunds_fetched(warehouse, monkeypatch):
    """The order body lists refunds by id and total only: the receiver fetches them as the poll does, or answers
    503 (nothing landed) so WooCommerce delivers again; an order never lands with its refunds gone."""
    refunds = (shared_fixtures_dir() / "woocommerce_order_refunds.json").read_bytes()
    seen: list[tuple[str, str | None]] = []

    class Storefront(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            ok = self.path == "/wp-json/wc/v3/orders/723/refunds"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(refunds if ok else b"{}")

        def log_message(self, *args):
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Storefront)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    monkeypatch.setenv("WOO_SECRET", "woo-secret")
    monkeypatch.setenv("WOO_TOKEN", "ck_test:cs_test")
    woo_order = json.loads((shared_fixtures_dir() / "woocommerce_orders.json").read_text())[1]  # id 723, 2 refunds
    body = json.dumps(woo_order).encode()

    def deliver(base_url: str, delivery: str) -> tuple[int, str]:
        cfg = AllianceConfig(partners=[Partner(id="woo", platform="woocommerce", base_url=base_url,
                                               credentials_env="WOO_TOKEN", webhook_secret_env="WOO_SECRET")])
        headers = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Delivery-ID": delivery,
                   "X-WC-Webhook-Signature": sign("woo-secret", body)}
        try:
            return Receiver(cfg, warehouse).handle("/webhooks/woocommerce/woo", headers, body)
        except Rejected as exc:
            return exc.status, exc.reason

    try:
        status, reason = deliver(f"http://127.0.0.1:{free_port()}", "w-down")  # the storefront API is down
        assert status == 503 and "deliver again later" in reason
        with psycopg.connect(warehouse) as conn:
            assert conn.execute("select count(*) from raw.orders where partner_id = 'woo'").fetchone()[0] == 0
        status, _ = deliver(f"http://127.0.0.1:{api.server_port}", "w-up")
        assert status == 200
    finally:
        api.shutdown()
    assert seen == [("/wp-json/wc/v3/orders/723/refunds", "Basic " + base64.b64encode(b"ck_test:cs_test").decode())]
    with psycopg.connect(warehouse) as conn:
        stored = conn.execute("select payload -> 'alliance_refunds' from raw.orders where partner_id = 'woo' "
                              "and order_id = '723'").fetchone()[0]
    assert [(r["id"], r["amount"], r["date_created_gmt"]) for r in stored] == [
        (726, "10.00", "2017-03-21T20:07:11"), (724, "9.00", "2017-03-21T19:55:37")]
