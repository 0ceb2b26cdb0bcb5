"""The quality gate: GX suites from `expectations/` run on the build schema, plus dbt test failures.

Only a passed gate may lead to `publish()`. The GX project is file-backed (suites, validation definitions and the
`alliance_gate` checkpoint are JSON files under `expectations/`); only the connection string is supplied at
runtime, as the config variable ALLIANCE_GX_CONNECTION_STRING (never written to disk). The build schema is
selected through the connection's `search_path`, which is how GX 1.x wants a Postgres schema passed.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alliance.warehouse import PROJECT_ROOT, connect, parse_url

log = logging.getLogger(__name__)

GX_PROJECT_DIR = PROJECT_ROOT / "expectations"
CHECKPOINT_NAME = "alliance_gate"
CONNECTION_VARIABLE = "ALLIANCE_GX_CONNECTION_STRING"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SKIPPED_KWARGS = {"batch_id", "mostly", "result_format", "include_config", "catch_exceptions", "meta"}


class GateError(RuntimeError):
    """The gate could not be run at all (bad arguments, GX project unreadable)."""


@dataclass
class GateResult:
    """Why the gate passed or failed: one line per failure, plus per-table GX statistics in `results`."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


def check_identifier(name: str, what: str) -> str:
    """Schema names are interpolated into SQL, so only plain lower-case identifiers are accepted."""
    if not IDENTIFIER.match(name):
        raise GateError(f"{what} `{name}` is not a plain lower-case SQL identifier ([a-z_][a-z0-9_]*)")
    return name


def quiet_gx() -> None:
    """GX is chatty (progress bars, INFO lines, analytics); keep it to real errors, in code, before import."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def gx_connection_string(warehouse_url: str, schema: str) -> str:
    """SQLAlchemy URL for GX over TCP, with `search_path` set to the schema under test."""
    parts = parse_url(warehouse_url)
    if parts.host.startswith("/"):
        raise GateError(f"GX needs a TCP host, not the Unix socket `{parts.host}`; use 127.0.0.1")
    auth = quote(parts.user, safe="") + (f":{quote(parts.password, safe='')}" if parts.password else "")
    return (
        f"postgresql+psycopg2://{auth}@{parts.host}:{parts.port}/{quote(parts.dbname, safe='')}"
        f"?options=-csearch_path%3D{schema}"
    )


def _existing_tables(warehouse_url: str, schema: str) -> set[str] | None:
    """Tables in `schema`, or None when the schema itself does not exist."""
    with connect(warehouse_url) as conn:
        if conn.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is None:
            return None
        rows = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def _describe_expectation(config: Any) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k not in _SKIPPED_KWARGS and v is not None}
    args: list[str] = []
    if "column" in kwargs:
        args.append(str(kwargs.pop("column")))
    if "column_list" in kwargs:
        args.append("(" + ", ".join(kwargs.pop("column_list")) + ")")
    kwargs.pop("ignore_row_if", None)
    for value in kwargs.values():
        args.append(str(value) if not isinstance(value, list) else "[" + ", ".join(map(str, value)) + "]")
    return f"{config.type}({', '.join(args)})"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(str(v) for v in value.values()) + ")"
    return str(value)


def _describe_outcome(result: dict, exception_info: Any) -> str:
    if exception_info and getattr(exception_info, "raised_exception", False):
        return f"error: {str(exception_info.exception_message).splitlines()[0][:300]}"
    if isinstance(exception_info, dict):
        for info in exception_info.values():
            if isinstance(info, dict) and info.get("raised_exception"):
                return f"error: {str(info.get('exception_message')).splitlines()[0][:300]}"
    if "unexpected_count" in result and result.get("element_count") is not None:
        text = f"{result['unexpected_count']} of {result['element_count']} rows"
        sample = result.get("partial_unexpected_list") or []
        if sample:
            text += ", e.g. " + "; ".join(_show(value) for value in sample[:3])
        return text
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    return "no details"


def _run_suites(warehouse_url: str, schema: str, tables: set[str]) -> tuple[list[str], dict[str, Any]]:
    """Run every validation definition of the checkpoint whose table exists; one GX context per call."""
    quiet_gx()
    import great_expectations as gx  # heavy import (seconds): only when a gate actually runs

    context = gx.get_context(
        mode="file",
        context_root_dir=str(GX_PROJECT_DIR),
        runtime_environment={CONNECTION_VARIABLE: gx_connection_string(warehouse_url, schema)},
    )
    checkpoint = context.checkpoints.get(CHECKPOINT_NAME)
    failures: list[str] = []
    results: dict[str, Any] = {}
    for definition in checkpoint.validation_definitions:
        table = definition.asset.table_name
        if table not in tables:
            failures.append(f"{table}: table missing from build schema `{schema}` (did dbt build it?)")
            results[table] = {"success": False, "missing": True}
            continue
        try:
            outcome = definition.run(result_format="SUMMARY")
        except Exception as exc:  # GX wraps connection and SQL errors in many types; report, never crash
            failures.append(f"{table}: GX could not validate the table: {str(exc).splitlines()[0][:300]}")
            results[table] = {"success": False, "error": str(exc)[:1000]}
            continue
        failed = [r for r in outcome.results if not r.success]
        for item in failed:
            failures.append(
                f"{table}: {_describe_expectation(item.expectation_config)} failed: "
                f"{_describe_outcome(item.result or {}, item.exception_info)}"
            )
        results[table] = {"success": bool(outcome.success), "statistics": dict(outcome.statistics)}
    return failures, results


def run_gate(
    warehouse_url: str, build_schema: str = "alliance_build", dbt_failures: list[str] | None = None
) -> GateResult:
    """Validate the build schema against the GX suites and fold in dbt's test failures; never raises on bad data."""
    check_identifier(build_schema, "build schema")
    if not (GX_PROJECT_DIR / "great_expectations.yml").is_file():
        raise GateError(f"GX project not found: {GX_PROJECT_DIR / 'great_expectations.yml'}")
    failures = [f"dbt: {line}" for line in (dbt_failures or [])]
    results: dict[str, Any] = {"dbt": {"success": not dbt_failures, "failures": list(dbt_failures or [])}}
    tables = _existing_tables(warehouse_url, build_schema)
    if tables is None:
        failures.append(f"build schema `{build_schema}` does not exist: run `dbt build` before the gate")
    else:
        gx_failures, gx_results = _run_suites(warehouse_url, build_schema, tables)
        failures += gx_failures
        results.update(gx_results)
    result = GateResult(passed=not failures, failures=failures, results=results)
    log.info("gate on %s: %s (%d failures)", build_schema, "passed" if result.passed else "FAILED", len(failures))
    return result


def gx_project_dir() -> Path:
    """Where the GX project lives (for the CLI and docs)."""
    return GX_PROJECT_DIR
