"""When the transform may build incrementally, and the dbt call that does it.

The large intermediate models are dbt incremental models in `<build>_work` (that schema persists across runs).
They stay equal to a full refresh as long as the rules, the config and the previous build are unchanged, so a
fingerprint of those (dbt vars except as_of_date, the model/macro/test files, the mirrored config tables that price
and attribute orders) is kept per build schema in `ops.transform_state`. A different fingerprint, or a previous
build that did not finish cleanly, makes the next build a `--full-refresh`.

An incremental build skips dbt's unit tests: they test model code on fixed inputs, not data, and the fingerprint
(which covers every file under models/, unit tests included) equals the one of the last successful build, whose
unit tests passed on the same code. A full refresh (every code or config change) runs them. Its data tests on the
large tables check only the orders and clicks it rewrote (dbt_project/macros/test_scoping.sql); the other rows
passed the same tests in that last successful build.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from alliance.dbt_runner import DBT_PROJECT_DIR, DbtOutcome, run_dbt
from alliance.warehouse import connect

log = logging.getLogger(__name__)

CONFIG_TABLES = ("cfg_partners", "cfg_referral_codes", "cfg_contracts", "cfg_fx_rates")
STATE_DDL = """
create schema if not exists ops;
create table if not exists ops.transform_state (
    build_schema text primary key,
    fingerprint  text not null,
    updated_at   timestamptz not null default now()
)
"""


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
        conn.execute(STATE_DDL)
        row = conn.execute("select fingerprint from ops.transform_state where build_schema = %s",
                           (build_schema,)).fetchone()
    return row[0] if row else None


def _store(url: str, build_schema: str, value: str | None) -> None:
    with connect(url) as conn:
        conn.execute(STATE_DDL)
        if value is None:
            conn.execute("delete from ops.transform_state where build_schema = %s", (build_schema,))
        else:
            conn.execute(
                "insert into ops.transform_state (build_schema, fingerprint) values (%s, %s)"
                " on conflict (build_schema) do update set fingerprint = excluded.fingerprint, updated_at = now()",
                (build_schema, value),
            )


def dbt_build(url: str, build_schema: str, dbt_vars: dict, *, full_refresh: bool | None = None) -> BuildOutcome:
    """`dbt build`, incremental when allowed (full_refresh=None decides by fingerprint; True/False forces)."""
    current = fingerprint(url, dbt_vars)
    if full_refresh is None:
        full_refresh = _stored(url, build_schema) != current
    _store(url, build_schema, None)  # a build that stops midway leaves the work tables half-updated
    args = ["build", "--full-refresh"] if full_refresh else ["build", "--exclude-resource-type", "unit_test"]
    log.info("dbt build (%s)", "full refresh" if full_refresh else "incremental")
    outcome = run_dbt(args, url, build_schema, vars=dbt_vars)
    if outcome.success:
        _store(url, build_schema, current)
    return BuildOutcome(outcome, full_refresh)
