"""bench/freshness: webhook-to-published latency (p50, p95) on the embedded default stack.

Real parts: the embedded PostgreSQL, Airflow 3.3 (api-server, scheduler, dag-processor, triggerer,
LocalExecutor), the `alliance webhooks` receiver notifying Airflow through its REST API. Each sample
posts one signed Shopify orders/create webhook and waits until the order is in analytics.fct_orders.
Also reports where the time goes (median task durations and scheduling delay of the transform runs).

    make bench-freshness            # or: .venv/bin/python bench/freshness.py --samples 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alliance.demo import load_sandbox_env  # noqa: E402
from alliance.freshness import live_stack, post_order, shopify_order, summarize, wait_published  # noqa: E402
from alliance.warehouse import parse_url, warehouse_url  # noqa: E402


def _fresh_database() -> tuple[str, str]:
    server = warehouse_url()
    parts = parse_url(server)
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    name = f"alliance_bench_{uuid.uuid4().hex[:8]}"
    admin = f"postgresql://{auth}@{parts.host}:{parts.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{name}", admin


def _breakdown(stack) -> dict:  # noqa: ANN001
    client = stack.airflow.api()
    runs = client._call("GET", "/api/v2/dags/alliance_transform/dagRuns", params={"limit": 100}).json()["dag_runs"]
    per_task: dict[str, list[float]] = {}
    queue_delay: list[float] = []
    for run in runs:
        tis = client._call("GET", f"/api/v2/dags/alliance_transform/dagRuns/{run['dag_run_id']}/taskInstances"
                           ).json()["task_instances"]
        for ti in tis:
            if ti.get("duration") is not None:
                per_task.setdefault(ti["task_id"], []).append(ti["duration"])
        if run.get("queued_at") and run.get("start_date"):
            queued = datetime.fromisoformat(run["queued_at"])
            started = datetime.fromisoformat(run["start_date"])
            queue_delay.append((started - queued).total_seconds())
    return {"runs": len(runs), "median_task_seconds": {k: round(statistics.median(v), 1) for k, v in per_task.items()},
            "median_queued_to_start_seconds": round(statistics.median(queue_delay), 2) if queue_delay else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    load_sandbox_env()
    url, admin = _fresh_database()
    os.environ["ALLIANCE_WAREHOUSE_URL"] = url
    secret = os.environ["NORTHWIND_WEBHOOK_SECRET"]
    latencies: list[float] = []
    try:
        started = time.monotonic()
        with live_stack(url, ROOT / "config" / "demo.yml") as stack:
            print(f"stack ready in {time.monotonic() - started:.0f}s; posting {args.samples} webhooks", flush=True)
            for i in range(args.samples):
                order_id = f"bench-{i}"
                t0 = time.monotonic()
                resp = post_order(stack.webhooks.url, "northwind", secret, shopify_order(order_id))
                resp.raise_for_status()
                wait_published(stack, "northwind", {order_id}, timeout=300)
                latencies.append(time.monotonic() - t0)
                print(f"  sample {i + 1}: {latencies[-1]:.1f}s", flush=True)
            breakdown = _breakdown(stack)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{parse_url(url).dbname}" with (force)')
    stats = summarize(latencies)
    result = {**{k: round(v, 1) if isinstance(v, float) else v for k, v in stats.items()}, **breakdown,
              "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    print(f"\nwebhook-to-published: p50 {stats['p50']:.1f}s, p95 {stats['p95']:.1f}s over {stats['n']} samples "
          f"(target p50 < 30s: {'met' if stats['p50'] < 30 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
