"""Bookkeeping tables come from versioned migrations: each applied once, old warehouses upgraded, callers serialised."""

from __future__ import annotations

import threading

import psycopg

from alliance.migrate import migrate, migrations


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    return {row[0] for row in conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
        (table,))}


def test_each_migration_is_applied_once_in_order(warehouse):
    everything = migrations()
    assert [m.version for m in everything] == list(range(1, len(everything) + 1))
    with psycopg.connect(warehouse) as conn:
        assert migrate(conn) == [f"{m.version:04d}_{m.name}" for m in everything]
        assert migrate(conn) == []  # up to date: nothing runs again
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # committed, nothing left open
        recorded = conn.execute("select version, name from ops.schema_migrations order by version").fetchall()
        assert recorded == [(m.version, m.name) for m in everything]
        for table in ("raw.orders", "raw.cfg_partners", "raw.webhook_inbox", "ops.runs", "ops.transform_state",
                      "ops.kpi_alerts", "ops.alert_deliveries", "ops.mart_snapshots", "ops.mart_as_of_dates"):
            assert conn.execute("select to_regclass(%s)", (table,)).fetchone()[0] is not None, table


def test_a_warehouse_created_by_older_code_upgrades_in_place(warehouse):
    """Tables of the shape older code created (before cancelled_seen_at, alert episodes, the delivery outbox)."""
    with psycopg.connect(warehouse) as conn:
        conn.execute("create schema raw; create schema ops")
        conn.execute("create table raw.orders (partner_id text not null, order_id text not null,"
                     " platform text not null,"
                     " updated_at timestamptz not null, customer_key text, payload jsonb not null,"
                     " load_id uuid not null, loaded_at timestamptz not null default now(),"
                     " primary key (partner_id, order_id))")
        conn.execute("insert into raw.orders values ('p', '1', 'shopify', now(), null, '{}',"
                     " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')")
        conn.execute("create table ops.kpi_alerts (alert_id text primary key, rule_id text not null,"
                     " severity text not null, partner_id text not null, kpi text not null, period date not null,"
                     " value numeric, threshold numeric not null, comparison text not null,"
                     " fired_at timestamptz not null default now(), run_id text not null,"
                     " unique (rule_id, partner_id, period))")
        conn.execute("create schema analytics")  # a published copy of that shape (older code altered it per run)
        conn.execute("create table analytics.kpi_alerts (like ops.kpi_alerts including all)")
        conn.execute("insert into analytics.kpi_alerts (alert_id, rule_id, severity, partner_id, kpi, period,"
                     " threshold, comparison, run_id) values ('a:p:2026-10-01', 'a', 'info', 'p', 'aov_rc',"
                     " '2026-10-01', 1, 'above', 'r')")
        conn.execute("create table ops.alert_deliveries (delivery_id bigserial primary key, alert_id text not null,"
                     " event text not null, channel text not null,"
                     " status text not null check (status in ('sent', 'failed', 'skipped')),"
                     " attempts integer not null, error text, run_id text not null,"
                     " attempted_at timestamptz not null default now(), unique (alert_id, event, channel))")
        conn.commit()
        migrate(conn)
        assert "cancelled_seen_at" in _columns(conn, "raw.orders")
        assert conn.execute("select count(*) from raw.orders").fetchone()[0] == 1  # data kept
        assert {"state", "resolved_at", "kind", "baseline"} <= _columns(conn, "ops.kpi_alerts")
        assert _columns(conn, "analytics.kpi_alerts") == _columns(conn, "ops.kpi_alerts")  # 0013: the copy too
        assert conn.execute("select state, kind from analytics.kpi_alerts").fetchall() == [("firing", "threshold")]
        conn.execute("insert into ops.alert_deliveries (alert_id, event, channel, status, attempts, run_id)"
                     " values ('a', 'fired', 'log', 'pending', 0, 'r')")  # the outbox status is allowed now


def test_concurrent_callers_apply_each_migration_once(warehouse):
    applied: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def caller() -> None:
        try:
            with psycopg.connect(warehouse) as conn:
                start.wait()
                applied.append(migrate(conn))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    names = [name for names in applied for name in names]
    assert sorted(names) == sorted(f"{m.version:04d}_{m.name}" for m in migrations())  # each once, by someone
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select count(*) from ops.schema_migrations").fetchone()[0] == len(migrations())


def test_the_two_run_logs_of_older_code_merge_into_one(warehouse):
    """ops.runs and raw.run_manifest as older code wrote them: one row per run in ops.runs keeps what each held."""
    with psycopg.connect(warehouse) as conn:
        conn.execute("create schema raw; create schema ops")
        conn.execute("create table ops.runs (run_id text primary key, started_at timestamptz not null default now(),"
                     " finished_at timestamptz, status text not null check (status in ('running', 'published',"
                     " 'succeeded', 'failed', 'gate_failed')), step text, message text, row_counts jsonb)")
        conn.execute("create table raw.run_manifest (run_id text primary key, kind text not null default 'transform',"
                     " started_at timestamptz not null default now(), finished_at timestamptz, status text not null,"
                     " published boolean not null default false, published_at timestamptz, partners_loaded jsonb,"
                     " git_commit text, config_hash text, tool_versions jsonb, checks_passed integer,"
                     " checks_failed integer, failures jsonb, row_counts jsonb, data_docs text, message text)")
        conn.execute("insert into ops.runs (run_id, finished_at, status, step, message, row_counts)"
                     " values ('r1', now(), 'succeeded', 'alerts', '0 alert(s) fired', '{\"fct_orders\": 3}')")
        conn.execute("insert into raw.run_manifest (run_id, status, published, published_at, git_commit,"
                     " checks_passed, checks_failed, partners_loaded, message) values"
                     " ('r1', 'published', true, now(), 'abc123', 40, 0, '{\"orders\": {\"p\": 3}}', 'manifest note'),"
                     " ('r2', 'refused', false, null, 'abc123', null, null, null, 'another run in progress')")
        conn.execute("insert into raw.run_manifest (run_id, kind, status, finished_at, message)"
                     " values ('rb', 'rollback', 'rolled_back', now(), 'restored r0')")
        conn.commit()
        migrate(conn)
        rows = {r[0]: r[1:] for r in conn.execute(
            "select run_id, kind, status, step, message, published, git_commit, checks_passed, row_counts,"
            " partners_loaded from ops.runs")}
        assert conn.execute("select to_regclass('raw.run_manifest')").fetchone()[0] is None
    assert rows["r1"] == ("transform", "succeeded", "alerts", "0 alert(s) fired", True, "abc123", 40,
                          {"fct_orders": 3}, {"orders": {"p": 3}})
    assert rows["r2"] == ("transform", "refused", None, "another run in progress", False, "abc123", None, None, None)
    assert rows["rb"][:2] == ("rollback", "rolled_back")
