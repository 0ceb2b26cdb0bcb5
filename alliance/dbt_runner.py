"""Run the dbt project in-process (dbt's programmatic `dbtRunner`), pointed at one warehouse and build schema.

Why in-process: the orchestrator (CLI and Airflow tasks) needs structured results, not parsed log text, and
the gate needs one readable line per failed model or test.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from alliance.config import AllianceConfig
from alliance.schemas import BUILD_SCHEMA
from alliance.warehouse import parse_url

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ENV_LOCK = threading.Lock()  # dbt reads connection settings from os.environ: one invocation at a time
# Session settings of dbt's connections (libpq reads PGOPTIONS): the attribution models sort and hash a few hundred
# thousand rows per million orders, which spills to disk at PostgreSQL's 4MB default; JIT compilation costs more than
# it saves on these one-shot statements. bench/transform gives its hand-written SQL the same settings.
SESSION_OPTIONS = "-c work_mem=256MB -c maintenance_work_mem=512MB -c random_page_cost=1.1 -c jit=off"


@dataclass
class DbtOutcome:
    """What a dbt invocation did: success, one readable line per failed node, and dbt's raw result."""

    success: bool
    failures: list[str] = field(default_factory=list)
    raw: Any = None
    exception: BaseException | None = None


def dbt_env(warehouse_url: str, build_schema: str = BUILD_SCHEMA) -> dict[str, str]:
    """The ALLIANCE_DBT_* variables profiles.yml reads, from a postgresql:// URL."""
    parts = parse_url(warehouse_url)
    return {
        "ALLIANCE_DBT_HOST": parts.host,
        "ALLIANCE_DBT_PORT": str(parts.port),
        "ALLIANCE_DBT_USER": parts.user,
        "ALLIANCE_DBT_PASSWORD": parts.password,
        "ALLIANCE_DBT_DBNAME": parts.dbname,
        "ALLIANCE_DBT_SCHEMA": build_schema,
    }


def dbt_vars_from_config(config: AllianceConfig, as_of_date: date | None = None) -> dict:
    """The dbt vars the models read, from the parsed config (as_of_date pins pending/locked; None = today UTC)."""
    return {
        "reporting_currency": config.reporting_currency,
        "attribution_model": config.attribution.model,
        "lookback_days": config.attribution.lookback_days,
        "lock_days": config.lock_days,
        "as_of_date": as_of_date.isoformat() if as_of_date else "",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


@contextmanager
def _project_lock() -> Iterator[None]:
    """dbt_project/target is shared by every process (CLI, Airflow tasks): one dbt run at a time."""
    DBT_PROJECT_DIR.joinpath("target").mkdir(exist_ok=True)
    with open(DBT_PROJECT_DIR / "target" / ".alliance.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sample_rows(warehouse_url: str, sql: str | None, limit: int = 3) -> str:
    """A few failing rows of a test, so the message names what is wrong (e.g. the currency and date)."""
    if not sql:
        return ""
    try:
        with psycopg.connect(warehouse_url, connect_timeout=10) as conn:
            cur = conn.execute(f"select * from ({sql}) as failing limit {limit}")  # noqa: S608 - dbt-compiled SQL
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
    except psycopg.Error:
        return ""
    if not rows:
        return ""
    shown = "; ".join(", ".join(f"{n}={v}" for n, v in zip(names, row, strict=False)) for row in rows)
    return f" (e.g. {shown})"


def _failure_lines(result: Any, warehouse_url: str) -> list[str]:
    lines: list[str] = []
    for item in getattr(result, "results", None) or []:
        status = str(getattr(item.status, "value", item.status))
        if status not in ("error", "fail", "runtime error"):
            continue
        node = item.node
        kind = node.resource_type.value if hasattr(node.resource_type, "value") else str(node.resource_type)
        if kind in ("test", "unit_test"):
            attached = getattr(node, "attached_node", None) or getattr(node, "tested_node_unique_id", None) or ""
            on = attached.split(".")[-1] if attached else ", ".join(
                ref.name if hasattr(ref, "name") else str(ref[0]) for ref in (getattr(node, "refs", None) or [])
            )
            where = f" on {on}" if on else ""
            if status == "fail" and kind == "unit_test":
                detail = " ".join(_ANSI.sub("", item.message or "").split())[:400]
                lines.append(f"unit test {node.name} failed{where}: {detail}")
            elif status == "fail":
                rows = item.failures if item.failures is not None else "?"
                sample = _sample_rows(warehouse_url, getattr(node, "compiled_code", None)) if kind == "test" else ""
                lines.append(f"{kind.replace('_', ' ')} {node.name} failed{where}: {rows} rows{sample}")
            else:
                lines.append(f"{kind.replace('_', ' ')} {node.name} errored{where}: {(item.message or '').strip()}")
        else:
            lines.append(f"{kind} {node.name} {status}: {(item.message or '').strip()}")
    return lines


def _parse_once_per_database() -> None:
    """Keep dbt's partial parsing across servers on different ports.

    dbt re-parses the whole project (~4 s of CPU) when any connection key changes, host and port included, though
    no model reads them; an embedded server on a new free port (tests, the fault campaign, a restart) would pay
    that on every invocation. Database and schema stay in dbt's check: parsed nodes carry them.
    """
    from dbt.adapters.postgres.connections import PostgresCredentials

    if getattr(PostgresCredentials, "_alliance_port_free_parse", False):
        return
    original = PostgresCredentials._connection_keys

    def keys(self: PostgresCredentials) -> tuple[str, ...]:
        return tuple(key for key in original(self) if key not in ("host", "port"))

    PostgresCredentials._connection_keys = keys
    PostgresCredentials._alliance_port_free_parse = True


def run_dbt(
    args: list[str],
    warehouse_url: str,
    build_schema: str = BUILD_SCHEMA,
    vars: dict | None = None,  # noqa: A002 - named after dbt's --vars
) -> DbtOutcome:
    """Invoke dbt (e.g. ["build"]) on dbt_project against warehouse_url, models landing in build_schema."""
    from dbt.cli.main import dbtRunner  # imported late: dbt is heavy and only the transform needs it

    _parse_once_per_database()

    cli_args = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(DBT_PROJECT_DIR / "target"),
        "--log-path", str(DBT_PROJECT_DIR / "logs"),
        "--no-use-colors",
        *([] if os.environ.get("ALLIANCE_DBT_VERBOSE") else ["--quiet"]),
    ]
    if vars:
        cli_args += ["--vars", json.dumps(vars, default=str)]
    pgoptions = " ".join(filter(None, [os.environ.get("PGOPTIONS", ""), SESSION_OPTIONS]))
    with _project_lock(), _environment({**dbt_env(warehouse_url, build_schema), "PGOPTIONS": pgoptions}):
        res = dbtRunner().invoke(cli_args)
    failures = _failure_lines(res.result, warehouse_url)
    if res.exception is not None:
        failures.append(f"dbt could not run: {res.exception}")
    if not res.success and not failures:
        failures.append("dbt reported failure without a failed node; see dbt_project/logs/dbt.log")
    return DbtOutcome(success=bool(res.success), failures=failures, raw=res.result, exception=res.exception)
