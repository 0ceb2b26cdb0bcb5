"""Connectors over real loopback HTTP (the sandbox) into a real PostgreSQL warehouse."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from conftest import shared_fixtures_dir

from alliance.config import AllianceConfig, Partner, load_config
from connectors.http import AllianceRetry, HttpPolicy
from connectors.ingest import IngestOptions, ingest_all, ingest_source
from connectors.landing import ensure_raw_schema, land_orders_page
from connectors.pii import PiiError, customer_key, pii_salt, scrub
from devstack.sandbox.server import SandboxOptions, start_sandbox
from devstack.sandbox.world import LATEST_CHANGE, build_world, parse_ts

ROOT = Path(__file__).resolve().parents[1]
SALT = "alliance-demo-salt-not-secret"
FAST = IngestOptions(shopify_page_size=50, network_page_size=500,
                     http=HttpPolicy(backoff_factor=0.01, backoff_jitter=0.01, connect_retries=1, read_timeout=10))
# "now" pinned a day after the sandbox world's last change, whatever the machine's clock says
AFTER_THE_WORLD = replace(FAST, as_of=LATEST_CHANGE + timedelta(days=1))


def _sandbox_env(monkeypatch) -> None:
    for line in (ROOT / "config" / "sandbox.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)


@pytest.fixture()
def sandbox(monkeypatch):
    _sandbox_env(monkeypatch)
    base = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    handle = start_sandbox(build_world(base, seed=42), options=SandboxOptions(page_size=50))
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    handle.config = load_config(ROOT / "config" / "demo.yml")
    yield handle
    handle.stop()


def _rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _raw_text_with_at(url: str) -> list[str]:
    """Every row of every raw table as text, keeping the ones containing '@'."""
    hits = []
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'").fetchall()]
        for table in tables:
            for (text,) in conn.execute(f"select t::text from raw.{table} t").fetchall():
                if "@" in text:
                    hits.append(f"{table}: {text[:200]}")
    return hits


def test_ingest_all_pages_then_rerun_lands_nothing_new(sandbox, warehouse):
    results = ingest_all(sandbox.config, warehouse, options=AFTER_THE_WORLD)
    assert [(r.source_id, r.status) for r in results] == [
        ("northwind", "succeeded"), ("lumen", "succeeded"), ("tidewater", "succeeded"),
        ("alliance_network", "succeeded")]
    by_id = {r.source_id: r for r in results}
    assert by_id["northwind"].pages == 3 and by_id["northwind"].landed == 120
    assert by_id["alliance_network"].landed == len(sandbox.world.clicks["alliance_network"])
    assert by_id["alliance_network"].pages == 36  # sandbox caps pages at 50
    counts = _rows(warehouse, "select (select count(*) from raw.orders), (select count(*) from raw.clicks)")[0]
    assert counts == (360, 1800)
    tie = dict(_rows(warehouse, "select click_id, clicked_at from raw.clicks where click_id in ('999', '1000')"))
    assert tie["999"] == tie["1000"]

    again = ingest_all(sandbox.config, warehouse, options=AFTER_THE_WORLD)
    assert all(r.status == "succeeded" and r.landed == 0 for r in again), again
    assert _rows(warehouse, "select (select count(*) from raw.orders), (select count(*) from raw.clicks)")[0] == counts
    loads = _rows(warehouse, "select status, count(*) from raw.loads group by status")
    assert loads == [("succeeded", 8)]
    cursors = dict(_rows(warehouse, "select source_id, cursor_value from raw.cursors where entity = 'orders'"))
    newest = max(parse_ts(o["updated_at"]) for o in sandbox.world.orders["northwind"])
    assert cursors["northwind"] == newest  # the sync started (as_of) a day after every change the sandbox serves
    assert _raw_text_with_at(warehouse) == []


def test_late_update_is_picked_up_and_latest_version_kept(sandbox, warehouse):
    first = ingest_source(sandbox.config, "northwind", warehouse, options=FAST)
    assert first.landed == 120
    order = sandbox.world.orders["northwind"][3]
    changed = sandbox.world.update_order("northwind", order["id"], financial_status="refunded",
                                         cancelled_at="2026-11-19T10:00:00-05:00")
    second = ingest_source(sandbox.config, "northwind", warehouse, options=FAST)
    assert (second.status, second.landed) == ("succeeded", 1)
    payload, updated_at = _rows(warehouse, "select payload, updated_at from raw.orders where order_id = %s",
                                (str(order["id"]),))[0]
    assert payload["financial_status"] == "refunded" and updated_at == parse_ts(changed["updated_at"])
    assert _rows(warehouse, "select count(*) from raw.orders")[0][0] == 120
    # An older version arriving later (or twice in one page) never replaces the newer one.
    stale = dict(order, financial_status="paid",
                 updated_at=(parse_ts(changed["updated_at"]) - timedelta(hours=1)).isoformat())
    with psycopg.connect(warehouse) as conn:
        outcome = land_orders_page(conn, uuid.uuid4(), "northwind", "shopify", [stale, stale], salt=SALT,
                                   cursor_cap=LATEST_CHANGE + timedelta(days=1))
    assert outcome.landed == 0
    assert _rows(warehouse, "select payload->>'financial_status' from raw.orders where order_id = %s",
                 (str(order["id"]),))[0][0] == "refunded"


class RecordingClock:
    """The injected clock of the partner edge: every wait is recorded (and advances monotonic()), none is slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleeps.append(round(seconds, 6))
            self.now += seconds


def test_429_with_fractional_retry_after_and_rate_limit_reset_are_retried(sandbox, warehouse):
    sandbox.fail_first_n("northwind", 2, status=429, retry_after="0.3")
    sandbox.fail_first_n("alliance_network", 2, status=429, retry_after=None, rate_limit_reset="0.2")
    clock = RecordingClock()
    options = replace(FAST, http=replace(FAST.http, clock=clock))
    northwind = ingest_source(sandbox.config, "northwind", warehouse, options=options)
    assert clock.sleeps.count(0.3) == 2  # waited as the server asked (2 x 0.3 s), on the injected clock
    assert (northwind.status, northwind.landed) == ("succeeded", 120)
    assert sandbox.requests["northwind"] == 3 + 2
    clock.sleeps.clear()
    network = ingest_source(sandbox.config, "alliance_network", warehouse, options=options)
    assert clock.sleeps.count(0.2) == 2  # X-RateLimit-Reset read as seconds to wait
    assert (network.status, network.landed) == ("succeeded", 1800)
    sandbox.fail_first_n("lumen", 1, status=503, retry_after=None)
    assert ingest_source(sandbox.config, "lumen", warehouse, options=FAST).landed == 120


def test_retry_after_parsing_accepts_fractions_and_http_dates():
    retry = AllianceRetry(total=3)
    assert retry.parse_retry_after("2.0") == 2.0
    assert retry.parse_retry_after("3") == 3.0
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


def test_persistent_503_fails_with_a_clear_message(sandbox, warehouse):
    sandbox.fail_first_n("tidewater", 50, status=503, retry_after=None)
    result = ingest_source(sandbox.config, "tidewater", warehouse, options=FAST)
    assert result.status == "failed"
    assert result.error.startswith("tidewater: 503 Service Unavailable from http://127.0.0.1:")
    assert "after 6 retries" in result.error and "rerun later" in result.error


def test_wrong_token_gives_clear_message_and_others_still_load(sandbox, warehouse, monkeypatch):
    monkeypatch.setenv("NORTHWIND_TOKEN", "not-the-right-token")
    results = {r.source_id: r for r in ingest_all(sandbox.config, warehouse, options=FAST)}
    assert results["northwind"].status == "failed"
    assert results["northwind"].error == (
        f"northwind: 401 Unauthorized from {sandbox.url}/northwind/admin/api/2025-10/orders.json: "
        "check the token in NORTHWIND_TOKEN")
    assert "not-the-right-token" not in results["northwind"].error
    assert results["lumen"].status == "succeeded" and results["lumen"].landed == 120
    assert results["alliance_network"].landed == 1800
    assert _rows(warehouse, "select status, error from raw.loads where source_id = 'northwind'") == [
        ("failed", results["northwind"].error)]
    assert _rows(warehouse, "select count(*) from raw.orders where partner_id = 'northwind'")[0][0] == 0


def test_unreachable_partner_gives_clear_message(sandbox, warehouse):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    partners = [p.model_copy(update={"base_url": f"http://127.0.0.1:{closed_port}/lumen"}) if p.id == "lumen" else p
                for p in sandbox.config.partners]
    config = sandbox.config.model_copy(update={"partners": partners})
    results = {r.source_id: r for r in ingest_all(config, warehouse, options=FAST)}
    assert results["lumen"].status == "failed"
    assert results["lumen"].error.startswith(
        f"lumen: cannot reach http://127.0.0.1:{closed_port}/lumen/admin/api/2025-10/orders.json")
    assert "check base_url" in results["lumen"].error
    assert results["northwind"].status == "succeeded"


def test_malformed_records_are_quarantined_and_the_rest_of_the_page_loads(sandbox, warehouse):
    good = sandbox.world.orders["tidewater"][0]
    sandbox.world.add_order("tidewater", dict(good, id=777, subtotal_price="abc", email="Broken@Example.test"))
    sandbox.world.add_order("tidewater", {k: v for k, v in good.items() if k != "id"} | {"note": "no id"})
    sandbox.world.add_order("tidewater", dict(good, id=778, updated_at="yesterday"))
    result = ingest_source(sandbox.config, "tidewater", warehouse, options=FAST)
    assert (result.status, result.landed, result.quarantined) == ("succeeded", 120, 3)
    reasons = dict(_rows(warehouse, "select coalesce(record_key, '-'), reason from raw.quarantine"))
    assert reasons["777"] == "order 777: subtotal_price is not a number (found text)"  # never the value itself
    assert reasons["778"] == "order 778: updated_at is not an ISO-8601 timestamp (found text)"
    assert reasons["-"].endswith("missing id")
    assert _raw_text_with_at(warehouse) == []
    again = ingest_source(sandbox.config, "tidewater", warehouse, options=FAST)  # overlap re-reads some of them
    assert again.status == "succeeded"
    assert _rows(warehouse, "select count(*) from raw.quarantine")[0][0] == 3


def test_customer_key_normalises_whitespace_and_case():
    key = customer_key("shopper042@example.test", SALT)
    assert key == customer_key("  Shopper042@Example.TEST\u00a0\t", SALT)
    assert len(key) == 64 and key != customer_key("shopper042@example.test", "other-salt")
    assert key == hashlib.sha256((SALT + "shopper042@example.test").encode()).hexdigest()
    assert customer_key(None, SALT) is None and customer_key(" \u2003 ", SALT) is None
    scrubbed = scrub({"email": "A@B.test", "customer": {"Email": "a@b.test"}, "CustomerEmail": None,
                      "note": "call c@d.test"}, SALT)
    assert scrubbed["email"] == scrubbed["customer"]["Email"] == customer_key("a@b.test", SALT)
    assert scrubbed["CustomerEmail"] is None and "@" not in json.dumps(scrubbed)


def test_missing_salt_names_the_variable(monkeypatch):
    monkeypatch.delenv("ALLIANCE_PII_SALT", raising=False)
    with pytest.raises(PiiError, match="ALLIANCE_PII_SALT"):
        pii_salt()


class _FixtureShop(BaseHTTPRequestHandler):
    body = (shared_fixtures_dir() / "shopify_orders.json").read_bytes()

    def log_message(self, *args) -> None:
        return

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("X-Shopify-Access-Token") != "fixture-token":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_shared_shopify_fixture_loads_with_utc_updated_at(warehouse, monkeypatch):
    monkeypatch.setenv("FIXTURE_TOKEN", "fixture-token")
    monkeypatch.setenv("ALLIANCE_PII_SALT", SALT)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FixtureShop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = AllianceConfig(partners=[Partner(
            id="fixture_shop", platform="shopify", base_url=f"http://127.0.0.1:{server.server_address[1]}",
            credentials_env="FIXTURE_TOKEN", currency="USD", commission={"type": "percent", "rate": 0.1})])
        result = ingest_source(config, "fixture_shop", warehouse, options=FAST)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.status, result.landed, result.quarantined) == ("succeeded", 1, 0), result.error
    order_id, updated_at, key, payload = _rows(
        warehouse, "select order_id, updated_at, customer_key, payload from raw.orders")[0]
    assert order_id == "450789469"
    assert updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)  # 11:00 at -05:00
    assert key == customer_key("bob.norman@hostmail.com", SALT)
    assert payload["email"] == payload["contact_email"] == payload["customer"]["email"] == key
    assert _raw_text_with_at(warehouse) == []


def test_schema_ddl_is_idempotent(warehouse):
    with psycopg.connect(warehouse) as conn:
        ensure_raw_schema(conn)
        ensure_raw_schema(conn)
        tables = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'").fetchall()}
    assert {"loads", "cursors", "orders", "clicks", "quarantine"} <= tables


@pytest.mark.parametrize("asked", ["25 per page", "100 per page, host serves 25"])
def test_woocommerce_walk_without_total_pages_header_reads_every_order(warehouse, tmp_path, monkeypatch, asked):
    """WordPress always sends X-WP-TotalPages, but a proxy may strip it: then only an empty page ends the walk,
    also when the host answers fewer orders than asked for (a short page mid-collection; the fault campaign
    found an order lost to that)."""
    from support.ingest import FAST as SMALL_PAGES
    from support.ingest import WOO_PARTNER, sandbox_env, three_platform_config_file, world_for

    sandbox_env(monkeypatch)
    path = three_platform_config_file(tmp_path)
    options = SMALL_PAGES if asked == "25 per page" else None
    with start_sandbox(world_for(path), options=SandboxOptions(page_size=25, woo_total_headers=False)) as handle:
        monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
        result = ingest_source(load_config(path), WOO_PARTNER, warehouse, options=options)
        assert (result.status, result.landed) == ("succeeded", len(handle.world.orders[WOO_PARTNER])), result.error
        assert result.pages > 4  # 120 orders in pages of 25, not one page and stop
