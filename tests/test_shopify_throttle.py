"""The Shopify client keeps the call-limit bucket from filling instead of waiting for the 429 (PRODUCT.md §3).

The sandbox's bucket and the client's waits run on ONE injected clock: each fake `sleep()` the client makes
is exactly the time the sandbox's bucket sees leak. No test here waits for real time or measures it.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import psycopg
import pytest
import requests

from alliance.config import load_config
from connectors.http import HttpPolicy, make_session
from connectors.ingest import IngestOptions, ingest_source
from connectors.shopify import CALL_LIMIT_HEADER, CallLimit
from devstack.sandbox.server import SandboxOptions, start_sandbox
from devstack.sandbox.world import build_world

ROOT = Path(__file__).resolve().parents[1]
ORDERS = 2000


class FakeClock:
    """monotonic() only moves when someone sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def _sandbox_env(monkeypatch) -> None:
    for line in (ROOT / "config" / "sandbox.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)


@pytest.fixture()
def clock():
    return FakeClock()


@pytest.fixture()
def small_bucket(monkeypatch, clock):
    """A sandbox whose northwind holds 2,000 orders, pages of 100, a 5-call bucket leaking 2/s on `clock`."""
    _sandbox_env(monkeypatch)
    base = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    world = build_world(base, seed=42)
    template = world.orders["northwind"]
    world.orders["northwind"] = [dict(copy.deepcopy(template[i % len(template)]), id=7_000_000_000 + i)
                                 for i in range(ORDERS)]
    handle = start_sandbox(world, options=SandboxOptions(page_size=100, call_limit=5, leak_per_second=2.0,
                                                         clock=clock))
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    config = load_config(ROOT / "config" / "demo.yml")
    # no requests_per_second: every wait the clock records is the call-limit throttle's
    handle.config = config.model_copy(update={"partners": [
        p.model_copy(update={"requests_per_second": None}) for p in config.partners]})
    yield handle
    handle.stop()


def test_sandbox_bucket_answers_429_when_overfilled(small_bucket):
    """The control: a client that does not wait fills the bucket and the 6th call inside one instant is refused."""
    url = f"{small_bucket.url}/lumen/admin/api/2025-10/orders.json"
    headers = {"X-Shopify-Access-Token": small_bucket.world.tokens["lumen"]}
    answers = [requests.get(url, params={"status": "any", "limit": 1}, headers=headers, timeout=10)
               for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers[CALL_LIMIT_HEADER] for a in answers[:5]] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert answers[5].headers["Retry-After"] and small_bucket.throttled["lumen"] == 1


def test_2000_order_pull_waits_before_the_bucket_fills_and_gets_no_429(small_bucket, clock, warehouse):
    options = IngestOptions(shopify_page_size=250, http=HttpPolicy(clock=clock, backoff_factor=0.01,
                                                                    backoff_jitter=0.01, read_timeout=10))
    result = ingest_source(small_bucket.config, "northwind", warehouse, options=options)
    assert (result.status, result.pages, result.landed) == ("succeeded", 20, ORDERS), result.error
    assert small_bucket.throttled["northwind"] == 0  # not one 429
    assert small_bucket.requests["northwind"] == 20  # and so not one retried call
    # calls 1-4 fill the bucket to 4/5; before each of calls 5-20 the client waits for one call to leak (0.5 s)
    assert clock.sleeps == [0.5] * 16
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select count(*) from raw.orders where partner_id = 'northwind'").fetchone()[0] == ORDERS


def test_call_limit_waits_only_when_the_next_call_would_fill_the_bucket(clock):
    limit = CallLimit(clock)
    assert limit.delay() == 0  # nothing seen yet
    limit.observe("10/40")
    assert limit.delay() == 0
    limit.observe("39/40")  # 39 + 1 >= 40: wait until one call has leaked (2 per second)
    assert limit.delay() == 0.5
    limit.observe("40/40")
    assert limit.delay() == 1.0
    clock.sleep(0.25)
    assert limit.delay() == 0.75  # the leak while we were busy counts
    limit.observe("garbage")  # unreadable: the last reading stands
    assert limit.delay() == 0.75
    assert limit.wait() == 0.75 and limit.delay() == 0


def test_requests_per_second_spacing_waits_on_the_injected_clock(small_bucket, clock):
    """`requests_per_second` spaces calls by the same clock: 4/s means 0.25 s between calls, recorded, not slept."""
    url = f"{small_bucket.url}/tidewater/admin/api/2025-10/orders.json"
    headers = {"X-Shopify-Access-Token": small_bucket.world.tokens["tidewater"]}
    with make_session(HttpPolicy(clock=clock), requests_per_second=4) as session:
        codes = [session.get(url, params={"limit": 1}, headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 200] and clock.sleeps == [0.25, 0.25]
