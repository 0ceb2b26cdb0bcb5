"""The embedded warehouse: started on demand, reused, stale state recovered or reported, never reset."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from pathlib import Path

import psycopg
import pytest

from alliance.warehouse import EmbeddedPostgres, WarehouseError, parse_url, redact, warehouse_url


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ALLIANCE_WAREHOUSE_URL", raising=False)
    yield tmp_path / "state"
    server = EmbeddedPostgres(tmp_path / "state")
    server.stop()
    if server.home != server.root:
        shutil.rmtree(server.private, ignore_errors=True)


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


def test_every_login_needs_a_password_and_no_directory_is_widened(home, tmp_path):
    """scram-sha-256 for every login (never trust); the superuser's password generated once, kept with mode 0600;
    the modes of the state dir's parents (pytest's private /tmp/pytest-of-<user> included) stay as they were."""
    before = _modes(tmp_path)
    url = warehouse_url()
    parts = parse_url(url)
    server = EmbeddedPostgres(home)
    assert parts.password and parts.password == server.password()
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    rules = [line.split() for line in (server.pgdata / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules and {rule[-1] for rule in rules} == {"scram-sha-256"}
    for password in (None, "wrong"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=parts.host, port=parts.port, user=parts.user, password=password,
                            dbname=parts.dbname, connect_timeout=5).close()
    with psycopg.connect(url) as conn:
        assert conn.execute("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = current_user"
                            ).fetchone()[0]
    assert _modes(tmp_path) == before, "no parent directory's permissions were widened"
    assert warehouse_url() == url, "the password is generated once"


def test_a_trust_data_directory_is_moved_to_passwords(home):
    """A data directory that older code initialised with `trust` asks for passwords after the next start."""
    url = warehouse_url()
    server = EmbeddedPostgres(home)
    hba = server.pgdata / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    server._pg_ctl("reload")
    parts = parse_url(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the reload is asynchronous: until a login without password gets in
        try:
            psycopg.connect(host=parts.host, port=parts.port, user=parts.user, dbname="postgres").close()
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    assert warehouse_url() == url
    methods = {line.split()[-1] for line in hba.read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert methods == {"scram-sha-256"}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=parts.host, port=parts.port, user=parts.user, dbname="postgres",
                        connect_timeout=5).close()


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
    pidfile = EmbeddedPostgres(home).pgdata / "postmaster.pid"
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
