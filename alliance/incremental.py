"""When the transform may build incrementally, and the dbt call that does it.

The large intermediate models are dbt incremental models in `<build>_work` (that schema persists across runs).
They stay equal to a full refresh as long as the rules, the config and the previous build are unchanged, so a
fingerprint of those (dbt vars except as_of_date, the model/macro/test files, the mirrored config tables that price
and attribute orders) is kept per build schema in `ops.transform_state`. A different fingerprint, or a previous
build that did not finish cleanly, makes the next build a `--full-refresh`.

The published fact tables (`fct_orders`, `fct_order_attribution`, `fct_referrals`) are incremental as well: a
publish recycles the snapshot it retires as the next build schema (alliance/publish.py), and `ops.mart_snapshots`
records, per schema (by oid, which survives renames), the work-table state its marts contain and the fingerprint
they were built with. A build replaces the orders recomputed since then
(dbt_project/macros/incremental/mart_snapshots.sql); a schema built with another fingerprint, or with no record, is
dropped first and its marts built from scratch.

Incremental builds run dbt's `incremental_build` selector (dbt_project/selectors.yml): the views are not re-created
and the config's tests not re-run, since both are covered by the fingerprint. Builds skip dbt's unit tests, as dbt
recommends for production: they test model code on fixed inputs, not data,
so they run where code changes are checked (`make test` / CI: tests/test_dbt_build.py runs every one of them and
fails on any). An incremental build's data tests on the large tables check only the orders and clicks it rewrote
(dbt_project/macros/incremental/test_scoping.sql); the other rows passed the same tests in the last successful build,
whose fingerprint (same code and config) this one has. After a successful build, `ops.build_scopes` records what it
rewrote (every row, or the orders and clicks after the snapshot's state), which is what its quality gate reads
(alliance/gate_scope.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import sql

from alliance.dbt_runner import DBT_PROJECT_DIR, DbtOutcome, run_dbt
from alliance.migrate import migrate
from alliance.warehouse import connect

log = logging.getLogger(__name__)

CONFIG_TABLES = ("cfg_partners", "cfg_referral_codes", "cfg_contracts", "cfg_fx_rates", "cfg_reviews")


@dataclass
class BuildOutcome:
    outcome: DbtOutcome
    full_refresh: bool


def fingerprint(url: str, dbt_vars: dict) -> str:
    """sha256 over what incremental results depend on besides the raw data."""
    digest = hashlib.sha256()
    stable = {k: v for k, v in dbt_vars.items() if k != "as_of_date"}
    digest.update(json.dumps(stable, sort_keys=True, default=str).encode())
    files = [DBT_PROJECT_DIR / "dbt_project.yml"]
    for folder in ("models", "macros", "tests"):  # tests: an incremental build tests only the rows it rewrote
        files += sorted(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode())
        digest.update(path.read_bytes())
    with connect(url) as conn:
        for table in CONFIG_TABLES:
            exists = conn.execute("select to_regclass(%s)", (f"raw.{table}",)).fetchone()[0]
            rows = conn.execute(
                f"select coalesce(string_agg(t::text, '|' order by t::text), '') from raw.{table} t"  # noqa: S608
            ).fetchone()[0] if exists else ""
            digest.update(f"{table}:{rows}".encode())
    return digest.hexdigest()


def _stored(url: str, build_schema: str) -> str | None:
    with connect(url) as conn:
        migrate(conn)  # ops.transform_state: alliance/migrations/0005_transform_state.sql
        row = conn.execute("select fingerprint from ops.transform_state where build_schema = %s",
                           (build_schema,)).fetchone()
    return row[0] if row else None


def _store(url: str, build_schema: str, value: str | None) -> None:
    with connect(url) as conn:
        migrate(conn)  # ops.transform_state: alliance/migrations/0005_transform_state.sql
        if value is None:
            conn.execute("delete from ops.transform_state where build_schema = %s", (build_schema,))
        else:
            conn.execute(
                "insert into ops.transform_state (build_schema, fingerprint) values (%s, %s)"
                " on conflict (build_schema) do update set fingerprint = excluded.fingerprint, updated_at = now()",
                (build_schema, value),
            )


def _snapshot_reusable(url: str, build_schema: str, current: str) -> bool:
    """Whether the build schema's incremental marts can be brought up to date rather than built from scratch.

    They must have been recorded (ops.mart_snapshots) with this fingerprint, and this process's clock must be past
    every recorded watermark: those are dbt's `run_started_at` of earlier builds, possibly from another worker, and
    rows stamped earlier than a watermark would be missed by the next incremental update.
    """
    with connect(url) as conn:
        if conn.execute("select to_regclass('ops.mart_snapshots')").fetchone()[0] is None:
            return False
        row = conn.execute(
            "select s.fingerprint from ops.mart_snapshots s join pg_namespace n on n.oid = s.schema_oid"
            " where n.nspname = %s", (build_schema,)).fetchone()
        # compared in SQL: an empty build records '-infinity', which Python's datetime cannot hold
        clock_past = conn.execute(
            "select coalesce(max(greatest(orders_through, clicks_through)) < %s, true) from ops.mart_snapshots",
            (datetime.now(UTC),)).fetchone()[0]
    return row is not None and row[0] == current and clock_past


def _drop_build_schema(url: str, build_schema: str) -> None:
    with connect(url) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(build_schema)))


def _record_snapshot(url: str, build_schema: str, value: str) -> None:
    """After a successful build: the work-table state the build schema's marts now contain, and the fingerprint."""
    work = f"{build_schema}_work"
    with connect(url) as conn:
        conn.execute(
            sql.SQL(
                """
                insert into ops.mart_snapshots (schema_oid, orders_through, clicks_through, fingerprint)
                select n.oid,
                       coalesce((select max(_recomputed_at) from {orders}), '-infinity'),
                       coalesce((select max(_dbt_run_at) from {clicks}), '-infinity'),
                       %(fingerprint)s
                from pg_namespace n where n.nspname = %(schema)s
                on conflict (schema_oid) do update set
                    orders_through = excluded.orders_through, clicks_through = excluded.clicks_through,
                    fingerprint = excluded.fingerprint, updated_at = now()
                """
            ).format(orders=sql.Identifier(work, "int_orders__enriched"),
                     clicks=sql.Identifier(work, "int_network__clicks")),
            {"fingerprint": value, "schema": build_schema},
        )
        # records of schemas and tables that no longer exist (dropped builds, full refreshes)
        conn.execute("delete from ops.mart_snapshots where schema_oid not in (select oid from pg_namespace)")
        conn.execute("delete from ops.mart_as_of_dates where table_oid not in (select oid from pg_class)")
        conn.execute("delete from ops.table_row_counts where table_oid not in (select oid from pg_class)")
        conn.execute("delete from ops.statement_line_totals where table_oid not in (select oid from pg_class)")


OVERLAP_MINUTES = 10  # dbt var incremental_overlap_minutes' default (dbt_project.yml)


@dataclass(frozen=True)
class BuildScope:
    """What an incremental build rewrites and takes in (ops.build_scopes), read before it runs."""

    orders_after: datetime
    clicks_after: datetime
    raw_orders_after: datetime
    raw_clicks_after: datetime


def _scope_before_build(url: str, build_schema: str, dbt_vars: dict) -> BuildScope | None:
    """The work-table state the build schema's marts contain (the build rewrites the orders and clicks after it), and
    the raw rows the work tables have taken in (the build reads those landed after it, less dbt's overlap); None when
    unknown or empty, and the gate then checks every row."""
    work = f"{build_schema}_work"
    overlap = timedelta(minutes=int(dbt_vars.get("incremental_overlap_minutes", OVERLAP_MINUTES)))
    with connect(url) as conn:
        row = conn.execute(
            "select s.orders_through, s.clicks_through from ops.mart_snapshots s"
            " join pg_namespace n on n.oid = s.schema_oid where n.nspname = %s"
            " and s.orders_through > '-infinity' and s.clicks_through > '-infinity'", (build_schema,)).fetchone()
        raw = []
        for table in ("int_orders__unioned", "int_network__clicks"):
            if conn.execute("select to_regclass(%s)", (f"{work}.{table}",)).fetchone()[0] is None:
                return None
            raw.append(conn.execute(sql.SQL("select max(_loaded_at) from {}").format(
                sql.Identifier(work, table))).fetchone()[0])
    if row is None or None in raw:
        return None
    return BuildScope(row[0], row[1], raw[0] - overlap, raw[1] - overlap)


def _record_scope(url: str, build_schema: str, scope: BuildScope | None, *, clear: bool = False) -> None:
    """ops.build_scopes: what the build rewrote (None: everything, a full build); `clear` while a build runs."""
    with connect(url) as conn:
        conn.execute("delete from ops.build_scopes where build_schema = %s", (build_schema,))
        if not clear:
            conn.execute(
                "insert into ops.build_scopes (build_schema, full_refresh, orders_after, clicks_after,"
                " raw_orders_after, raw_clicks_after) values (%s, %s, %s, %s, %s, %s)",
                (build_schema, scope is None, *((scope.orders_after, scope.clicks_after, scope.raw_orders_after,
                                                 scope.raw_clicks_after) if scope else (None,) * 4)))


def dbt_build(url: str, build_schema: str, dbt_vars: dict, *, full_refresh: bool | None = None) -> BuildOutcome:
    """`dbt build`, incremental when allowed (full_refresh=None decides by fingerprint; True/False forces)."""
    with connect(url) as conn:
        migrate(conn)  # the bookkeeping tables the build reads and writes (ops.transform_state, ops.mart_snapshots)
    current = fingerprint(url, dbt_vars)
    if full_refresh is None:
        full_refresh = _stored(url, build_schema) != current
    _store(url, build_schema, None)  # a build that stops midway leaves the work tables half-updated
    _record_scope(url, build_schema, None, clear=True)  # and its gate has no scope: it checks everything
    scope = None
    if full_refresh or not _snapshot_reusable(url, build_schema, current):
        _drop_build_schema(url, build_schema)  # marts of other code or config (or unknown state): from scratch
    else:
        scope = _scope_before_build(url, build_schema, dbt_vars)
    # dbt's unit tests test model code on fixed inputs, not data: `make test` / CI runs them (tests/test_dbt_build.py),
    # production builds skip them, as dbt recommends. An incremental build also leaves the views and the config's
    # tests alone (dbt_project/selectors.yml): both are fingerprinted, so they are as the last full build left them.
    args = (["build", "--exclude-resource-type", "unit_test", "--full-refresh"] if full_refresh
            else ["build", "--selector", "incremental_build"])
    log.info("dbt build (%s)", "full refresh" if full_refresh else "incremental")
    outcome = run_dbt(args, url, build_schema, vars=dbt_vars)
    if outcome.success:
        _record_snapshot(url, build_schema, current)
        _store(url, build_schema, current)
        _record_scope(url, build_schema, None if full_refresh else scope)
    return BuildOutcome(outcome, full_refresh)
