"""bench/webhooks: answer latency of a signed delivery while 300 idle connections are held open.

Real parts: the embedded PostgreSQL (a fresh database), the `alliance webhooks` app on uvicorn over loopback, the
inbox processor landing every delivery. Each round opens 300 idle TCP connections to the receiver, then posts
signed Shopify orders/create deliveries one after another on a keep-alive session and times each answer (2xx
required); then it waits until the processor has landed them all. Every run (each round kept) is appended to
bench/results/webhooks.json with the commit, UTC time and load average.

    make bench-webhooks            # or: .venv/bin/python bench/webhooks.py --rounds 3 --deliveries 100
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alliance.config import load_config  # noqa: E402
from alliance.warehouse import parse_url, warehouse_url  # noqa: E402
from alliance.webhooks import build_server, sign  # noqa: E402
from bench.results import append_run, quote, run_header, summarise  # noqa: E402
from devstack.freshness import shopify_order  # noqa: E402
from devstack.sandbox.env import load_sandbox_env  # noqa: E402


def _fresh_database() -> tuple[str, str]:
    parts = parse_url(warehouse_url())
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    name = f"alliance_bench_{uuid.uuid4().hex[:8]}"
    admin = f"postgresql://{auth}@{parts.host}:{parts.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{name}", admin


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def run_round(server_url: str, secret: str, url: str, index: int, deliveries: int, idle: int) -> dict:
    host, port = server_url.removeprefix("http://").rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(idle)]
    latencies: list[float] = []
    ids = []
    try:
        with requests.Session() as session:
            for i in range(deliveries):
                order_id = f"bench-{index}-{i}"
                body = json.dumps(shopify_order(order_id)).encode()
                headers = {"X-Shopify-Hmac-Sha256": sign(secret, body), "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                           "X-Shopify-Topic": "orders/create", "Content-Type": "application/json"}
                t0 = time.perf_counter()
                resp = session.post(f"{server_url}/webhooks/shopify/northwind", data=body, headers=headers,
                                    timeout=30)
                latencies.append(time.perf_counter() - t0)
                resp.raise_for_status()
                ids.append(order_id)
    finally:
        for sock in held:
            sock.close()
    t0 = time.perf_counter()
    while True:  # the processor lands them after the answers
        with psycopg.connect(url) as conn:
            landed = conn.execute("select count(*) from raw.orders where order_id = any(%s)", (ids,)).fetchone()[0]
        if landed == len(ids) or time.perf_counter() - t0 > 120:
            break
        time.sleep(0.05)
    ms = [s * 1000 for s in latencies]
    return {"round": index + 1, "idle_connections": idle, "deliveries": deliveries,
            "answer_ms": {"p50": round(statistics.median(ms), 2), "p95": round(_percentile(ms, 0.95), 2),
                          "max": round(max(ms), 2), "min": round(min(ms), 2)},
            "landed": landed, "landed_all_after_last_answer_s": round(time.perf_counter() - t0, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=100)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args()
    header = run_header()
    load_sandbox_env()
    url, admin = _fresh_database()
    os.environ["ALLIANCE_WAREHOUSE_URL"] = url
    secret = os.environ["NORTHWIND_WEBHOOK_SECRET"]
    rounds = []
    try:
        server = build_server(load_config(ROOT / "config" / "demo.yml", require_secrets=False), url).start()
        try:
            for index in range(args.rounds):
                rounds.append(run_round(server.url, secret, url, index, args.deliveries, args.idle))
                print(json.dumps(rounds[-1]), flush=True)
        finally:
            server.stop()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{parse_url(url).dbname}" with (force)')
    summary = {"answer_p50_ms": summarise([r["answer_ms"]["p50"] for r in rounds], higher_is_better=False),
               "answer_p95_ms": summarise([r["answer_ms"]["p95"] for r in rounds], higher_is_better=False)}
    path = append_run("webhooks", {**header, "idle_connections": args.idle, "deliveries_per_round": args.deliveries,
                                   "rounds": rounds, "summary": summary})
    print(f"signed delivery answered with {args.idle} idle connections held, median (best - worst) of "
          f"{len(rounds)} rounds: p50 {quote(summary['answer_p50_ms'], ' ms', digits=2)}, "
          f"p95 {quote(summary['answer_p95_ms'], ' ms', digits=2)}; kept in {path.relative_to(ROOT)}")
    return 0 if all(r["landed"] == r["deliveries"] for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
