"""The run manifest: `raw.run_manifest` records every transform run; `analytics.run_manifest` shows published ones.

A row per run: id, start and end, partners loaded with rows per partner, git commit, config hash, tool versions,
checks passed and failed (with the failure details), and whether it was published. `raw.run_manifest` is
bookkeeping beside the landed data (like `raw.loads`); `analytics.run_manifest` is a copy of its published rows
made inside the publish transaction, so it changes only with a publish.
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

from alliance.warehouse import PROJECT_ROOT, connect


def new_run_id() -> str:
    """A run's id in the run log: its UTC start, sortable, and a random suffix for runs started the same second."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"

MANIFEST_DDL = """
create schema if not exists raw;
create table if not exists raw.run_manifest (
    run_id          text primary key,
    kind            text not null default 'transform',   -- transform | rollback
    started_at      timestamptz not null default now(),
    finished_at     timestamptz,
    status          text not null,                       -- running | published | gate_failed | failed | refused
    published       boolean not null default false,
    published_at    timestamptz,
    partners_loaded jsonb,        -- {"orders": {partner: rows}, "clicks": {network: rows}, "landed_since": ...}
    git_commit      text,
    config_hash     text,
    tool_versions   jsonb,
    checks_passed   integer,
    checks_failed   integer,
    failures        jsonb,        -- [{table, column, expectation, message, sample_rows}]
    row_counts      jsonb,        -- published tables' row counts
    data_docs       text,
    message         text
);
"""

# What analytics.run_manifest shows (no failure samples: published runs passed every check).
PUBLISHED_COLUMNS = ("run_id", "kind", "started_at", "finished_at", "published_at", "partners_loaded", "git_commit",
                     "config_hash", "tool_versions", "checks_passed", "checks_failed", "row_counts")
TOOLS = ("alliance", "dbt-core", "dbt-postgres", "great_expectations", "apache-airflow", "psycopg")


def ensure_manifest(conn: psycopg.Connection) -> None:
    conn.execute(MANIFEST_DDL)


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


def partners_loaded(conn: psycopg.Connection) -> dict[str, Any]:
    """Rows per partner (orders) and per network (clicks) in raw, and what landed since the previous run began."""
    out: dict[str, Any] = {"orders": {}, "clicks": {}, "landed_since_previous_run": {}}
    if conn.execute("select to_regclass('raw.orders') is not null").fetchone()[0]:
        out["orders"] = dict(conn.execute("select partner_id, count(*) from raw.orders group by 1 order by 1"))
    if conn.execute("select to_regclass('raw.clicks') is not null").fetchone()[0]:
        out["clicks"] = dict(conn.execute("select network_id, count(*) from raw.clicks group by 1 order by 1"))
    if conn.execute("select to_regclass('raw.loads') is not null").fetchone()[0]:
        out["landed_since_previous_run"] = dict(conn.execute(
            "select source_id || '/' || entity, sum(records_landed)::bigint from raw.loads "
            "where finished_at >= coalesce((select max(started_at) from raw.run_manifest "
            "where kind = 'transform' and started_at < now()), '-infinity') group by 1 order by 1"))
    return out


def open_run(url: str, run_id: str, config: Any) -> None:
    """The run's row, status running, with everything known at its start."""
    with connect(url) as conn:
        ensure_manifest(conn)
        conn.execute(
            "insert into raw.run_manifest (run_id, status, partners_loaded, git_commit, config_hash, tool_versions)"
            " values (%s, 'running', %s::jsonb, %s, %s, %s::jsonb) on conflict (run_id) do nothing",
            (run_id, json.dumps(partners_loaded(conn)), git_commit(), config_hash(config),
             json.dumps(tool_versions(conn))),
        )


def record_checks(url: str, run_id: str, gate: Any) -> None:
    """Checks passed and failed (with details and samples) of the run's gate; status gate_failed when it failed."""
    failures = [d.as_dict() for d in gate.details]
    with connect(url) as conn:
        ensure_manifest(conn)
        conn.execute(
            "insert into raw.run_manifest (run_id, status) values (%s, 'running') on conflict (run_id) do nothing",
            (run_id,))
        conn.execute(
            "update raw.run_manifest set checks_passed = %s, checks_failed = %s, failures = %s::jsonb,"
            " data_docs = %s, status = case when %s then status else 'gate_failed' end,"
            " finished_at = case when %s then finished_at else now() end where run_id = %s",
            (gate.checks_passed, gate.checks_failed, json.dumps(failures, default=str),
             str(gate.data_docs) if gate.data_docs else None, gate.passed, gate.passed, run_id),
        )


def finish_run(url: str, run_id: str, status: str, message: str | None = None) -> None:
    """Close the run (failed / refused / succeeded after alerts); a published run keeps published = true."""
    with connect(url) as conn:
        ensure_manifest(conn)
        conn.execute(
            "insert into raw.run_manifest (run_id, status) values (%s, %s) on conflict (run_id) do update set"
            " status = case when raw.run_manifest.published then 'published' else excluded.status end,"
            " finished_at = now(), message = coalesce(%s, raw.run_manifest.message)",
            (run_id, status, message),
        )
