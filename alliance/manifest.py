"""The run log: `ops.runs`, one row per run, written at every step; `analytics.run_manifest` shows published ones.

A row per run: id, kind (transform or rollback), start and end, status and the step it reached, partners loaded
with rows per partner, git commit, config hash, tool versions, checks passed and failed (with the failure details),
row counts, and whether and when it was published. It replaced two logs written side by side (`ops.runs` and
`raw.run_manifest`; alliance/migrations/0007_one_run_log.sql moved the rows). `analytics.run_manifest` is a copy of
the published rows made inside the publish transaction (alliance/publish.py), so it changes only with a publish.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import uuid
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psycopg
from psycopg import sql

from alliance.migrate import migrate
from alliance.warehouse import PROJECT_ROOT, connect


def new_run_id() -> str:
    """A run's id in the run log: its UTC start, sortable, and a random suffix for runs started the same second."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


RUN_STATUSES = ("running", "published", "succeeded", "failed", "gate_failed", "refused", "rolled_back")
# What analytics.run_manifest shows (no failure samples: published runs passed every check).
PUBLISHED_COLUMNS = ("run_id", "kind", "started_at", "finished_at", "published_at", "partners_loaded", "git_commit",
                     "config_hash", "tool_versions", "checks_passed", "checks_failed", "row_counts")
TOOLS = ("alliance", "dbt-core", "dbt-postgres", "great_expectations", "apache-airflow", "psycopg")


def git_commit() -> str:
    """The checkout's commit (`+dirty` when it has local changes); $ALLIANCE_GIT_COMMIT in images without .git."""
    if os.environ.get("ALLIANCE_GIT_COMMIT"):
        return os.environ["ALLIANCE_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def config_hash(config: Any) -> str:
    """sha256 of the effective config (after ${VAR} expansion; secrets are never in it) and the files it names."""
    data = config.model_dump(mode="json", exclude={"source_file"})
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for path in (config.fx_rates, config.alerts):
        if path is not None and path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def tool_versions(conn: psycopg.Connection | None = None) -> dict[str, str]:
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if conn is not None:
        versions["postgresql"] = conn.execute("show server_version").fetchone()[0]
    return versions


# Above this many rows in a raw table, rows per partner (network) come from the planner's statistics rather than a
# count: an exact count reads the whole table (an index-only scan at best) on every run of the event path: 50 ms for
# 500k clicks with a warm cache, so about half a second at 5M, more after a backfill (heap fetches until vacuumed).
# The run log says which figures are estimated.
EXACT_COUNT_UP_TO = 250_000


def _rows_per(conn: psycopg.Connection, table: str, column: str, exact_up_to: int) -> tuple[dict[str, int], str]:
    """Rows per `column` value of raw.`table` and how they were obtained: "exact", or "estimated" (reltuples times
    the most-common-value frequencies of the last ANALYZE) when the table is large and those cover every row."""
    reltuples, values, freqs = conn.execute(
        "select c.reltuples, s.most_common_vals::text::text[], s.most_common_freqs from pg_class c"
        " left join pg_stats s on s.schemaname = 'raw' and s.tablename = c.relname and s.attname = %s"
        " where c.oid = %s::regclass", (column, f"raw.{table}")).fetchone()
    if reltuples > exact_up_to and values and sum(freqs) >= 0.999:
        return {v: round(reltuples * f) for v, f in sorted(zip(values, freqs, strict=True))}, "estimated"
    rows = conn.execute(sql.SQL("select {}, count(*) from {} group by 1 order by 1").format(
        sql.Identifier(column), sql.Identifier("raw", table)))
    return dict(rows.fetchall()), "exact"


def partners_loaded(conn: psycopg.Connection, exact_up_to: int = EXACT_COUNT_UP_TO) -> dict[str, Any]:
    """Rows per partner (orders) and per network (clicks) in raw, and what landed since the previous run began.

    `counted` says, per table, whether its rows were counted or estimated (EXACT_COUNT_UP_TO)."""
    out: dict[str, Any] = {"orders": {}, "clicks": {}, "landed_since_previous_run": {}, "counted": {}}
    for table, column in (("orders", "partner_id"), ("clicks", "network_id")):
        if conn.execute("select to_regclass(%s) is not null", (f"raw.{table}",)).fetchone()[0]:
            out[table], out["counted"][table] = _rows_per(conn, table, column, exact_up_to)
    if conn.execute("select to_regclass('raw.loads') is not null").fetchone()[0]:
        out["landed_since_previous_run"] = dict(conn.execute(  # raw.loads (finished_at): migration 0019
            "select source_id || '/' || entity, sum(records_landed)::bigint from raw.loads "
            "where finished_at >= coalesce((select max(started_at) from ops.runs "
            "where kind = 'transform' and started_at < now()), '-infinity') group by 1 order by 1"))
    return out


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
    """Insert or update the run's status and step; `finished` defaults to True for every status but `running`."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status `{status}` is not one of {', '.join(RUN_STATUSES)}")
    done = status != "running" if finished is None else finished
    with connect(warehouse_url) as conn:
        migrate(conn)
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


def open_run(url: str, run_id: str, config: Any) -> None:
    """The run's row, status running, with everything known at its start."""
    with connect(url) as conn:
        migrate(conn)
        conn.execute(
            "insert into ops.runs (run_id, status, partners_loaded, git_commit, config_hash, tool_versions)"
            " values (%s, 'running', %s::jsonb, %s, %s, %s::jsonb) on conflict (run_id) do nothing",
            (run_id, json.dumps(partners_loaded(conn)), git_commit(), config_hash(config),
             json.dumps(tool_versions(conn))),
        )


def record_checks(url: str, run_id: str, gate: Any) -> None:
    """Checks passed and failed (with details and samples) of the run's gate; status gate_failed when it failed.
    A passed gate's exact whole-table row counts go in the run's row_counts: its publish reuses them (the stamp
    guarantees the same build) instead of counting those tables again under the publish lock."""
    failures = [d.as_dict() for d in gate.details]
    with connect(url) as conn:
        migrate(conn)
        conn.execute(
            "insert into ops.runs (run_id, status) values (%s, 'running') on conflict (run_id) do nothing",
            (run_id,))
        conn.execute(
            "update ops.runs set checks_passed = %s, checks_failed = %s, failures = %s::jsonb,"
            " data_docs = %s, status = case when %s then status else 'gate_failed' end,"
            " finished_at = case when %s then finished_at else now() end,"
            " row_counts = %s::jsonb where run_id = %s",
            (gate.checks_passed, gate.checks_failed, json.dumps(failures, default=str),
             str(gate.data_docs) if gate.data_docs else None, gate.passed, gate.passed,
             # this gate's counts only: a gate run again on a rebuilt schema must not leave an earlier gate's behind
             json.dumps(gate.row_counts) if gate.passed and getattr(gate, "row_counts", None) else None, run_id),
        )


def gate_row_counts(url: str, run_id: str) -> dict[str, int]:
    """The exact row counts the run's passed gate recorded (record_checks), for its publish; {} when none."""
    with connect(url) as conn:
        row = conn.execute("select row_counts from ops.runs where run_id = %s", (run_id,)).fetchone()
    return {k: v for k, v in ((row and row[0]) or {}).items() if isinstance(v, int)}
