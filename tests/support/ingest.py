"""Shared helpers for the exactly-once ingestion tests: a three-platform alliance, ground truth, warehouse state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from alliance.config import AllianceConfig, load_config
from connectors.http import HttpPolicy
from connectors.ingest import IngestOptions, ingest_all
from devstack.sandbox.world import World, build_world, modified_at

ROOT = Path(__file__).resolve().parents[2]
WOO_PARTNER = "lumen"
WOO_CREDENTIALS = "ck_sandbox_lumen:cs_sandbox_lumen"
# Small pages so every sync is many transactions; short backoff so faults cost milliseconds.
FAST = IngestOptions(shopify_page_size=25, network_page_size=200, woocommerce_page_size=25,
                     http=HttpPolicy(retries=8, backoff_factor=0.01, backoff_max=0.2, backoff_jitter=0.01,
                                     connect_retries=2, read_timeout=2.0, connect_timeout=2.0))


def three_platform_config_file(directory: Path) -> Path:
    """config/demo.yml with lumen on WooCommerce: shopify, woocommerce and the referral network in one alliance."""
    text = (ROOT / "config" / "demo.yml").read_text()
    text = text.replace("  - id: lumen\n    name: Lumen Home\n    platform: shopify",
                        "  - id: lumen\n    name: Lumen Home\n    platform: woocommerce")
    text = text.replace("fx_rates: demo_fx_rates.csv", f"fx_rates: {ROOT / 'config' / 'demo_fx_rates.csv'}")
    text = text.replace("alerts: alerts.yml", f"alerts: {ROOT / 'config' / 'alerts.yml'}")
    text = text.replace("claims: demo_claims.csv", f"claims: {ROOT / 'config' / 'demo_claims.csv'}")
    assert "platform: woocommerce" in text
    path = directory / "three_platforms.yml"
    path.write_text(text)
    return path


def sandbox_env(monkeypatch) -> None:  # noqa: ANN001 - pytest's MonkeyPatch
    for line in (ROOT / "config" / "sandbox.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("LUMEN_TOKEN", WOO_CREDENTIALS)


def three_platform_sandbox(tmp_path: Path, monkeypatch, options=None) -> Iterator:  # noqa: ANN001 - pytest's
    """The sandbox APIs for the three-platform config (seed 42) on a free loopback port, its credentials set and
    `handle.config` loaded; for fixtures: `yield from three_platform_sandbox(tmp_path, monkeypatch)`."""
    from devstack.sandbox.server import start_sandbox

    sandbox_env(monkeypatch)
    path = three_platform_config_file(tmp_path)
    handle = start_sandbox(world_for(path), options=options)
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    handle.config = load_config(path)
    yield handle
    handle.stop()


def query_rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """All rows of one query on its own connection (tests read the warehouse between steps)."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def world_for(config_file: Path, seed: int = 42) -> World:
    return build_world(load_config(config_file, require_secrets=False), seed)


def ground_truth(world: World) -> dict[tuple[str, str], datetime]:
    """(partner, order id) -> last modification of every order the sandbox serves now (an edit moves it)."""
    with world.lock:
        return {(p, str(o["id"])): modified_at(o)
                for p, orders in world.orders.items() for o in orders if isinstance(o, dict) and o.get("id")}


def edited_orders(world: World) -> list[tuple[str, str]]:
    """Orders the sandbox edited (it leaves a `note`, which alliance does not keep: data minimisation)."""
    with world.lock:
        return [(p, str(o["id"])) for p, orders in world.orders.items() for o in orders
                if isinstance(o, dict) and o.get("id") and o.get("note")]


def warehouse_orders(url: str) -> dict[tuple[str, str], datetime]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select partner_id, order_id, updated_at from raw.orders").fetchall()
    return {(p, o): u.astimezone(UTC) for p, o, u in rows}


def order_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from raw.orders").fetchone()[0]


def warehouse_clicks(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("select network_id, click_id from raw.clicks").fetchall())


def truth_clicks(world: World) -> set[tuple[str, str]]:
    return {(n, c["Id"]) for n, clicks in world.clicks.items() for c in clicks}


def warehouse_snapshot(url: str) -> dict:
    """Everything that must not depend on how a sync was interrupted (load ids and times excluded)."""
    with psycopg.connect(url) as conn:
        orders = conn.execute("select partner_id, order_id, platform, updated_at, customer_key, payload::text "
                              "from raw.orders order by 1, 2").fetchall()
        clicks = conn.execute("select network_id, click_id, clicked_at, customer_key, payload::text "
                              "from raw.clicks order by 1, 2").fetchall()
        cursors = conn.execute("select source_id, entity, cursor_value from raw.cursors order by 1, 2").fetchall()
    return {"orders": orders, "clicks": clicks, "cursors": cursors}


def sync_until_clean(config: AllianceConfig, url: str, options: IngestOptions = FAST, max_runs: int = 8) -> list:
    """Rerun ingestion (as the scheduler's retries do) until every source succeeds; returns every run's results."""
    runs = []
    for _ in range(max_runs):
        results = ingest_all(config, url, options=options)
        runs.append(results)
        if all(r.status == "succeeded" for r in results):
            return runs
    raise AssertionError(f"still failing after {max_runs} runs: {[r.summary() for r in runs[-1]]}")


def env_for_child(sandbox_url: str, warehouse: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ALLIANCE_SANDBOX_URL"] = sandbox_url
    env["ALLIANCE_WAREHOUSE_URL"] = warehouse
    return env
