"""The embedded warehouse: started on demand, reused, stale state recovered or reported, never reset."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from alliance.warehouse import EmbeddedPostgres, WarehouseError, parse_url, redact, warehouse_url


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ALLIANCE_WAREHOUSE_URL", raising=False)
    yield tmp_path / "state"
    EmbeddedPostgres(tmp_path / "state").stop()


def test_started_on_demand_on_tcp_and_reused(home):
    url = warehouse_url()
    parts = parse_url(url)
    assert parts.host == "127.0.0.1" and parts.dbname == "alliance"
    with psycopg.connect(url) as conn:
        conn.execute("create table keep_me (x int)")
        conn.execute("insert into keep_me values (42)")
    assert warehouse_url() == url  # reused, not restarted
    with psycopg.connect(url) as conn:
        assert conn.execute("select x from keep_me").fetchone() == (42,)


def test_sized_for_builds_and_tables_written_once(home):
    """The embedded server is tuned for the transform (alliance.warehouse.server_settings): a table created and filled
    in one transaction, as a dbt model is, goes to its file without being copied into the WAL as well."""
    with psycopg.connect(warehouse_url(), autocommit=True) as conn:
        assert conn.execute("show wal_level").fetchone()[0] == "minimal"
        assert conn.execute("select setting::bigint * 8192 from pg_settings where name = 'shared_buffers'"
                            ).fetchone()[0] > 128 * 2**20
        before = conn.execute("select pg_current_wal_lsn()").fetchone()[0]
        with conn.transaction():
            conn.execute("create table built as select g as id, md5(g::text) as payload"
                         " from generate_series(1, 200000) as g")
        size, wal = conn.execute("select pg_table_size('built'), pg_current_wal_lsn() - %s::pg_lsn",
                                 (before,)).fetchone()
    assert size > 10 * 2**20 and wal < size / 10, f"{wal} bytes of WAL for a {size}-byte table"


def test_stale_pid_is_recovered_and_data_kept(home):
    url = warehouse_url()
    with psycopg.connect(url) as conn:
        conn.execute("create table survivor (x int)")
    pidfile = home / "pgdata" / "postmaster.pid"
    pid = int(pidfile.read_text().splitlines()[0])
    stale = pidfile.read_text()
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    pidfile.write_text(stale)  # a crash leaves the pid file behind
    url2 = warehouse_url()
    with psycopg.connect(url2) as conn:
        assert conn.execute("select to_regclass('survivor') is not null").fetchone()[0]


def test_half_initialised_directory_is_reported_not_reset(home):
    (home / "pgdata").mkdir(parents=True)
    (home / "pgdata" / "something").write_text("precious")
    with pytest.raises(WarehouseError, match="not a PostgreSQL data directory"):
        warehouse_url()
    assert (home / "pgdata" / "something").read_text() == "precious"


def test_configured_url_wins_and_is_redacted(monkeypatch):
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_URL", "postgresql://bi:s3cret@db.example.com:6432/wh")
    assert warehouse_url() == "postgresql://bi:s3cret@db.example.com:6432/wh"
    assert "s3cret" not in redact(warehouse_url())
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_URL", "mysql://x@y/z")
    with pytest.raises(WarehouseError, match="postgresql://"):
        warehouse_url()
