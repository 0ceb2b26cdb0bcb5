"""Atomic publish of a checked build schema as `analytics`, and the run log in `ops` (outside analytics).

One transaction, under an advisory lock: the build schema gets `kpi_alerts` (re-materialised from
`ops.kpi_alerts`, the alerts' source of truth), `analytics` is renamed away, the build is renamed to `analytics`,
the old snapshot is dropped and `alliance_bi` gets read access to the new tables only. Readers therefore see the
previous complete snapshot or the next one. Tables are moved, not copied, so dbt's persisted column comments stay.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors, sql

from alliance.gate import GateResult, check_identifier, run_gate
from alliance.warehouse import connect

log = logging.getLogger(__name__)

PUBLISHED_SCHEMA = "analytics"
BI_ROLE = "alliance_bi"
PUBLISH_LOCK_KEY = 7_316_202_601  # pg_advisory_xact_lock key shared by publish and alert recording
PUBLISHED_TABLES = (
    "fct_orders",
    "fct_referrals",
    "fct_order_attribution",
    "partner_kpis_daily",
    "partner_balances",
    "objective_progress",
)
RUN_STATUSES = ("running", "published", "succeeded", "failed", "gate_failed")

OPS_RUNS_DDL = f"""
create schema if not exists ops;
create table if not exists ops.runs (
    run_id      text primary key,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    status      text not null check (status in ({", ".join(f"'{s}'" for s in RUN_STATUSES)})),
    step        text,
    message     text,
    row_counts  jsonb
);
"""


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


def ensure_ops(conn: psycopg.Connection) -> None:
    """Create the `ops` schema and `ops.runs` (idempotent); the caller owns the transaction."""
    conn.execute(OPS_RUNS_DDL)


def record_run(
    warehouse_url: str,
    run_id: str,
    status: str,
    *,
    step: str | None = None,
    message: str | None = None,
    row_counts: dict[str, Any] | None = None,
    started_at: datetime | None = None,
    finished: bool | None = None,
) -> None:
    """Insert or update the run's row in ops.runs; `finished` defaults to True for every status but `running`."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status `{status}` is not one of {', '.join(RUN_STATUSES)}")
    done = status != "running" if finished is None else finished
    with connect(warehouse_url) as conn:
        ensure_ops(conn)
        conn.execute(
            """
            insert into ops.runs (run_id, started_at, finished_at, status, step, message, row_counts)
            values (%(run_id)s, coalesce(%(started_at)s, now()), case when %(done)s then now() end,
                    %(status)s, %(step)s, %(message)s, %(row_counts)s::jsonb)
            on conflict (run_id) do update set
                finished_at = case when %(done)s then now() else ops.runs.finished_at end,
                status = excluded.status,
                step = coalesce(excluded.step, ops.runs.step),
                message = coalesce(excluded.message, ops.runs.message),
                row_counts = coalesce(excluded.row_counts, ops.runs.row_counts)
            """,
            {
                "run_id": run_id, "started_at": started_at, "done": done, "status": status, "step": step,
                "message": message, "row_counts": json.dumps(row_counts, default=str) if row_counts else None,
            },
        )


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
    """alliance_bi reads analytics and nothing else: explicit revokes on the other schemas we own."""
    _ensure_bi_role(conn)
    conn.execute(f"grant usage on schema {PUBLISHED_SCHEMA} to {BI_ROLE}")
    conn.execute(f"grant select on all tables in schema {PUBLISHED_SCHEMA} to {BI_ROLE}")
    others = conn.execute(
        "select nspname from pg_namespace where nspname = any(%s)",
        (["raw", "ops", build_schema, f"{build_schema}_work"],),
    ).fetchall()
    for (schema,) in others:
        conn.execute(f"revoke all on schema {schema} from public, {BI_ROLE}")
        conn.execute(f"revoke all on all tables in schema {schema} from public, {BI_ROLE}")
    conn.execute(f"revoke all on all tables in schema public from {BI_ROLE}")


def publish(
    warehouse_url: str,
    build_schema: str = "alliance_build",
    *,
    run_id: str,
    lock_timeout_seconds: int = 60,
) -> PublishResult:
    """Swap the checked build schema in as `analytics` in one transaction. Call only after a passed gate.

    `lock_timeout_seconds` bounds how long the swap waits for BI readers still holding the old tables.
    """
    from alliance.alerts.store import materialise_alerts  # here: alliance.alerts imports this module

    check_identifier(build_schema, "build schema")
    if build_schema in (PUBLISHED_SCHEMA, "raw", "ops", "public"):
        raise PublishError(f"build schema `{build_schema}` cannot be published: it is a reserved schema")
    with connect(warehouse_url) as conn:
        with conn.transaction():
            conn.execute(f"set local lock_timeout = '{int(lock_timeout_seconds)}s'")
            conn.execute("select pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
            if conn.execute("select 1 from pg_namespace where nspname = %s", (build_schema,)).fetchone() is None:
                raise PublishError(
                    f"build schema `{build_schema}` does not exist: nothing to publish (run dbt build and the gate)"
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
            ensure_ops(conn)
            materialise_alerts(conn, build_schema)
            had_previous = (
                conn.execute("select 1 from pg_namespace where nspname = %s", (PUBLISHED_SCHEMA,)).fetchone()
                is not None
            )
            if had_previous:
                conn.execute(f"drop schema if exists {PUBLISHED_SCHEMA}_prev cascade")
                conn.execute(f"alter schema {PUBLISHED_SCHEMA} rename to {PUBLISHED_SCHEMA}_prev")
            conn.execute(f"alter schema {build_schema} rename to {PUBLISHED_SCHEMA}")
            if had_previous:
                conn.execute(f"drop schema {PUBLISHED_SCHEMA}_prev cascade")
            _grant_bi(conn, build_schema)
            conn.execute(
                sql.SQL("comment on schema {} is {}").format(
                    sql.Identifier(PUBLISHED_SCHEMA), sql.Literal(f"alliance published snapshot, run {run_id}")
                )
            )
            counts = {
                table: conn.execute(f"select count(*) from {PUBLISHED_SCHEMA}.{table}").fetchone()[0]
                for table in (*PUBLISHED_TABLES, "kpi_alerts")
            }
            published_at = conn.execute("select now()").fetchone()[0]
    log.info("published %s as %s for run %s: %s", build_schema, PUBLISHED_SCHEMA, run_id, counts)
    return PublishResult(
        run_id=run_id, build_schema=build_schema, published_at=published_at, row_counts=counts,
        replaced_previous=had_previous,
    )


def gate_and_publish(
    warehouse_url: str,
    build_schema: str = "alliance_build",
    *,
    run_id: str,
    dbt_failures: list[str] | None = None,
) -> tuple[GateResult, PublishResult | None]:
    """The orchestration contract in one call: run the gate, publish only if it passed.

    A failed gate is recorded in ops.runs (status gate_failed, one failure per line) and `analytics` is not
    touched; on success the run stays `running` at step `publish` for the caller to finish (alerts come next).
    """
    gate = run_gate(warehouse_url, build_schema, dbt_failures)
    if not gate.passed:
        record_run(warehouse_url, run_id, "gate_failed", step="gate", message="\n".join(gate.failures))
        log.warning("gate failed for run %s; analytics unchanged:\n%s", run_id, "\n".join(gate.failures))
        return gate, None
    result = publish(warehouse_url, build_schema, run_id=run_id)
    record_run(warehouse_url, run_id, "running", step="publish", row_counts=result.row_counts)
    return gate, result
