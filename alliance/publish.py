"""Atomic publish of a checked build schema as `analytics`, rollback and BI access.

One transaction, with `lock_timeout` set, under an advisory lock: the build schema gets `kpi_alerts`
(re-materialised from `ops.kpi_alerts`, the alerts' source of truth) and `run_manifest` (the published runs of
the run log `ops.runs`, this one included), `analytics` is renamed to `analytics_prev` (kept for `alliance rollback`),
the build is renamed to `analytics`, the snapshot that was `analytics_prev` becomes the next build schema (its
fact tables are brought up to date incrementally by the next build) and `alliance_bi` gets read access to the new
tables only. Before the swap every published table of the build gets the partners' row-level security
(alliance/partner_scope.py), so partner logins see only their rows in whichever snapshot is live. Readers
therefore see the previous complete snapshot or the next one. Tables (and any views) move with their schema, not
copied, so dbt's persisted column comments stay.

`rollback()` swaps `analytics` and `analytics_prev` the same way, in one transaction. `bi_url()` gives BI tools a
LOGIN role that is a member of `alliance_bi` and reads `analytics` only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import psycopg
from psycopg import errors, sql

from alliance.alerts.store import materialise_alerts
from alliance.gate import GateResult, GateSettings, check_identifier, run_gate
from alliance.gate_scope import row_counts as count_rows
from alliance.locks import PUBLISH
from alliance.manifest import PUBLISHED_COLUMNS, new_run_id, record_checks, record_run  # noqa: F401 - record_run: callers
from alliance.migrate import migrate
from alliance.partner_scope import PARTNER_ROLE, apply_row_security
from alliance.schemas import (
    BUILD_SCHEMA,
    PREVIOUS_SCHEMA,
    PUBLISHED_SCHEMA,
    PUBLISHED_TABLES,
    RESERVED_SCHEMAS,
    SWAP_SCHEMA,
)
from alliance.warehouse import connect, parse_url, state_dir

log = logging.getLogger(__name__)

BI_ROLE = "alliance_bi"
BI_LOGIN = "alliance_bi_reader"
# A BI session left idle inside a transaction keeps its locks on analytics tables, and the publish waits for them
# (lock_timeout, 60 s by default): the server ends such sessions first. A runaway BI query is cut off too.
BI_TIMEOUTS = {  # role setting -> (environment variable, default)
    "idle_in_transaction_session_timeout": ("ALLIANCE_BI_IDLE_IN_TRANSACTION_TIMEOUT", "30s"),
    "statement_timeout": ("ALLIANCE_BI_STATEMENT_TIMEOUT", "5min"),
}
GATE_STAMP = "alliance build of run {run_id}: quality gate passed"
DEADLOCK_RETRIES = 5
PUBLISH_LOCK_KEY = PUBLISH.key  # pg_advisory_xact_lock key shared by publish and alert recording (alliance/locks.py)

class PublishError(RuntimeError):
    """Publishing is impossible (missing build schema or table); analytics is left untouched."""


@dataclass
class PublishResult:
    """What was published: row counts per table of the new `analytics`, and when."""

    run_id: str
    build_schema: str
    published_at: datetime
    row_counts: dict[str, int] = field(default_factory=dict)
    replaced_previous: bool = False


def _ensure_bi_role(conn: psycopg.Connection) -> None:
    """Create the NOLOGIN role once per server; a concurrent creator in another database is not an error."""
    if conn.execute("select 1 from pg_roles where rolname = %s", (BI_ROLE,)).fetchone():
        return
    try:
        with conn.transaction():  # savepoint: losing the race must not abort the publish
            conn.execute(f"create role {BI_ROLE} nologin")
    except (errors.DuplicateObject, errors.UniqueViolation):
        pass


def _grant_bi(conn: psycopg.Connection, build_schema: str) -> None:
    """alliance_bi reads analytics and nothing else: explicit revokes on the other schemas we own.

    Partners (alliance_partner) may enter analytics only; which tables and rows they read is the tables' own
    grants and row-level security (alliance/partner_scope.py), which travel with the tables.
    """
    _ensure_bi_role(conn)
    conn.execute(f"grant usage on schema {PUBLISHED_SCHEMA} to {BI_ROLE}, {PARTNER_ROLE}")
    conn.execute(f"grant select on all tables in schema {PUBLISHED_SCHEMA} to {BI_ROLE}")
    others = conn.execute(
        "select nspname from pg_namespace where nspname = any(%s)",
        (["raw", "ops", PREVIOUS_SCHEMA, build_schema, f"{build_schema}_work"],),
    ).fetchall()
    for (schema,) in others:
        conn.execute(f"revoke all on schema {schema} from public, {BI_ROLE}, {PARTNER_ROLE}")
        conn.execute(f"revoke all on all tables in schema {schema} from public, {BI_ROLE}")
    conn.execute(f"revoke all on all tables in schema public from {BI_ROLE}, {PARTNER_ROLE}")


def stamp_build(warehouse_url: str, run_id: str, build_schema: str = BUILD_SCHEMA) -> None:
    """Mark the build schema as checked by this run's gate; publish(require_stamp=True) insists on it.

    Every run clears the stamp before dbt builds (alliance/run.py `prepare`), so the stamp of another run cannot
    survive a rebuild: a run cannot publish a build it did not check.
    """
    check_identifier(build_schema, "build schema")
    with connect(warehouse_url) as conn:
        conn.execute(sql.SQL("comment on schema {} is {}").format(
            sql.Identifier(build_schema), sql.Literal(GATE_STAMP.format(run_id=run_id))))


def _materialise_manifest(conn: psycopg.Connection, build_schema: str, run_id: str) -> None:
    """Mark the run published in the run log (ops.runs) and copy the published runs into the build schema."""
    migrate(conn)
    conn.execute(
        "insert into ops.runs (run_id, status) values (%s, 'published') on conflict (run_id) do nothing",
        (run_id,))
    conn.execute(
        "update ops.runs set published = true, published_at = now(), status = 'published' where run_id = %s",
        (run_id,))
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in PUBLISHED_COLUMNS)
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(build_schema, "run_manifest")))
    conn.execute(sql.SQL("create table {} as select {} from ops.runs where published order by published_at")
                 .format(sql.Identifier(build_schema, "run_manifest"), columns))
    conn.execute(sql.SQL("comment on table {} is {}").format(
        sql.Identifier(build_schema, "run_manifest"),
        sql.Literal("Published transform runs (the run log, ops.runs); changes only with a publish")))


def publish(
    warehouse_url: str,
    build_schema: str = BUILD_SCHEMA,
    *,
    run_id: str,
    lock_timeout_seconds: int = 60,
    require_stamp: bool = False,
    row_counts: dict[str, int] | None = None,
) -> PublishResult:
    """Swap the checked build schema in as `analytics` in one transaction. Call only after a passed gate.

    `lock_timeout_seconds` bounds how long the swap waits for BI readers still holding the old tables (and for a
    concurrent publish). With `require_stamp` the build must carry this run's gate stamp (`stamp_build`).
    `row_counts`: exact counts already taken on this very build (the gate's), kept; every other published table is
    counted here, inside the swap's transaction.
    """
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            return _publish_txn(warehouse_url, build_schema, run_id, lock_timeout_seconds, require_stamp, row_counts)
        except errors.DeadlockDetected:
            # A BI statement holding one old table while waiting for another: PostgreSQL aborted the publish
            # (not the reader); nothing changed, so try again.
            if attempt == DEADLOCK_RETRIES:
                raise PublishError("publish lost a lock conflict with BI readers "
                                   f"{DEADLOCK_RETRIES} times; analytics was left as it was") from None
            log.info("publish of run %s was a deadlock victim; retrying (%d)", run_id, attempt)
        except errors.LockNotAvailable:
            raise PublishError(f"BI readers held analytics tables for over {int(lock_timeout_seconds)}s "
                               "(lock_timeout); analytics was left as it was, publish again later") from None
    raise AssertionError("unreachable")


def _take_publish_lock(conn: psycopg.Connection, lock_timeout_seconds: int, outcome: str) -> None:
    """Bound every lock wait of the swap transaction, starting with the publish lock itself."""
    conn.execute(f"set local lock_timeout = '{int(lock_timeout_seconds)}s'")
    try:
        conn.execute("select pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    except errors.LockNotAvailable:
        raise PublishError(
            f"another publish or rollback held the publish lock for over {int(lock_timeout_seconds)}s; {outcome}"
        ) from None


def _publish_txn(
    warehouse_url: str, build_schema: str, run_id: str, lock_timeout_seconds: int, require_stamp: bool,
    row_counts: dict[str, int] | None,
) -> PublishResult:
    check_identifier(build_schema, "build schema")
    if build_schema in RESERVED_SCHEMAS:
        raise PublishError(f"build schema `{build_schema}` cannot be published: it is a reserved schema")
    with connect(warehouse_url) as conn:
        with conn.transaction():
            _take_publish_lock(conn, lock_timeout_seconds, "analytics was left as it was")
            found = conn.execute(
                "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s", (build_schema,)
            ).fetchone()
            if found is None:
                raise PublishError(
                    f"build schema `{build_schema}` does not exist: nothing to publish (run dbt build and the gate)"
                )
            if require_stamp and found[0] != GATE_STAMP.format(run_id=run_id):
                raise PublishError(
                    f"build schema `{build_schema}` was not checked by run {run_id}'s gate "
                    f"(it says: {found[0] or 'nothing'}); another run rebuilt it. analytics was left as it was"
                )
            present = {
                r[0]
                for r in conn.execute(
                    "select table_name from information_schema.tables where table_schema = %s", (build_schema,)
                )
            }
            missing = [t for t in PUBLISHED_TABLES if t not in present]
            if missing:
                raise PublishError(
                    f"build schema `{build_schema}` lacks published table(s) {', '.join(missing)}; "
                    "analytics was left as it was"
                )
            migrate(conn)
            apply_row_security(conn, build_schema)  # partners' row-level security rides the swap with the tables
            materialise_alerts(conn, build_schema)
            known = {t: n for t, n in (row_counts or {}).items() if isinstance(n, int)}
            tables = (*PUBLISHED_TABLES, "kpi_alerts")
            counted = count_rows(conn, build_schema, tuple(t for t in tables if t not in known))
            row_counts = {t: known[t] if t in known else counted[t] for t in tables}
            _materialise_manifest(conn, build_schema, run_id)
            conn.execute("update ops.runs set row_counts = %s::jsonb where run_id = %s",
                         (json.dumps(row_counts), run_id))
            conn.execute(
                sql.SQL("update {} set row_counts = %s::jsonb where run_id = %s").format(
                    sql.Identifier(build_schema, "run_manifest")), (json.dumps(row_counts), run_id))
            had_previous = _schema_exists(conn, PUBLISHED_SCHEMA)
            _lock_snapshot(conn, PUBLISHED_SCHEMA, lock_timeout_seconds)
            retired = had_previous and _schema_exists(conn, PREVIOUS_SCHEMA)
            if retired:
                conn.execute(f"drop schema if exists {SWAP_SCHEMA} cascade")
                conn.execute(f"alter schema {PREVIOUS_SCHEMA} rename to {SWAP_SCHEMA}")
            if had_previous:
                conn.execute(f"alter schema {PUBLISHED_SCHEMA} rename to {PREVIOUS_SCHEMA}")
            conn.execute(f"alter schema {build_schema} rename to {PUBLISHED_SCHEMA}")
            if retired:
                _recycle(conn, SWAP_SCHEMA, build_schema)
            _grant_bi(conn, build_schema)
            conn.execute(
                sql.SQL("comment on schema {} is {}").format(
                    sql.Identifier(PUBLISHED_SCHEMA), sql.Literal(f"alliance published snapshot, run {run_id}")
                )
            )
            published_at = conn.execute("select now()").fetchone()[0]
    counts = dict(row_counts)
    log.info("published %s as %s for run %s: %s", build_schema, PUBLISHED_SCHEMA, run_id, counts)
    return PublishResult(
        run_id=run_id, build_schema=build_schema, published_at=published_at, row_counts=counts,
        replaced_previous=had_previous,
    )


def _recycle(conn: psycopg.Connection, retired: str, build_schema: str) -> None:
    """The snapshot leaving `analytics_prev` becomes the next build schema instead of being dropped.

    Its fact tables are complete up to an older state, so the next dbt build brings them up to date incrementally
    (alliance/incremental.py) instead of copying millions of rows again. What the publish added (alerts,
    manifest) goes; the stamp says it is unchecked, so it cannot be published before a gate passed on it.
    """
    for table in ("kpi_alerts", "run_manifest"):
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(retired, table)))
    conn.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(retired), sql.Identifier(build_schema)))
    conn.execute(sql.SQL("comment on schema {} is {}").format(
        sql.Identifier(build_schema), sql.Literal("alliance build schema (a recycled snapshot): not checked")))


def _lock_snapshot(conn: psycopg.Connection, schema: str, timeout_seconds: float) -> None:
    """ACCESS EXCLUSIVE on every relation of the live snapshot before it is renamed away, without deadlocks.

    Without these locks a reader's statement could resolve one table before the swap commits and another after
    it, i.e. a mix of snapshots (the old tables are kept, not dropped, so nothing else would make it wait). With
    them, readers already inside the old snapshot finish first and later ones wait for the commit and then resolve
    every name in the new snapshot. The publish never waits while holding one of these locks (all are taken
    NOWAIT; on a conflict everything is released and the publish waits for that one table alone), so it can
    never be part of a deadlock with a BI query: readers never see an error. Bounded by `timeout_seconds`.
    """
    relations = [r[0] for r in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') order by c.relname", (schema,))]
    deadline = time.monotonic() + timeout_seconds
    blocked: str | None = None
    while relations:
        conflict: str | None = None
        try:
            with conn.transaction():  # a savepoint: leaving it by an exception releases every lock taken inside
                if blocked is not None:  # wait for this one table while holding none of the others
                    conn.execute(sql.SQL("lock table {} in access exclusive mode").format(
                        sql.Identifier(schema, blocked)))
                for relation in relations:
                    conflict = relation
                    conn.execute(sql.SQL("lock table {} in access exclusive mode nowait").format(
                        sql.Identifier(schema, relation)))
                return
        except errors.LockNotAvailable:
            if conflict is None or time.monotonic() > deadline:
                raise  # the blocking wait itself timed out (lock_timeout): the caller reports it
            blocked = conflict


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is not None


@dataclass
class RollbackResult:
    restored: str  # the schema comment of the snapshot now in analytics ("alliance published snapshot, run X")
    replaced: str  # the one that became analytics_prev


def rollback(warehouse_url: str, *, lock_timeout_seconds: int = 60, run_id: str | None = None) -> RollbackResult:
    """Restore the previous snapshot in one transaction: `analytics` and `analytics_prev` swap places.

    Rolling back twice rolls forward again. The rollback is recorded in the run log, ops.runs (kind rollback).
    """
    run_id = run_id or f"rollback-{new_run_id()}"
    with connect(warehouse_url) as conn:
        with conn.transaction():
            _take_publish_lock(conn, lock_timeout_seconds, "nothing was rolled back")
            if not _schema_exists(conn, PREVIOUS_SCHEMA):
                raise PublishError(f"no previous snapshot (`{PREVIOUS_SCHEMA}`) to roll back to; analytics unchanged")
            if not _schema_exists(conn, PUBLISHED_SCHEMA):
                raise PublishError(f"`{PUBLISHED_SCHEMA}` does not exist; nothing was rolled back")

            def comment(schema: str) -> str:
                return conn.execute("select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s",
                                    (schema,)).fetchone()[0] or schema

            restored, replaced = comment(PREVIOUS_SCHEMA), comment(PUBLISHED_SCHEMA)
            _lock_snapshot(conn, PUBLISHED_SCHEMA, lock_timeout_seconds)
            conn.execute(f"drop schema if exists {SWAP_SCHEMA} cascade")
            conn.execute(f"alter schema {PUBLISHED_SCHEMA} rename to {SWAP_SCHEMA}")
            conn.execute(f"alter schema {PREVIOUS_SCHEMA} rename to {PUBLISHED_SCHEMA}")
            conn.execute(f"alter schema {SWAP_SCHEMA} rename to {PREVIOUS_SCHEMA}")
            migrate(conn)
            apply_row_security(conn, PUBLISHED_SCHEMA)  # a no-op unless the snapshot predates partner access
            _grant_bi(conn, BUILD_SCHEMA)
            conn.execute(
                "insert into ops.runs (run_id, kind, status, finished_at, message)"
                " values (%s, 'rollback', 'rolled_back', now(), %s)",
                (run_id, f"restored: {restored}; now {PREVIOUS_SCHEMA}: {replaced}"),
            )
    log.info("rolled back: analytics is now %s", restored)
    return RollbackResult(restored=restored, replaced=replaced)


def bi_password() -> str:
    """$ALLIANCE_BI_PASSWORD, else a generated one kept in .alliance/bi_password (mode 0600)."""
    import secrets

    if os.environ.get("ALLIANCE_BI_PASSWORD"):
        return os.environ["ALLIANCE_BI_PASSWORD"]
    path = state_dir() / "bi_password"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def bi_url(warehouse_url: str) -> str:
    """A read-only connection URL for BI tools: LOGIN role alliance_bi_reader, member of alliance_bi.

    The role inherits alliance_bi's SELECT on analytics (nothing else), every transaction is read-only, its
    search_path is analytics, a session idle in a transaction or a statement running too long is ended
    (`BI_TIMEOUTS`, so a forgotten BI transaction cannot hold up a publish), and the password is (re)set from
    `bi_password()` each time, so rotating it is setting ALLIANCE_BI_PASSWORD (or deleting .alliance/bi_password)
    and running `alliance bi-url` again.
    """
    password = bi_password()
    with connect(warehouse_url) as conn:
        _ensure_bi_role(conn)
        if not conn.execute("select 1 from pg_roles where rolname = %s", (BI_LOGIN,)).fetchone():
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("create role {} login").format(sql.Identifier(BI_LOGIN)))
            except (errors.DuplicateObject, errors.UniqueViolation):
                pass
        login = sql.Identifier(BI_LOGIN)
        conn.execute(sql.SQL("alter role {} login nosuperuser nocreatedb nocreaterole inherit noreplication "
                             "connection limit 50 password {}").format(login, sql.Literal(password)))
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(BI_ROLE), login))
        conn.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(login))
        for setting, (variable, default) in BI_TIMEOUTS.items():
            conn.execute(sql.SQL("alter role {} set {} = {}").format(
                login, sql.Identifier(setting), sql.Literal(os.environ.get(variable) or default)))
        conn.execute(sql.SQL("alter role {} set search_path = {}").format(login, sql.Identifier(PUBLISHED_SCHEMA)))
    parts = parse_url(warehouse_url)
    return (f"postgresql://{BI_LOGIN}:{quote(password, safe='')}@{parts.host}:{parts.port}/"
            f"{quote(parts.dbname, safe='')}")


def gate_and_publish(
    warehouse_url: str,
    build_schema: str = BUILD_SCHEMA,
    *,
    run_id: str,
    dbt_failures: list[str] | None = None,
    settings: GateSettings | None = None,
    lock_timeout_seconds: int = 60,
) -> tuple[GateResult, PublishResult | None]:
    """The orchestration contract in one call: run the gate, publish only if it passed.

    A failed gate is recorded in the run log, ops.runs (status gate_failed, one failure per line, checks, failures
    with sample rows, Data Docs path) and `analytics` is not touched; on success the run stays
    `running` at step `publish` for the caller to finish (alerts come next).
    """
    gate = run_gate(warehouse_url, build_schema, dbt_failures, settings=settings)
    record_checks(warehouse_url, run_id, gate)
    if not gate.passed:
        record_run(warehouse_url, run_id, "gate_failed", step="gate", message="\n".join(gate.failures))
        log.warning("gate failed for run %s; analytics unchanged:\n%s", run_id, "\n".join(gate.failures))
        return gate, None
    stamp_build(warehouse_url, run_id, build_schema)
    result = publish(warehouse_url, build_schema, run_id=run_id, require_stamp=True,
                     lock_timeout_seconds=lock_timeout_seconds, row_counts=gate.row_counts)
    record_run(warehouse_url, run_id, "running", step="publish", row_counts=result.row_counts)
    return gate, result
