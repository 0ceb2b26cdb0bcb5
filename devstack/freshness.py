"""Webhook-to-published freshness on a live local stack: real Airflow scheduler, real receiver, real warehouse.

Used by the end-to-end test and by `make bench-freshness` (bench/freshness.py): one code path, so the
number the benchmark reports is the path the test proves.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

from alliance.assets import table_uri
from alliance.config import load_config
from alliance.webhooks import AirflowClient, WebhookServer, build_server, sign
from devstack.airflow_local import COMPONENTS, LocalAirflow, airflow_env, ensure_metadata_db, server_env
from devstack.ports import free_port

__all__ = ["Stack", "free_port", "live_stack", "post_order", "published_order_ids", "shopify_order", "summarize",
           "wait_published"]


@dataclass
class Stack:
    airflow: LocalAirflow
    webhooks: WebhookServer
    warehouse_url: str


@contextmanager
def live_stack(warehouse_url: str, config_path: Path, components: tuple[str, ...] | None = None) -> Iterator[Stack]:
    """Airflow (all four components by default, metadata in the warehouse server) + the webhook receiver
    notifying it; everything stopped on exit."""
    components = components or COMPONENTS
    port = free_port()
    env = server_env(airflow_env(warehouse_url, config_path), port)
    ensure_metadata_db(env)
    with LocalAirflow(env, port, components) as airflow:
        airflow.wait_ready()
        airflow.wait_asset(table_uri("raw", "orders", warehouse_url))
        airflow.setup(config_path, unpause=("alliance_transform",))  # ingest stays paused: webhooks only
        server = build_server(load_config(config_path, require_secrets=False), warehouse_url,
                              client=AirflowClient(airflow.url)).start()
        try:
            yield Stack(airflow, server, warehouse_url)
        finally:
            server.stop()
            airflow.quiesce()


def shopify_order(order_id: str, code: str = "BRIGHT5") -> dict:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"id": order_id, "created_at": now, "updated_at": now, "currency": "USD", "subtotal_price": "80.00",
            "email": f"buyer{order_id}@example.com", "discount_codes": [{"code": code}], "refunds": [],
            "financial_status": "paid", "landing_site": "/"}


def post_order(server_url: str, partner: str, secret: str, order: dict) -> requests.Response:
    body = json.dumps(order).encode()
    return requests.post(
        f"{server_url}/webhooks/shopify/{partner}", data=body, timeout=30,
        headers={"X-Shopify-Hmac-Sha256": sign(secret, body), "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                 "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": f"{partner}.myshopify.com",
                 "Content-Type": "application/json"},
    )


def published_order_ids(warehouse_url: str, partner: str, among: set[str] | None = None) -> set[str]:
    """The partner's order ids in analytics.fct_orders, or only those `among` the given ones: a lookup on the
    table's unique index, so polling it costs a loaded warehouse nothing (all of a partner's orders would be
    hundreds of thousands of rows every quarter second)."""
    query, params = "select order_id from analytics.fct_orders where partner_id = %s", [partner]
    if among is not None:
        query, params = query + " and order_id = any(%s)", [partner, sorted(among)]
    try:
        with psycopg.connect(warehouse_url) as conn:
            return {r[0] for r in conn.execute(query, params).fetchall()}
    except psycopg.errors.UndefinedTable:
        return set()


def wait_published(stack: Stack, partner: str, order_ids: set[str], timeout: float = 180) -> float:
    """Seconds until every order id is in analytics.fct_orders; raises TimeoutError after `timeout`."""
    started = time.monotonic()
    while not order_ids <= published_order_ids(stack.warehouse_url, partner, order_ids):
        stack.airflow.check_alive()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"orders {sorted(order_ids)} not published within {timeout:.0f}s; "
                               f"Airflow logs in {stack.airflow.log_dir}")
        time.sleep(0.25)
    return time.monotonic() - started


def summarize(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95_index = min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))
    return {"n": len(ordered), "p50": statistics.median(ordered), "p95": ordered[p95_index],
            "min": ordered[0], "max": ordered[-1]}
