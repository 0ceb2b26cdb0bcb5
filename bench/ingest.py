"""bench/ingest: orders/second landed from a Shopify-protocol API, side by side with the ceilings and dlt.

    .venv/bin/python bench/ingest.py --orders 10000            # all contenders
    .venv/bin/python bench/ingest.py --orders 500000 --only ours,http,ceiling

Contenders, each in its own subprocess (so peak RSS is its own) against the same server and PostgreSQL:
  ours      connectors.ingest.ingest_source: validate, hash e-mails, COPY each page, upsert, move the cursor
  http      the same pages fetched by the same connector code, not loaded (the HTTP ceiling, reference)
  ceiling   the same documents fetched beforehand into a file, COPY'd into a one-column jsonb table; only the
            COPY is timed (the landing ceiling)
  dlt       dlt's rest_api source into the same PostgreSQL, default configuration (insert_values, nested tables)
  dlt_csv   dlt's rest_api source, fastest configuration: csv loader files (COPY), max_table_nesting=0

The server speaks the sandbox's Shopify dialect (X-Shopify-Access-Token, limit<=250, updated_at_min,
Link rel=next page_info, call-limit header) but renders ~5 KB orders from a template on the fly, so
500k orders need no 500k-order world in memory and the server is never what is measured.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTNER = "benchshop"
TOKEN = "bench-token"
SALT = "bench-salt"
PAGE = 250
START = datetime(2026, 1, 1, tzinfo=UTC)
API = "/benchshop/admin/api/2025-10/orders.json"


# --- the order template (~5 KB, shaped like a real Shopify order) ------------------------------------------

def _template() -> str:
    from alliance.config import load_config
    from devstack.sandbox.world import build_world

    os.environ.setdefault("ALLIANCE_SANDBOX_URL", "http://127.0.0.1:1")
    world = build_world(load_config(ROOT / "config" / "demo.yml", require_secrets=False), 42)
    order = copy.deepcopy(max(world.orders["northwind"], key=lambda o: len(o["line_items"]) + bool(o["customer"])))
    address = {"first_name": "Ada", "last_name": "Stone", "address1": "969 Market Street", "address2": "Suite 4",
               "city": "San Francisco", "province": "California", "country": "United States", "zip": "94103",
               "phone": "+1 555-555-5555", "company": None, "latitude": 37.7825, "longitude": -122.4098,
               "country_code": "US", "province_code": "CA", "name": "Ada Stone"}
    order.update(billing_address=address, shipping_address=dict(address),
                 client_details={"browser_ip": "203.0.113.7", "accept_language": "en-US,en;q=0.9",
                                 "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
                                               "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                                 "session_hash": None, "browser_width": 1440, "browser_height": 900},
                 note_attributes=[{"name": "gift_message", "value": "Happy birthday!"}],
                 payment_gateway_names=["shopify_payments"], tags="vip, newsletter",
                 tax_lines=[{"price": "4.32", "rate": 0.08, "title": "State Tax"}])
    for item in order["line_items"]:
        item.update(variant_id=44_000_000_001, product_id=8_000_000_001, vendor="Northwind", grams=450,
                    variant_title="Medium / Forest", fulfillment_service="manual", product_exists=True,
                    properties=[], tax_lines=[{"price": "2.16", "rate": 0.08, "title": "State Tax"}],
                    price_set={"shop_money": {"amount": item["price"], "currency_code": "USD"},
                               "presentment_money": {"amount": item["price"], "currency_code": "USD"}},
                    discount_allocations=[], duties=[])
    while len(json.dumps(order)) < 5000:
        order["line_items"].append(copy.deepcopy(order["line_items"][0]))
    order.update(id="@ID@", email="@EMAIL@", contact_email="@EMAIL@", updated_at="@UPDATED@", created_at="@UPDATED@",
                 processed_at="@UPDATED@", name="#@ID@", refunds=[])
    if order.get("customer"):
        order["customer"]["email"] = "@EMAIL@"
    text = json.dumps(order, separators=(",", ":"))
    return text.replace('"@ID@"', "@ID@")


def _ts(i: int) -> str:
    return (START + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def _render(template: str, i: int) -> str:
    return (template.replace("@ID@", str(1_000_000_000 + i)).replace("@UPDATED@", _ts(i))
            .replace("@EMAIL@", f"shopper{i % 5000}@example.test"))


# --- the server ---------------------------------------------------------------------------------------------

def serve(n_orders: int, port_file: str) -> None:
    template = _template()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path != API or self.headers.get("X-Shopify-Access-Token") != TOKEN:
                self.send_response(401 if parts.path == API else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            limit = min(int(query.get("limit", 50)), PAGE)
            if "page_info" in query:
                start = int(base64.urlsafe_b64decode(query["page_info"] + "==").decode())
            elif query.get("updated_at_min"):
                at = datetime.fromisoformat(query["updated_at_min"]).astimezone(UTC)
                start = max(0, int((at - START).total_seconds()))
            else:
                start = 0
            end = min(n_orders, start + limit)
            body = ('{"orders":[' + ",".join(_render(template, i) for i in range(start, end)) + "]}").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Shopify-Shop-Api-Call-Limit", "1/40")
            if end < n_orders:
                token = base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=")
                host = self.headers.get("Host")
                self.send_header("Link", f'<http://{host}{API}?limit={limit}&page_info={token}>; rel="next"')
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


# --- contenders (each runs in its own process: `bench/ingest.py --run NAME ...`) ---------------------------

def _config_file(base_url: str, directory: Path) -> Path:
    path = directory / "bench.yml"
    path.write_text(f"""
reporting_currency: USD
attribution: {{model: last_click, lookback_days: 30}}
lock_days: 30
fx_rates: {ROOT / 'config' / 'demo_fx_rates.csv'}
alerts: {ROOT / 'config' / 'alerts.yml'}
partners:
  - id: {PARTNER}
    name: Bench Shop
    platform: shopify
    base_url: {base_url}/{PARTNER}
    credentials_env: BENCH_TOKEN
    currency: USD
    referral_codes: [BENCH10]
    commission: {{type: percent, rate: 0.10}}
""")
    return path


def run_ours(base_url: str, db: str, **_: object) -> dict:
    from alliance.config import load_config
    from connectors.ingest import ingest_source

    os.environ.update(BENCH_TOKEN=TOKEN, ALLIANCE_PII_SALT=SALT)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(_config_file(base_url, Path(tmp)))
        started = time.perf_counter()
        result = ingest_source(config, PARTNER, db)
        seconds = time.perf_counter() - started
    assert result.status == "succeeded", result.error
    import psycopg

    with psycopg.connect(db) as conn:  # disk of raw landing: heap + TOAST + indexes of every raw table
        raw_bytes = conn.execute("select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace n "
                                 "on n.oid = c.relnamespace where n.nspname = 'raw' and c.relkind = 'r'").fetchone()[0]
    return {"seconds": seconds, "landed": result.landed, "raw_bytes": int(raw_bytes)}


def run_http(base_url: str, docs_file: str | None = None, **_: object) -> dict:
    from connectors.errors import SourceRef
    from connectors.http import make_session
    from connectors.shopify import LinkHeaderPaginator

    session = make_session()
    count = 0
    out = open(docs_file, "w", encoding="utf-8") if docs_file else None  # noqa: SIM115
    started = time.perf_counter()
    ref = SourceRef(PARTNER, "BENCH_TOKEN")
    pages = LinkHeaderPaginator().pages(session, f"{base_url}/{PARTNER}", TOKEN, ref, None)
    for page in pages:
        count += len(page.records)
        if out:  # for the landing ceiling: one document per line, escaped for COPY's text format
            out.writelines(json.dumps(r, separators=(",", ":")).replace("\\", "\\\\") + "\n" for r in page.records)
    seconds = time.perf_counter() - started
    if out:
        out.close()
    return {"seconds": seconds, "landed": count}


def run_ceiling(db: str, docs_file: str, **_: object) -> dict:
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("drop table if exists bench_docs; create table bench_docs (doc jsonb)")
        with open(docs_file, "rb") as source:
            started = time.perf_counter()
            with conn.cursor().copy("copy bench_docs (doc) from stdin") as copy_in:
                while block := source.read(1 << 20):
                    copy_in.write(block)
            seconds = time.perf_counter() - started
        count = conn.execute("select count(*) from bench_docs").fetchone()[0]
    return {"seconds": seconds, "landed": count}


def _run_dlt(base_url: str, db: str, fast: bool) -> dict:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {"base_url": f"{base_url}/{PARTNER}/admin/api/2025-10/",
                   "headers": {"X-Shopify-Access-Token": TOKEN},
                   "paginator": {"type": "header_link"}},
        "resources": [{"name": "orders", "endpoint": {"path": "orders.json", "data_selector": "orders",
                                                       "params": {"limit": PAGE, "status": "any"}},
                       "primary_key": "id", "write_disposition": "merge"}],
    }, max_table_nesting=0 if fast else None)
    # dlt insists on a password; the embedded server trusts loopback and ignores it
    dlt_db = db if "@" in db and ":" in db.split("//", 1)[1].split("@", 1)[0] else db.replace("@", ":unused@", 1)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{uuid.uuid4().hex[:8]}", pipelines_dir=tmp,
                                destination=dlt.destinations.postgres(dlt_db), dataset_name="dlt_bench")
        started = time.perf_counter()
        info = pipeline.run(source, loader_file_format="csv" if fast else None)
        seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    import psycopg

    with psycopg.connect(db) as conn:
        count = conn.execute("select count(*) from dlt_bench.orders").fetchone()[0]
    return {"seconds": seconds, "landed": count}


CONTENDERS = {
    "ours": run_ours,
    "http": run_http,
    "ceiling": run_ceiling,
    "dlt": lambda base_url, db, **_: _run_dlt(base_url, db, fast=False),
    "dlt_csv": lambda base_url, db, **_: _run_dlt(base_url, db, fast=True),
}


def _child(name: str, base_url: str, db: str, docs_file: str | None) -> None:
    import logging

    logging.disable(logging.WARNING)
    result = CONTENDERS[name](base_url=base_url, db=db, docs_file=docs_file)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --- the driver ---------------------------------------------------------------------------------------------

def fresh_db(prefix: str) -> tuple[str, str]:
    """A new empty database on the bench server (ALLIANCE_BENCH_SERVER_URL, else the warehouse's): (url, admin url)."""
    import psycopg

    from alliance.warehouse import parse_url, warehouse_url

    server = os.environ.get("ALLIANCE_BENCH_SERVER_URL") or warehouse_url()
    parts = parse_url(server)
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    name = f"alliance_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = f"postgresql://{auth}@{parts.host}:{parts.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{name}", admin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--only", default="ours,http,ceiling,dlt,dlt_csv")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median round of each contender counts")
    parser.add_argument("--label", default="", help="what this run measures (kept in bench/results/ingest.json)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--docs-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.orders, args.serve)
        return
    if args.run:
        _child(args.run, args.base_url, args.db, args.docs_file)
        return

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    from bench.results import append_run, run_header, summarise

    header = run_header()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), "--orders", str(args.orders)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            base_url = f"http://127.0.0.1:{port_file.read_text()}"
            docs = Path(tmp) / "docs.copy"
            order = ["http"] + [n for n in names if n != "http"] if "ceiling" in names or "http" in names else names
            runs: dict[str, list[dict]] = {name: [] for name in order}
            for round_number in range(1, args.repeat + 1):  # round-robin: a noisy minute hits every contender
                for name in order:
                    r = _run_one(name, base_url, docs)
                    runs[name].append(r)
                    print(f"round {round_number} {name:8s} {r['landed']:>8d} orders in {r['seconds']:8.2f} s = "
                          f"{r['landed'] / r['seconds']:>9.0f} orders/s, peak RSS {r['peak_rss_mb']:.0f} MB"
                          + (f", raw landing {r['raw_bytes'] / r['landed'] * 100_000 / 2**20:.0f} MB per 100k orders"
                             if r.get("raw_bytes") else ""),
                          flush=True)
            results = {name: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for name, rs in runs.items()}
        finally:
            server.terminate()
            server.wait()
    _summary(results, args.orders)
    path = append_run("ingest", {
        **header, "label": args.label, "orders": args.orders, "page_size": PAGE,
        "rounds": runs,
        "orders_per_second": {name: summarise([r["landed"] / r["seconds"] for r in rs]) for name, rs in runs.items()},
    })
    print(f"results appended to {path.relative_to(ROOT)}")


def _run_one(name: str, base_url: str, docs: Path) -> dict:
    db, admin = fresh_db(name)
    cmd = [sys.executable, __file__, "--run", name, "--base-url", base_url, "--db", db]
    if name in ("http", "ceiling"):
        cmd += ["--docs-file", str(docs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        drop_db(admin, db)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def drop_db(admin: str, db: str) -> None:
    """Drop a database `fresh_db` made."""
    import psycopg

    name = db.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _summary(results: dict[str, dict], n: int) -> None:
    rate = {k: v["landed"] / v["seconds"] for k, v in results.items()}
    print(f"\n{n} orders of ~5 KB, pages of {PAGE} (median of the rounds):")
    for name, r in results.items():
        print(f"  {name:8s} {r['landed'] / r['seconds']:>9.0f} orders/s   peak RSS {r['peak_rss_mb']:.0f} MB")
    if "ours" in rate and "ceiling" in rate:
        print(f"  ours / landing ceiling = {rate['ours'] / rate['ceiling']:.0%}   (target >= 60%)")
    if "ours" in rate and "http" in rate:
        print(f"  ours / HTTP ceiling    = {rate['ours'] / rate['http']:.0%}")
    for dlt_name in ("dlt_csv", "dlt"):
        if "ours" in rate and dlt_name in rate:
            print(f"  ours / {dlt_name:7s}        = {rate['ours'] / rate[dlt_name]:.1f}x   (target >= 3x dlt_csv)")


if __name__ == "__main__":
    main()
