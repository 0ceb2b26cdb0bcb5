"""`alliance status`: what ran, what landed, what is published, and where."""

from __future__ import annotations

import psycopg
from rich.console import Console
from rich.table import Table

from alliance.schemas import PREVIOUS_SCHEMA, PUBLISHED_SCHEMA, PUBLISHED_TABLES, RAW_SCHEMA
from alliance.warehouse import connect, redact

COUNTED = [
    (RAW_SCHEMA, "orders"), (RAW_SCHEMA, "clicks"), (RAW_SCHEMA, "quarantine"),
    *((PUBLISHED_SCHEMA, table) for table in PUBLISHED_TABLES),
    (PUBLISHED_SCHEMA, "kpi_alerts"),
]


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",)).fetchone()[0]


def print_status(console: Console, url: str) -> None:
    console.print(f"warehouse: {redact(url)}")
    with connect(url) as conn:
        counts = Table(title="row counts")
        counts.add_column("table")
        counts.add_column("rows", justify="right")
        for schema, table in COUNTED:
            rows = conn.execute(f"select count(*) from {schema}.{table}").fetchone()[0] if _exists(
                conn, schema, table) else "-"
            counts.add_row(f"{schema}.{table}", str(rows))
        console.print(counts)
        if _exists(conn, "raw", "loads"):
            loads = Table(title="last loads")
            for column in ("source", "entity", "status", "finished", "landed", "quarantined", "error"):
                loads.add_column(column)
            for row in conn.execute(
                "select source_id, entity, status, to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS'), records_landed,"
                " records_quarantined, coalesce(left(error, 80), '') from raw.loads order by started_at desc limit 8"
            ):
                loads.add_row(*[str(v) for v in row])
            console.print(loads)
        if _exists(conn, "ops", "runs"):
            runs = Table(title="last runs (ops.runs)")
            for column in ("run", "kind", "status", "step", "published", "checks ok", "checks failed", "git",
                           "finished", "message"):
                runs.add_column(column)
            for row in conn.execute(
                "select run_id, kind, status, coalesce(step, '-'), published, coalesce(checks_passed::text, '-'),"
                " coalesce(checks_failed::text, '-'), coalesce(left(git_commit, 12), '-'),"
                " to_char(coalesce(finished_at, started_at), 'YYYY-MM-DD HH24:MI:SS'),"
                " left(coalesce(message, ''), 100) from ops.runs order by started_at desc limit 8"
            ):
                runs.add_row(*[str(v) for v in row])
            console.print(runs)
        for schema in (PUBLISHED_SCHEMA, PREVIOUS_SCHEMA):
            found = conn.execute("select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s",
                                 (schema,)).fetchone()
            if found:
                console.print(f"{schema}: {found[0] or '-'}", highlight=False)
