"""Atomic publish: the swap, grants for alliance_bi, the run log, and what concurrent readers see."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from support.build_schema import make_build_schema, table_counts

from alliance.migrate import migrate
from alliance.publish import (
    PUBLISH_LOCK_KEY,
    PublishError,
    bi_url,
    gate_and_publish,
    publish,
    record_run,
    rollback,
    stamp_build,
)
from alliance.warehouse import connect


def _raw_and_work_schemas(url: str) -> None:
    with connect(url) as conn:
        migrate(conn)  # the landing tables, as every warehouse has them
        conn.execute("insert into raw.orders (partner_id, order_id, platform, updated_at, payload, load_id)"
                     " values ('northwind', 'o1', 'shopify', now(), '{}', gen_random_uuid())")
        conn.execute("create schema alliance_build_work; create table alliance_build_work.stg (x int)")


def test_publish_swaps_build_into_analytics_and_keeps_comments(warehouse):
    make_build_schema(warehouse, rows=3)
    with connect(warehouse) as conn:
        conn.execute("comment on column alliance_build.fct_orders.net_amount_rc is 'net of refunds, reporting ccy'")
    first = publish(warehouse, run_id="r1")
    assert first.row_counts["fct_orders"] == 3 and not first.replaced_previous

    make_build_schema(warehouse, rows=6)
    second = publish(warehouse, run_id="r2")
    assert second.replaced_previous and second.row_counts["fct_orders"] == 6
    with connect(warehouse) as conn:
        schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
        comment = conn.execute(
            "select col_description('analytics.fct_orders'::regclass, "
            "(select attnum from pg_attribute where attrelid = 'analytics.fct_orders'::regclass "
            "and attname = 'net_amount_rc'))"
        ).fetchone()[0]
    assert "alliance_build" not in schemas and "analytics_prev" in schemas
    assert comment is None  # the second build had no comment: the tables are the build's own tables
    assert table_counts(warehouse, "analytics")["fct_orders"] == 6
    assert table_counts(warehouse, "analytics_prev")["fct_orders"] == 3  # the previous snapshot is kept

    # the third publish retires r1's snapshot: it becomes the next build schema (recycled), unstamped, unreadable
    make_build_schema(warehouse, rows=9)
    publish(warehouse, run_id="r3")
    assert table_counts(warehouse, "analytics")["fct_orders"] == 9
    assert table_counts(warehouse, "analytics_prev")["fct_orders"] == 6
    recycled = table_counts(warehouse, "alliance_build")
    assert recycled["fct_orders"] == 3 and "kpi_alerts" not in recycled and "run_manifest" not in recycled
    with connect(warehouse) as conn:
        stamp = conn.execute("select obj_description('alliance_build'::regnamespace, 'pg_namespace')").fetchone()[0]
    assert stamp == "alliance build schema (a recycled snapshot): not checked"
    with pytest.raises(PublishError, match="was not checked by run r4's gate"):
        publish(warehouse, run_id="r4", require_stamp=True)
    with connect(warehouse, autocommit=True) as conn:
        conn.execute("set role alliance_bi")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from alliance_build.fct_orders")


def test_publish_keeps_the_counts_its_gate_took_and_counts_the_other_tables(warehouse):
    """The gate of an incremental build counts the tables it scoped (exact, on this stamped build): publish reuses
    those instead of counting them again under its lock. A count it is given is kept as given, so 7 here."""
    make_build_schema(warehouse, rows=3)
    result = publish(warehouse, run_id="counted", row_counts={"fct_orders": 7})
    assert result.row_counts["fct_orders"] == 7
    assert result.row_counts["fct_order_attribution"] == table_counts(warehouse, "analytics")["fct_order_attribution"]
    with connect(warehouse) as conn:
        kept = conn.execute("select row_counts->>'fct_orders' from analytics.run_manifest").fetchone()[0]
    assert kept == "7"


def test_column_comments_from_the_build_survive_publish(warehouse):
    make_build_schema(warehouse)
    with connect(warehouse) as conn:
        conn.execute("comment on column alliance_build.fct_orders.net_amount_rc is 'net of refunds'")
    publish(warehouse, run_id="r1")
    with connect(warehouse) as conn:
        comment = conn.execute(
            "select d.description from pg_description d join pg_attribute a "
            "on a.attrelid = d.objoid and a.attnum = d.objsubid "
            "where d.objoid = 'analytics.fct_orders'::regclass and a.attname = 'net_amount_rc'"
        ).fetchone()[0]
    assert comment == "net of refunds"


def test_alliance_bi_reads_analytics_only(warehouse):
    _raw_and_work_schemas(warehouse)
    make_build_schema(warehouse)
    publish(warehouse, run_id="r1")
    record_run(warehouse, "r1", "succeeded")
    with connect(warehouse, autocommit=True) as conn:
        conn.execute("set role alliance_bi")
        assert conn.execute("select count(*) from analytics.fct_orders").fetchone()[0] == 5
        assert conn.execute("select count(*) from analytics.kpi_alerts").fetchone()[0] == 0
        for table in ("raw.orders", "ops.runs", "ops.kpi_alerts", "alliance_build_work.stg"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table analytics.sneaky (x int)")


def test_missing_build_schema_fails_clearly_and_leaves_analytics(warehouse):
    make_build_schema(warehouse, rows=2)
    publish(warehouse, run_id="r1")
    before = table_counts(warehouse, "analytics")
    with pytest.raises(PublishError, match="build schema `alliance_build` does not exist"):
        publish(warehouse, run_id="r2")
    make_build_schema(warehouse, rows=9)
    with connect(warehouse) as conn:
        conn.execute("drop table alliance_build.objective_progress")
    with pytest.raises(PublishError, match="lacks published table\\(s\\) objective_progress"):
        publish(warehouse, run_id="r3")
    assert table_counts(warehouse, "analytics") == before


def test_record_run_upserts_the_run_log(warehouse):
    record_run(warehouse, "r9", "running", step="transform")
    record_run(warehouse, "r9", "failed", step="dbt", message="model x failed", row_counts={"raw.orders": 12})
    with connect(warehouse) as conn:
        row = conn.execute("select status, step, message, row_counts, finished_at is not null from ops.runs").fetchone()
    assert row == ("failed", "dbt", "model x failed", {"raw.orders": 12}, True)
    with pytest.raises(ValueError, match="not one of"):
        record_run(warehouse, "r9", "exploded")


def test_concurrent_readers_see_all_old_or_all_new(warehouse):
    """fct_orders and fct_referrals always have equal row counts within one snapshot; a mix would differ."""
    make_build_schema(warehouse, rows=1)
    publish(warehouse, run_id="r0")
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    with conn.transaction():
                        conn.execute("set transaction isolation level repeatable read")
                        orders = conn.execute("select count(*) from analytics.fct_orders").fetchone()[0]
                        time.sleep(0.005)
                        referrals = conn.execute("select count(*) from analytics.fct_referrals").fetchone()[0]
                    seen.append((orders, referrals))
                except psycopg.errors.DeadlockDetected:
                    continue  # the reader was aborted (never shown a mix); a real BI client retries
                except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                    errors.append(exc)
                    return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for rows in range(2, 8):
            make_build_schema(warehouse, rows=rows)
            publish(warehouse, run_id=f"r{rows}")
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert seen and all(o == r for o, r in seen), [p for p in seen if p[0] != p[1]][:5]
    assert len({o for o, _ in seen}) >= 2  # the reader really overlapped several publishes


def _live_run(url: str) -> str:
    with connect(url) as conn:
        return conn.execute("select obj_description('analytics'::regnamespace, 'pg_namespace')").fetchone()[0]


def test_rollback_restores_the_previous_snapshot_and_back(warehouse):
    with pytest.raises(PublishError, match="no previous snapshot"):
        rollback(warehouse)
    make_build_schema(warehouse, rows=3)
    publish(warehouse, run_id="r1")
    with pytest.raises(PublishError, match="no previous snapshot"):
        rollback(warehouse)
    make_build_schema(warehouse, rows=6)
    publish(warehouse, run_id="r2")

    result = rollback(warehouse)
    assert result.restored.endswith("run r1") and result.replaced.endswith("run r2")
    assert table_counts(warehouse, "analytics")["fct_orders"] == 3
    assert table_counts(warehouse, "analytics_prev")["fct_orders"] == 6
    with connect(warehouse) as conn:
        assert [r[0] for r in conn.execute("select run_id from analytics.run_manifest")] == ["r1"]
        kinds = conn.execute("select kind, status from ops.runs where kind = 'rollback'").fetchall()
    assert kinds == [("rollback", "rolled_back")]
    with connect(warehouse, autocommit=True) as conn:
        conn.execute("set role alliance_bi")
        assert conn.execute("select count(*) from analytics.fct_orders").fetchone()[0] == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from analytics_prev.fct_orders")
    rollback(warehouse)  # a second rollback rolls forward
    assert _live_run(warehouse).endswith("run r2")
    assert table_counts(warehouse, "analytics")["fct_orders"] == 6


def test_analytics_run_manifest_changes_only_with_a_publish(warehouse):
    make_build_schema(warehouse, rows=3)
    gate, result = gate_and_publish(warehouse, run_id="good-1")
    assert gate.passed and result is not None
    make_build_schema(warehouse, rows=3)
    with connect(warehouse) as conn:
        conn.execute("update alliance_build.fct_orders set commissionable_amount = -1 where order_id = 'o2'")
    gate, result = gate_and_publish(warehouse, run_id="bad-1")
    assert not gate.passed and result is None
    with connect(warehouse) as conn:
        published = conn.execute("select run_id, checks_passed > 0, checks_failed, row_counts->>'fct_orders'"
                                 " from analytics.run_manifest").fetchall()
        bad = conn.execute("select status, published, checks_failed, failures from ops.runs"
                           " where run_id = 'bad-1'").fetchone()
    assert published == [("good-1", True, 0, "3")]
    status, was_published, failed, failures = bad
    assert (status, was_published, failed) == ("gate_failed", False, 1)
    assert failures[0]["table"] == "fct_orders" and failures[0]["column"] == "commissionable_amount"
    assert failures[0]["sample_rows"][0]["order_id"] == "o2"


def test_publish_requires_this_runs_gate_stamp(warehouse):
    make_build_schema(warehouse, rows=2)
    stamp_build(warehouse, "run-a")
    with pytest.raises(PublishError, match="was not checked by run run-b's gate"):
        publish(warehouse, run_id="run-b", require_stamp=True)
    publish(warehouse, run_id="run-a", require_stamp=True)
    assert table_counts(warehouse, "analytics")["fct_orders"] == 2


def test_a_second_publish_waits_for_the_lock_then_fails_clearly(warehouse):
    make_build_schema(warehouse, rows=2)
    with psycopg.connect(warehouse) as holder:  # a publish in progress elsewhere
        holder.execute("select pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
        errors: list[Exception] = []

        def second_publish() -> None:
            try:
                publish(warehouse, run_id="r2", lock_timeout_seconds=1)
            except PublishError as exc:
                errors.append(exc)

        thread = threading.Thread(target=second_publish)
        # it waits on the publish lock (seen by the server, not timed by the test) before giving up
        with psycopg.connect(warehouse, autocommit=True) as watcher:
            thread.start()
            waited = False
            while thread.is_alive() and not waited:
                waited = watcher.execute(
                    "select count(*) > 0 from pg_locks where locktype = 'advisory' and not granted "
                    "and classid = %s and objid = %s", (PUBLISH_LOCK_KEY >> 32, PUBLISH_LOCK_KEY & 0xFFFFFFFF),
                ).fetchone()[0]
                time.sleep(0.01)
        thread.join(timeout=60)
        assert waited, "the second publish never waited on the publish lock"
        assert len(errors) == 1
        assert "another publish or rollback held the publish lock for over 1s" in str(errors[0])
    publish(warehouse, run_id="r2")  # once the other one is done, it goes through


def test_a_second_transform_run_exits_with_a_clear_message(warehouse, monkeypatch):
    from alliance.config import load_config
    from alliance.run import RUN_LOCK_KEY, transform

    monkeypatch.setattr("alliance.run.build", lambda *a, **k: pytest.fail("the refused run must not build"))
    config = load_config(Path(__file__).parents[1] / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(warehouse, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
        result = transform(config, warehouse, wait_seconds=0.5)
    assert result.refused and not result.published
    assert "another transform run is in progress on this warehouse" in result.failures[0]
    assert "without building or publishing" in result.failures[0]
    with connect(warehouse) as conn:
        assert conn.execute("select status from ops.runs where run_id = %s",
                            (result.run_id,)).fetchone() == ("refused",)


def test_bi_url_logs_in_read_only_to_analytics_only(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    monkeypatch.delenv("ALLIANCE_BI_PASSWORD", raising=False)
    _raw_and_work_schemas(warehouse)
    make_build_schema(warehouse, rows=2)
    publish(warehouse, run_id="r1")
    make_build_schema(warehouse, rows=4)  # a build schema waiting for its gate
    url = bi_url(warehouse)
    password = (tmp_path / "bi_password").read_text().strip()
    assert oct((tmp_path / "bi_password").stat().st_mode & 0o777) == "0o600"
    assert url.startswith(f"postgresql://alliance_bi_reader:{password}@") and len(password) >= 24
    assert bi_url(warehouse) == url  # stable
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "alliance_bi_reader"
        assert conn.execute("select count(*) from fct_orders").fetchone()[0] == 2  # search_path analytics
        for table in ("raw.orders", "alliance_build.fct_orders", "alliance_build_work.stg", "ops.runs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from {table}")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create temp table t (x int)")


def test_a_bi_reader_never_sees_a_mix_a_missing_table_or_an_error_during_50_publishes(warehouse):
    """Each snapshot n has n orders, n referrals, n last-click rows and an objective at n: a mix would differ."""
    make_build_schema(warehouse, rows=1)
    publish(warehouse, run_id="r1")
    published = {1}
    seen: list[tuple] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    read = """select (select count(*) from analytics.fct_orders), (select count(*) from analytics.fct_referrals),
                     (select count(*) from analytics.fct_order_attribution where attribution_model = 'last_click'),
                     (select sum(actual) from analytics.objective_progress),
                     (select run_id from analytics.run_manifest order by published_at desc limit 1)"""

    def reader() -> None:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute("set role alliance_bi")
            while not stop.is_set():
                try:
                    seen.append(conn.execute(read).fetchone())
                except BaseException as exc:  # noqa: BLE001 - any error at all fails the test
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for n in range(2, 52):
            make_build_schema(warehouse, rows=n)
            published.add(n)
            publish(warehouse, run_id=f"r{n}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    bad = [row for row in seen if not (row[0] == row[1] == row[2] == row[3] and row[0] in published
                                       and row[4] == f"r{row[0]}")]
    assert not bad, bad[:5]
    assert len({row[0] for row in seen}) >= 10, "the readers really overlapped many publishes"


def test_cli_rollback_and_bi_url(warehouse, tmp_path):
    import os
    import subprocess
    import sys

    alliance = str(Path(sys.executable).with_name("alliance"))
    env = {**os.environ, "ALLIANCE_WAREHOUSE_URL": warehouse, "ALLIANCE_HOME": str(tmp_path), "COLUMNS": "300",
           "ALLIANCE_BI_PASSWORD": "s3cret-from-the-vault"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([alliance, *args], capture_output=True, text=True, env=env, timeout=120)

    make_build_schema(warehouse, rows=2)
    publish(warehouse, run_id="r1")
    refused = cli("rollback")
    assert refused.returncode == 1 and "no previous snapshot" in refused.stderr, refused.stderr
    make_build_schema(warehouse, rows=4)
    publish(warehouse, run_id="r2")
    done = cli("rollback")
    assert done.returncode == 0, done.stderr
    assert "analytics is now: alliance published snapshot, run r1" in done.stdout
    assert table_counts(warehouse, "analytics")["fct_orders"] == 2
    url = cli("bi-url")
    assert url.returncode == 0 and url.stdout.strip().startswith(
        "postgresql://alliance_bi_reader:s3cret-from-the-vault@"), url.stdout
    assert not (tmp_path / "bi_password").exists()  # the deployment's secret wins; nothing written


def test_a_forgotten_bi_transaction_cannot_block_a_publish_beyond_its_timeout(warehouse, monkeypatch, tmp_path):
    """A BI session idle in a transaction holding a lock on analytics is ended by the server after the role's
    idle_in_transaction_session_timeout, so the publish waiting for that lock goes through; BI statements are
    bounded by the role's statement_timeout."""
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    monkeypatch.setenv("ALLIANCE_BI_IDLE_IN_TRANSACTION_TIMEOUT", "2s")
    monkeypatch.setenv("ALLIANCE_BI_STATEMENT_TIMEOUT", "1s")
    make_build_schema(warehouse, rows=2)
    publish(warehouse, run_id="r1")
    url = bi_url(warehouse)
    try:
        with psycopg.connect(url, autocommit=True) as runaway:
            assert runaway.execute("show statement_timeout").fetchone()[0] == "1s"
            with pytest.raises(psycopg.errors.QueryCanceled):
                runaway.execute("select pg_sleep(5)")
        forgotten = psycopg.connect(url)  # not autocommit: the first select opens a transaction and keeps its lock
        assert forgotten.execute("select count(*) from fct_orders").fetchone()[0] == 2
        with connect(warehouse) as conn:
            held = conn.execute("select count(*) from pg_locks where pid = %s and relation = 'analytics.fct_orders'"
                                "::regclass and granted", (forgotten.info.backend_pid,)).fetchone()[0]
        assert held == 1, "the forgotten transaction holds its lock on analytics"
        make_build_schema(warehouse, rows=4)
        publish(warehouse, run_id="r2", lock_timeout_seconds=20)  # PublishError if the lock outlived 20 s
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            forgotten.execute("select 1")  # the server ended the idle transaction's session
        forgotten.close()
    finally:
        monkeypatch.delenv("ALLIANCE_BI_IDLE_IN_TRANSACTION_TIMEOUT")
        monkeypatch.delenv("ALLIANCE_BI_STATEMENT_TIMEOUT")
        bi_url(warehouse)  # the role's settings back to the defaults
    assert table_counts(warehouse, "analytics")["fct_orders"] == 4
