"""A REAL Airflow (api-server, scheduler, dag-processor, LocalExecutor, metadata in PostgreSQL): a webhook
posted to the receiver becomes an asset event, the scheduler runs the transform, the order is published."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

from alliance.demo import load_sandbox_env
from alliance.freshness import live_stack, post_order, shopify_order, wait_published

DEMO = Path(__file__).parents[1] / "config" / "demo.yml"


def test_webhook_to_published_through_a_real_scheduler(warehouse):
    load_sandbox_env()
    secret = os.environ["NORTHWIND_WEBHOOK_SECRET"]
    with live_stack(warehouse, DEMO) as stack:
        started = time.monotonic()
        # two deliveries back to back: their asset events may collapse into one run; both must be published
        assert post_order(stack.webhooks.url, "northwind", secret, shopify_order("wh-1")).status_code == 200
        assert post_order(stack.webhooks.url, "northwind", secret, shopify_order("wh-2")).status_code == 200
        wait_published(stack, "northwind", {"wh-1", "wh-2"}, timeout=240)
        latency = time.monotonic() - started
        print(f"\nwebhook-to-published latency through a real scheduler: {latency:.1f}s")
        runs = stack.airflow.api()._call("GET", "/api/v2/dags/alliance_transform/dagRuns").json()["dag_runs"]
        procs = list(stack.airflow.procs.values())
        assert set(stack.airflow.procs) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert 1 <= len(runs) <= 2, "at most one run per asset event, collapsed runs are fine"
    assert {r["run_type"] for r in runs} == {"asset_triggered"}
    with psycopg.connect(warehouse) as conn:
        pending = conn.execute("select count(*) from raw.webhook_outbox where notified_at is null").fetchone()[0]
        attributed = conn.execute(
            "select referrer_partner_id from analytics.fct_order_attribution where order_id = 'wh-1'").fetchone()
    assert pending == 0
    assert attributed == ("brightpath",)
    assert all(p.poll() is not None for p in procs), "every Airflow process is stopped"
