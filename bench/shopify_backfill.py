"""bench/shopify_backfill: a Shopify store's whole order history backfilled through REST paging vs one bulk operation.

    .venv/bin/python bench/shopify_backfill.py --orders 200000 --rounds 3     # make bench-shopify
    .venv/bin/python bench/shopify_backfill.py --orders 200 --rounds 1 --results-dir /tmp/r   # a smoke run

Both contenders are `connectors.ingest.ingest_source` into a fresh warehouse database, each in its own subprocess
(its peak RSS is its own), against one sandbox (devstack/sandbox) serving the same orders through both APIs with
Shopify's standard-plan throttles: REST's 40-call bucket leaking 2 calls/s (the client waits before it fills), and
GraphQL's 2000-point bucket restoring 100 points/s.
  rest  platform `shopify`: `orders.json?limit=250`, `Link: rel="next"` paging
  bulk  platform `shopify_graphql`, first load: one `bulkOperationRunQuery`, polled, its JSONL streamed from the
        presigned URL, refund line items by `nodes(ids:)` queries
The bulk time includes the sandbox running the operation (projecting every order into JSONL: the stand-in for
Shopify's own run time, which this cannot measure). Each round uses a fresh shop id (fresh buckets) over the same
orders. The orders are copies of the sandbox world's orders (refunds, discount codes, guests, line items...) with
new ids and dates spread over the year before 2026-11-15.

Every run is appended to bench/results/shopify_backfill.json (bench/results.py): both times, the ratio, peak memory,
median (best - worst) of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SALT = "bench-salt"
SHOP = "benchshop"
END = datetime(2026, 11, 15, tzinfo=UTC)
CONTENDERS = ("rest", "bulk")
PLATFORM = {"rest": "shopify", "bulk": "shopify_graphql"}


def shop_id(mode: str, round_number: int) -> str:
    return f"{SHOP}_{mode}_{round_number}"


# --- the sandbox (its own process) --------------------------------------------------------------------------------

def synthetic_orders(count: int) -> list[dict]:
    """`count` orders copied from the sandbox world's (shallow copies: the template's nested parts are shared, the
    world never changes), with fresh ids and creation/update times spread over the year before END."""
    from alliance.config import load_config
    from devstack.sandbox.world import build_world, local_iso

    os.environ.setdefault("ALLIANCE_SANDBOX_URL", "http://127.0.0.1:1")
    world = build_world(load_config(ROOT / "config" / "demo.yml", require_secrets=False), 42)
    templates = world.orders["northwind"]
    span = timedelta(days=365).total_seconds()
    orders = []
    for i in range(count):
        created = END - timedelta(days=365) + timedelta(seconds=span * i / max(count, 1))
        template = templates[i % len(templates)]
        orders.append(dict(template, id=8_000_000_000 + i, name=f"#{100_000 + i}",
                           created_at=local_iso(created, 0), processed_at=local_iso(created, 0),
                           updated_at=local_iso(created + timedelta(minutes=30), 0),
                           cancelled_at=local_iso(created + timedelta(hours=2), 0) if template.get("cancelled_at")
                           else None))
    return orders


def serve(count: int, rounds: int, port_file: str) -> None:
    """One sandbox for the whole run: every round's shop ids serve the same order list."""
    from devstack.sandbox.server import SandboxOptions, start_sandbox
    from devstack.sandbox.world import World, shopify_token

    orders = synthetic_orders(count)
    shops = [shop_id(mode, n) for n in range(1, rounds + 1) for mode in CONTENDERS]
    world = World(seed=42, partners={s: {"platform": PLATFORM[s.split("_")[1]], "currency": "USD",
                                         "referral_codes": []} for s in shops},
                  orders=dict.fromkeys(shops, orders), clicks={}, tokens={s: shopify_token(s) for s in shops},
                  scenarios={})
    handle = start_sandbox(world, options=SandboxOptions(static_world=True, bulk_background=True, bulk_files_kept=1))
    Path(port_file).write_text(str(handle.port))
    try:
        while True:
            time.sleep(3600)
    finally:
        handle.stop()


# --- one contender (its own process) ------------------------------------------------------------------------------

def _config(base_url: str, shop: str, platform: str, directory: Path) -> Path:
    path = directory / "alliance.yml"
    path.write_text(json.dumps({
        "reporting_currency": "USD", "attribution": {"model": "last_click", "lookback_days": 30}, "lock_days": 30,
        "partners": [{"id": shop, "name": "Bench shop", "platform": platform, "base_url": f"{base_url}/{shop}",
                      "credentials_env": "BENCH_SHOP_TOKEN", "currency": "USD", "referral_codes": ["BENCH10"],
                      "commission": {"type": "percent", "rate": 0.1}}],
    }))
    return path


def run_one(mode: str, base_url: str, db: str, shop: str) -> dict:
    """Backfill `shop` through `mode` into `db`; seconds, orders landed, peak RSS."""
    import logging

    from alliance.config import load_config
    from connectors.ingest import ingest_source
    from devstack.sandbox.world import shopify_token

    logging.disable(logging.WARNING)
    os.environ.update(BENCH_SHOP_TOKEN=shopify_token(shop), ALLIANCE_PII_SALT=SALT)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(_config(base_url, shop, PLATFORM[mode], Path(tmp)))
        started = time.perf_counter()
        result = ingest_source(config, shop, db)
        seconds = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"{mode}: {result.error}")
    return {"seconds": round(seconds, 3), "landed": result.landed, "pages": result.pages,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


# --- the driver ---------------------------------------------------------------------------------------------------

def _contender(mode: str, base_url: str, shop: str) -> dict:
    from bench.ingest import drop_db, fresh_db

    db, admin = fresh_db("backfill")
    try:
        out = subprocess.run([sys.executable, __file__, "--run", mode, "--base-url", base_url, "--db", db,
                              "--shop", shop], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{mode} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        drop_db(admin, db)


def measure(orders: int, rounds: int, results_dir: Path | None = None) -> dict:
    """Run both contenders `rounds` times (round-robin) and append the run to the results file; returns the run."""
    from bench import results

    header = results.run_header()
    by_mode: dict[str, list[dict]] = {mode: [] for mode in CONTENDERS}
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), "--orders", str(orders),
                                   "--rounds", str(rounds)])
        try:
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    raise RuntimeError("the sandbox did not start")
                time.sleep(0.1)
            base_url = f"http://127.0.0.1:{port_file.read_text()}"
            for number in range(1, rounds + 1):
                for mode in CONTENDERS:
                    r = _contender(mode, base_url, shop_id(mode, number))
                    if r["landed"] != orders:
                        raise RuntimeError(f"{mode} landed {r['landed']} of {orders} orders")
                    by_mode[mode].append({"round": number, **r})
                    print(f"round {number} {mode:4s} {r['landed']:>8,d} orders in {r['seconds']:9.2f} s, "
                          f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
                ratio = by_mode["rest"][-1]["seconds"] / by_mode["bulk"][-1]["seconds"]
                by_mode.setdefault("ratio", []).append({"round": number, "rest_over_bulk": round(ratio, 3)})
        finally:
            server.terminate()
            server.wait()
    summary = {mode: results.summarise_rounds(by_mode[mode], ("seconds", "peak_rss_mb")) for mode in CONTENDERS}
    summary["rest_over_bulk"] = results.summarise([r["rest_over_bulk"] for r in by_mode["ratio"]])
    run = {**header, "orders": orders, "rest_page_size": 250,
           "throttles": {"rest": "40-call bucket, 2 calls/s", "graphql": "2000-point bucket, 100 points/s"},
           "rounds": by_mode, "summary": summary}
    path = results.append_run("shopify_backfill", run, results_dir)
    print(f"\nrest {results.quote(summary['rest']['seconds'], ' s')}, "
          f"bulk {results.quote(summary['bulk']['seconds'], ' s')}, "
          f"rest/bulk {results.quote(summary['rest_over_bulk'], 'x')}; every round in {path}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=None, help="default: bench/results/")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--run", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--shop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.orders, args.rounds, args.serve)
    elif args.run:
        print(json.dumps(run_one(args.run, args.base_url, args.db, args.shop)))
    else:
        measure(args.orders, args.rounds, args.results_dir)


if __name__ == "__main__":
    main()
