"""bench/freshness: webhook-to-published latency (p50, p95) on the embedded default stack.

Real parts: the embedded PostgreSQL, Airflow 3.3 (api-server, scheduler, dag-processor, triggerer,
LocalExecutor), the `alliance webhooks` receiver notifying Airflow through its REST API. Each sample
posts one signed Shopify orders/create webhook and waits until the order is in analytics.fct_orders.
Also reports where the time goes (median task durations and scheduling delay of the transform runs).
`--rounds` (default 3) batches of `--samples` webhooks run on one stack; each round's p50 and p95 and every sample
are appended to bench/results/freshness.json (bench/results.py) with the commit, UTC time and load average, with the
median, best and worst round.

    make bench-freshness            # or: .venv/bin/python bench/freshness.py --rounds 3 --samples 8
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

from alliance.warehouse import parse_url, warehouse_url  # noqa: E402
from bench.results import append_run, quote, run_header, summarise_rounds  # noqa: E402
from devstack.freshness import live_stack, post_order, shopify_order, summarize, wait_published  # noqa: E402
from devstack.sandbox.env import load_sandbox_env  # noqa: E402


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
    parser.add_argument("--samples", type=int, default=8, help="webhooks per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    header = run_header()
    load_sandbox_env()
    url, admin = _fresh_database()
    os.environ["ALLIANCE_WAREHOUSE_URL"] = url
    secret = os.environ["NORTHWIND_WEBHOOK_SECRET"]
    rounds: list[dict] = []
    try:
        started = time.monotonic()
        with live_stack(url, ROOT / "config" / "demo.yml") as stack:
            stack_ready_s = round(time.monotonic() - started, 1)
            print(f"stack ready in {stack_ready_s:.0f}s; {args.rounds} rounds of {args.samples} webhooks", flush=True)
            for number in range(1, args.rounds + 1):
                latencies: list[float] = []
                for i in range(args.samples):
                    order_id = f"bench-{number}-{i}"
                    t0 = time.monotonic()
                    resp = post_order(stack.webhooks.url, "northwind", secret, shopify_order(order_id))
                    resp.raise_for_status()
                    wait_published(stack, "northwind", {order_id}, timeout=300)
                    latencies.append(time.monotonic() - t0)
                    print(f"  round {number} sample {i + 1}: {latencies[-1]:.1f}s", flush=True)
                stats = summarize(latencies)
                rounds.append({"round": number, "samples_s": [round(x, 2) for x in latencies],
                               **{k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()}})
            breakdown = _breakdown(stack)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{parse_url(url).dbname}" with (force)')
    summary = summarise_rounds(rounds, ("p50", "p95"))
    path = append_run("freshness", {**header, "samples_per_round": args.samples, "stack_ready_s": stack_ready_s,
                                    "rounds": rounds, "summary": summary, **breakdown})
    print(json.dumps({"summary": summary, **breakdown}, indent=2))
    p50 = summary["p50"]["median"]
    print(f"\nwebhook-to-published, median (best - worst) of {len(rounds)} rounds of {args.samples}: "
          f"p50 {quote(summary['p50'], ' s')}, p95 {quote(summary['p95'], ' s')} "
          f"(target p50 < 30 s: {'met' if p50 < 30 else 'NOT met'}); every sample in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
