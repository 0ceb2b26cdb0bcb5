"""Security checks: secrets stay out of logs and tables, alliance_bi reads analytics only, identifiers are safe,
HTTP clients verify TLS. (Forged, duplicate, oversized and smuggled webhooks: tests/test_webhooks.py.)
"""

from __future__ import annotations

import ast
import http.server
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
import requests
import yaml
from support.ingest import FAST

from alliance.config import ConfigError, load_config
from alliance.warehouse import _bundled_bin
from connectors.http import make_session
from connectors.ingest import ingest_source

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"
ALLIANCE = str(Path(sys.executable).with_name("alliance"))
# Distinctive values: if any shows up in output or in the warehouse, a secret leaked.
SECRETS = {
    "NORTHWIND_TOKEN": "shpat-S3CRET-northwind-9f2c7e",
    "LUMEN_TOKEN": "shpat-S3CRET-lumen-41b8d0",
    "TIDEWATER_TOKEN": "shpat-S3CRET-tidewater-c6a913",
    "NETWORK_SID_TOKEN": "ACs3cretsid77:S3CRET-network-e05b2f",
    "ALLIANCE_PII_SALT": "S3CRET-salt-5d7e1a90",
    "NORTHWIND_WEBHOOK_SECRET": "S3CRET-whsec-northwind-aa01",
}


def test_secrets_and_emails_never_reach_logs_or_tables(warehouse, tmp_path):
    """`alliance run -v` (debug logging) with distinctive credentials; grep all output and a full pg_dump."""
    from devstack.sandbox.server import start_sandbox
    from devstack.sandbox.world import build_world

    world = build_world(load_config(DEMO, require_secrets=False), seed=42)
    world.tokens.update(northwind=SECRETS["NORTHWIND_TOKEN"], lumen=SECRETS["LUMEN_TOKEN"],
                        tidewater=SECRETS["TIDEWATER_TOKEN"], alliance_network=SECRETS["NETWORK_SID_TOKEN"])
    with start_sandbox(world) as sandbox:
        env = {**os.environ, **SECRETS, "ALLIANCE_SANDBOX_URL": sandbox.url, "COLUMNS": "200"}
        run = subprocess.run([ALLIANCE, "-v", "run", "--config", str(DEMO)], capture_output=True, text=True,
                             env=env, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    dump = subprocess.run([str(_bundled_bin() / "pg_dump"), "--data-only", "--dbname", warehouse],  # URL: password
                          capture_output=True, text=True, timeout=120, check=True).stdout
    with psycopg.connect(warehouse) as conn:
        orders = conn.execute("select count(*) from analytics.fct_orders").fetchone()[0]
    assert orders > 100 and "northwind" in dump  # the dump really holds the run's data
    emails = {o["email"] for orders in world.orders.values() for o in orders if o.get("email")}
    assert len(emails) > 10
    haystacks = {"stdout": run.stdout, "stderr": run.stderr, "warehouse dump": dump}
    for where, text in haystacks.items():
        for name, value in SECRETS.items():
            for needle in {value, *value.split(":")}:
                assert needle not in text, f"{name} leaked into {where}"
        leaked = [e for e in emails if e in text or e.lower() in text.lower()]
        assert not leaked, f"{len(leaked)} customer e-mails in {where}, e.g. {leaked[0][:3]}***"
    with psycopg.connect(warehouse, autocommit=True) as conn:  # the BI role on a real pipeline's warehouse
        conn.execute("set role alliance_bi")
        assert conn.execute("select count(*) from analytics.fct_orders").fetchone()[0] == orders
    with psycopg.connect(warehouse) as conn:
        tables = [f"{s}.{t}" for s, t in conn.execute(
            "select schemaname, tablename from pg_tables where schemaname in ('raw', 'ops') "
            "or schemaname like 'alliance_build%'")]
    assert "raw.orders" in tables and "ops.runs" in tables
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("set role alliance_bi")
        for table in tables:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select 1 from {table} limit 1")  # noqa: S608 - names from pg_tables


@pytest.mark.parametrize("hostile", [
    'northwind"; drop table raw.orders; --',
    "northwind'); drop schema analytics cascade; --",
    "North Wind",
    "ναι",
    "a" * 64,
])
def test_hostile_partner_id_is_rejected_by_config(tmp_path, monkeypatch, hostile):
    data = yaml.safe_load(DEMO.read_text())
    data["partners"][0]["id"] = hostile
    data["fx_rates"] = str(ROOT / "config" / "demo_fx_rates.csv")
    data["claims"] = str(ROOT / "config" / "demo_claims.csv")
    data.pop("alerts", None)
    path = tmp_path / "hostile.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ConfigError, match="id"):
        load_config(path, require_secrets=False)


# Every f-string interpolation inside SQL passed to execute(): only these reviewed names, each a module constant
# or a value drawn from a constant list / the catalog. Partner ids never appear: they travel as query parameters.
REVIEWED_SQL_INTERPOLATIONS = {
    ("alliance/config_sync.py", "table"), ("alliance/publish.py", "BI_ROLE"),
    ("alliance/publish.py", "PUBLISHED_SCHEMA"), ("alliance/publish.py", "schema"),
    ("alliance/publish.py", "int(lock_timeout_seconds)"), ("alliance/publish.py", "build_schema"),
    ("alliance/publish.py", "table"), ("devstack/demo.py", "table"), ("alliance/run.py", "BUILD_SCHEMA"),
    ("alliance/publish.py", "PREVIOUS_SCHEMA"), ("alliance/publish.py", "SWAP_SCHEMA"),  # module constants
    ("alliance/run.py", "int(wait_seconds * 1000)"),  # an int
    ("alliance/status.py", "schema"), ("alliance/status.py", "table"),
    ("alliance/alerts/store.py", "schema"), ("alliance/alerts/evaluate.py", "PUBLISHED_SCHEMA"),
    ("alliance/alerts/evaluate.py", "K"), ("alliance/alerts/evaluate.py", "OBSERVATIONS"),  # module constants
    ("alliance/incremental.py", "table"), ("alliance/warehouse.py", "DATABASE"),
    ("alliance/dbt_runner.py", "sql"), ("alliance/dbt_runner.py", "limit"),  # dbt-compiled test SQL, an int
    # fixed column lists and the published schema's constant name
    ("alliance/alerts/store.py", "columns"), ("alliance/alerts/evaluate.py", "columns"),
    # erasure: fixed SQL fragments (the customer fields dropped, the erased-key test of a newer version)
    ("connectors/erasure.py", "_WITHOUT_CUSTOMER_FIELDS"), ("connectors/landing.py", "_ERASED_BEFORE"),
    ("connectors/landing.py", "_STORED_PAYLOAD"),
}


def _sql_interpolations() -> set[tuple[str, str]]:
    found = set()
    for folder in ("alliance", "connectors", "dags", "devstack"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("execute", "executemany") and node.args
                        and isinstance(node.args[0], ast.JoinedStr)):
                    for value in node.args[0].values:
                        if isinstance(value, ast.FormattedValue):
                            found.add((str(path.relative_to(ROOT)), ast.unparse(value.value)))
    return found


def test_sql_identifiers_are_never_string_formatted_from_config():
    found = _sql_interpolations()
    assert found, "the scan found nothing: it would prove nothing"
    unexpected = found - REVIEWED_SQL_INTERPOLATIONS
    assert not unexpected, f"f-string SQL with unreviewed values (use psycopg.sql.Identifier / params): {unexpected}"
    assert not any("partner" in expr or "source" in expr for _, expr in found)


@pytest.fixture()
def self_signed_https(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_client_refuses_a_self_signed_certificate(self_signed_https):
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        make_session().get(self_signed_https + "/", timeout=5)


def test_ingest_against_self_signed_partner_fails_with_a_clear_tls_error(self_signed_https, warehouse, tmp_path,
                                                                        monkeypatch):
    data = yaml.safe_load(DEMO.read_text())
    northwind = next(p for p in data["partners"] if p["id"] == "northwind")
    northwind["base_url"] = self_signed_https + "/northwind"
    data["fx_rates"] = str(ROOT / "config" / "demo_fx_rates.csv")
    data["claims"] = str(ROOT / "config" / "demo_claims.csv")
    data.pop("alerts", None)
    data.pop("objectives", None)
    path = tmp_path / "tls.yml"
    path.write_text(yaml.safe_dump(data))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    result = ingest_source(load_config(path), "northwind", warehouse, options=FAST)  # short backoff
    assert (result.status, result.landed) == ("failed", 0)
    assert "TLS verification failed" in result.error and "certificate" in result.error, result.error
    assert result.error.startswith("northwind") and SECRETS["NORTHWIND_TOKEN"] not in result.error
