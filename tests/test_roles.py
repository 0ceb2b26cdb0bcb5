"""Least privilege: each component's role can do its work and is refused what it must not do (real PostgreSQL).

Roles and grants come from alliance/migrations/0010 (alliance/roles.py gives them logins); the BI login from
alliance/publish.py. Every refusal is PostgreSQL's own: psycopg.errors.InsufficientPrivilege.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
import requests

from alliance.config import load_config
from alliance.migrate import migrate
from alliance.publish import bi_url
from alliance.roles import ROLES, enable_login, ensure_airflow_owner, role_password, roles_dir, with_login
from alliance.warehouse import parse_url

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"
AS_OF = date(2026, 12, 5)


@pytest.fixture()
def logins(warehouse) -> dict[str, str]:
    """A login URL per component role on the test's fresh warehouse (the owner URL under "owner")."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        migrate(conn)
    urls = {"owner": warehouse}
    for component, role in ROLES.items():
        password = role_password(role)  # the run's shared password: roles are cluster-wide
        enable_login(warehouse, role, password)
        urls[component] = with_login(warehouse, role, password)
    return urls


def refused(url: str, statement: str, params: tuple = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement, params)


INBOX_ROW = ("insert into raw.webhook_inbox (platform, source_id, delivery_id, topic, payload)"
             " values ('shopify', 'northwind', %s, 'orders/create', '{}')")
ORDER_ROW = ("insert into raw.orders (partner_id, order_id, platform, updated_at, payload, load_id)"
             " values ('northwind', %s, 'shopify', now(), '{}', gen_random_uuid())")


def test_the_webhook_receiver_may_only_insert_into_its_inbox(logins):
    url = logins["webhook_receiver"]
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(INBOX_ROW, ("d-1",)).rowcount == 1
        assert conn.execute("select pending from raw.webhook_inbox_health()").fetchone() == (1,)
    for statement in ("select * from raw.webhook_inbox", "update raw.webhook_inbox set status = 'done'",
                      "delete from raw.webhook_inbox", "select * from raw.orders", "select * from ops.runs",
                      "insert into raw.webhook_outbox (asset_uri, platform, source_id, delivery_id)"
                      " values ('x', 'shopify', 'northwind', 'd')", "create table raw.mine (x int)",
                      "create schema mine", "truncate raw.webhook_inbox"):
        refused(url, statement)
    refused(url, ORDER_ROW, ("o-1",))


def test_the_loader_writes_raw_only(logins):
    url = logins["loader"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ORDER_ROW, ("o-1",))
        conn.execute("update raw.webhook_inbox set status = 'done' where false")
        conn.execute("insert into raw.quarantine (source_id, entity, reason, payload)"
                      " values ('northwind', 'orders', 'a reason', '{}')")  # a serial id: the sequence is usable
    for statement in ("select * from ops.runs", "insert into ops.runs (run_id, status) values ('x', 'running')",
                      "create schema analytics_mine", "create table raw.mine (x int)", "drop table raw.orders",
                      "alter table raw.orders add column x int", "create role someone"):
        refused(url, statement)


def test_the_transformer_reads_raw_and_cannot_change_landed_data(logins):
    url = logins["transformer"]
    with psycopg.connect(logins["loader"], autocommit=True) as conn:
        conn.execute(ORDER_ROW, ("o-1",))
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select count(*) from raw.orders").fetchone() == (1,)
        conn.execute("create schema alliance_build_probe")  # dbt creates its build schemas
        conn.execute("insert into ops.runs (run_id, status) values ('probe', 'running')")
    for statement in ("update raw.orders set payload = '{}'", "delete from raw.orders", "truncate raw.clicks",
                      "update raw.webhook_inbox set status = 'done'", "drop table raw.orders",
                      "create role someone", "alter role alliance_transformer superuser"):
        refused(url, statement)
    refused(url, ORDER_ROW, ("o-2",))


def test_the_airflow_owner_owns_its_database_and_nothing_else(warehouse, fresh_database_factory, logins, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    name = parse_url(fresh_database_factory("airflow")).dbname
    with psycopg.connect(with_login(warehouse, parse_url(warehouse).user, parse_url(warehouse).password, name),
                         autocommit=True) as conn:
        conn.execute("create table legacy (x int)")  # what an older Airflow left, owned by the admin login
    url = ensure_airflow_owner(warehouse, name)
    assert parse_url(url).user == "alliance_airflow" and (roles_dir() / "alliance_airflow").stat().st_mode \
        & 0o777 == 0o600
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table dag_probe (x int)")
        conn.execute("drop table legacy")  # handed over with its database
    refused(with_login(url, "alliance_airflow", parse_url(url).password, parse_url(warehouse).dbname),
            "select * from raw.orders")
    refused(url, "create role someone")
    refused(url, "create database another")


def test_bi_reads_analytics_only(logins, tmp_path, monkeypatch):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    url = bi_url(logins["owner"])
    for statement in ("select * from raw.orders", "select * from raw.webhook_inbox", "select * from ops.runs",
                      "select raw.webhook_inbox_health()"):
        refused(url, statement)


def test_components_run_as_their_roles(logins, sandbox_url, tmp_path, monkeypatch):
    """The loader pulls every partner, the webhook receiver's HTTP side stores a delivery and answers /healthz, the
    processor (loader) lands it, the transformer builds, checks and publishes: each with its own login."""
    from alliance.run import transform
    from alliance.webhooks import build_server
    from connectors.ingest import ingest_all
    from devstack.freshness import post_order, shopify_order

    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    cfg = load_config(DEMO)
    results = ingest_all(cfg, logins["loader"])
    assert all(r.status == "succeeded" for r in results), results
    server = build_server(cfg, logins["loader"], receiver_url=logins["webhook_receiver"], poll=0.2,
                          retry_base=0.2).start()
    try:
        answer = post_order(server.url, "northwind", os.environ["NORTHWIND_WEBHOOK_SECRET"], shopify_order("wh-r1"))
        assert answer.status_code == 200 and answer.json()["message"] == "stored"
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        for _ in range(300):  # the processor lands the delivery after the answer
            if _count(logins["owner"], "select count(*) from raw.webhook_inbox where status = 'done'"):
                break
            time.sleep(0.1)
    finally:
        server.stop()
    outcome = transform(cfg, logins["transformer"], as_of=AS_OF)
    assert outcome.published, outcome.failures
    owner = _count(logins["owner"], "select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'analytics'")
    assert owner == "alliance_transformer"
    assert _count(logins["owner"], "select count(*) from raw.orders where order_id = 'wh-r1'") == 1, \
        "the processor, as the loader, landed the delivery the receiver stored"
    assert _count(logins["owner"], "select count(*) from analytics.fct_orders where order_id = 'wh-r1'") == 1


def _count(url: str, query: str) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]

