"""A REAL Airflow (api-server, scheduler, dag-processor, LocalExecutor, metadata in PostgreSQL): a webhook
posted to the receiver becomes an asset event, the scheduler runs the transform, the order is published."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from devstack.freshness import live_stack, post_order, shopify_order, wait_published
from devstack.sandbox.env import load_sandbox_env

DEMO = Path(__file__).parents[1] / "config" / "demo.yml"


@pytest.fixture()
def sandbox(monkeypatch):
    from alliance.config import load_config
    from devstack.sandbox.server import start_sandbox
    from devstack.sandbox.world import build_world

    load_sandbox_env()
    handle = start_sandbox(build_world(load_config(DEMO, require_secrets=False), seed=42))
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    yield handle.url
    handle.stop()


def _wait_run(client, dag_id: str, run_id: str, timeout: float = 180) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    raise TimeoutError(f"{dag_id} {run_id} still running after {timeout}s")


def test_webhook_to_published_through_a_real_scheduler(warehouse, sandbox):
    secret = os.environ["NORTHWIND_WEBHOOK_SECRET"]
    with live_stack(warehouse, DEMO) as stack:
        started = time.monotonic()
        since = datetime.now(UTC).isoformat()
        # two deliveries back to back: their asset events may collapse into one run; both must be published
        assert post_order(stack.webhooks.url, "northwind", secret, shopify_order("wh-1")).status_code == 200
        assert post_order(stack.webhooks.url, "northwind", secret, shopify_order("wh-2")).status_code == 200
        wait_published(stack, "northwind", {"wh-1", "wh-2"}, timeout=240)
        latency = time.monotonic() - started
        print(f"\nwebhook-to-published latency through a real scheduler: {latency:.1f}s")
        runs = stack.airflow.api()._call("GET", "/api/v2/dags/alliance_transform/dagRuns",
                                         params={"start_date_gte": since}).json()["dag_runs"]
        # a manual backfill-style ingest run: each mapped partner runs in its own pool (cluster policy)
        client = stack.airflow.api()
        assert client._call("PATCH", "/api/v2/dags/alliance_ingest", json={"is_paused": False}).status_code == 200
        run = client._call("POST", "/api/v2/dags/alliance_ingest/dagRuns",
                           json={"logical_date": None, "conf": {"since": "2026-01-01"}}).json()
        assert _wait_run(client, "alliance_ingest", run["dag_run_id"]) == "success"
        tis = client._call("GET", f"/api/v2/dags/alliance_ingest/dagRuns/{run['dag_run_id']}/taskInstances"
                           ).json()["task_instances"]
        procs = list(stack.airflow.procs.values())
        assert set(stack.airflow.procs) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert 1 <= len(runs) <= 2, "at most one run per asset event, collapsed runs are fine"
    assert {r["run_type"] for r in runs} == {"asset_triggered"}
    with psycopg.connect(warehouse) as conn:
        pending = conn.execute("select count(*) from raw.webhook_outbox where notified_at is null").fetchone()[0]
        attributed = conn.execute(
            "select referrer_partner_id from analytics.fct_order_attribution where order_id = 'wh-1'").fetchone()
    assert pending == 0
    pools = {ti["rendered_map_index"]: ti["pool"] for ti in tis if ti["task_id"].startswith("ingest_")}
    assert pools == {"northwind": "alliance_northwind", "lumen": "alliance_lumen", "tidewater": "alliance_tidewater",
                     "alliance_network": "alliance_alliance_network"}
    assert attributed == ("brightpath",)
    assert all(p.poll() is not None for p in procs), "every Airflow process is stopped"
