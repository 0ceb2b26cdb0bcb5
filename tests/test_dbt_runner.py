"""dbt runs the documented way: its own process and environment; this process's os.environ and dbt stay untouched."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import SESSION_OPTIONS, dbt_process_env, dbt_vars_from_config
from alliance.incremental import dbt_build
from alliance.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]


def test_a_build_leaves_os_environ_and_dbt_untouched(fresh_database_factory) -> None:
    url = fresh_database_factory("dbtenv")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    before = dict(os.environ)
    seen: list[dict[str, str]] = []
    stop = threading.Event()

    def watch() -> None:  # another thread reading the environment while dbt builds
        while not stop.is_set():
            seen.append(dict(os.environ))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        build = dbt_build(url, "alliance_build", dbt_vars_from_config(config))
    finally:
        stop.set()
        watcher.join()
    assert build.outcome.success, build.outcome.failures
    assert len(seen) > 10 and all(env == before for env in seen)  # never changed, not even for a moment
    assert dict(os.environ) == before
    try:  # nothing of dbt or its adapters replaced in this process (dbt ran in its own)
        from dbt.adapters.postgres.connections import PostgresCredentials
    except ImportError:
        return
    assert "host" in PostgresCredentials._connection_keys(None)  # noqa: SLF001 - reading, to prove it is dbt's own
    assert not hasattr(PostgresCredentials, "_alliance_port_free_parse")


def test_the_child_gets_the_run_profile_and_session_settings(monkeypatch) -> None:
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=0")
    env = dbt_process_env("postgresql://bob:pw@db.example:6543/wh", "alliance_build_x")
    assert env["ALLIANCE_DBT_HOST"] == "db.example" and env["ALLIANCE_DBT_PORT"] == "6543"
    assert env["ALLIANCE_DBT_SCHEMA"] == "alliance_build_x"
    assert env["PGOPTIONS"] == f"-c statement_timeout=0 {SESSION_OPTIONS}"
    assert "ALLIANCE_DBT_HOST" not in os.environ
