"""dbt runs the documented way: dbtRunner with a per-run profile; this process's os.environ and dbt stay untouched."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import psycopg
import yaml

from alliance.config import AllianceConfig, load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import (
    SESSION_SETTINGS,
    dbt_vars_from_config,
    log_dir,
    run_dbt,
    run_profile_dir,
)
from alliance.incremental import dbt_build
from alliance.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]


def _demo_config_in(url: str) -> AllianceConfig:
    """The demo config, with the warehouse's bookkeeping tables and config tables in place."""
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    return config


def test_a_build_leaves_os_environ_and_dbt_untouched(fresh_database_factory) -> None:
    url = fresh_database_factory("dbtenv")
    config = _demo_config_in(url)
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
    try:  # nothing of dbt or its adapters replaced in this process
        from dbt.adapters.postgres.connections import PostgresCredentials
    except ImportError:
        return
    assert "host" in PostgresCredentials._connection_keys(None)  # noqa: SLF001 - reading, to prove it is dbt's own
    assert not hasattr(PostgresCredentials, "_alliance_port_free_parse")


def test_the_run_profile_is_private_and_names_the_run_warehouse() -> None:
    url = "postgresql://bob:s%40cret@db.example:6543/wh"
    with run_profile_dir(url, "alliance_build_x") as folder:
        profile = yaml.safe_load((folder / "profiles.yml").read_text())
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "profiles.yml").stat().st_mode) == 0o600
    assert not folder.exists()  # the password does not outlive the run
    output = profile["alliance"]["outputs"][profile["alliance"]["target"]]
    assert {k: output[k] for k in ("host", "port", "user", "password", "dbname", "schema")} == {
        "host": "db.example", "port": 6543, "user": "bob", "password": "s@cret", "dbname": "wh",
        "schema": "alliance_build_x"}


def test_dbt_connections_run_with_the_session_settings(fresh_database_factory) -> None:
    """Each model's connection executes the settings (the pre-hook), and so does each data test's query (its own
    connection, no hook: macros/session_settings.sql): read from the SQL dbt logged as it ran it."""
    url = fresh_database_factory("dbtsettings")
    config = _demo_config_in(url)
    log_file = log_dir() / "dbt.log"
    start = log_file.stat().st_size if log_file.is_file() else 0
    outcome = run_dbt(["build", "--select", "stg_cfg__partners stg_cfg__contracts", "--indirect-selection", "cautious"],
                      url, "alliance_build", dbt_vars_from_config(config))
    assert outcome.success, outcome.failures
    with log_file.open("rb") as handle:
        handle.seek(start)
        logged = handle.read().decode(errors="replace")
    assert logged.count("set_config('work_mem'") >= 2, "each model's connection runs the session settings"
    test_queries = [chunk for chunk in logged.split("On test.")[1:] if "dbt_internal_test" in chunk]
    assert test_queries, "the build ran data tests"
    assert all("set_config('work_mem'" in query.split("dbt_internal_test")[0] for query in test_queries), \
        "each data test's query applies the session settings before it scans"
    for name, value in SESSION_SETTINGS.items():
        assert f"set_config('{name}', '{value}', false)" in logged
