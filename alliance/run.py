"""One transform run, step by step: the functions the CLI and the Airflow DAGs both call.

Each step is idempotent, so a retried task or several asset events collapsing into one
run never double-count: dbt rebuilds the build schema, publish swaps it in whole, and
alerts are keyed by rule, partner and period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from alliance.alerts import AlertOutcome, evaluate, load_alerts_file, sync_alert_rules
from alliance.config import AllianceConfig
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.gate import GateSettings, run_gate
from alliance.incremental import dbt_build
from alliance.locks import RUN
from alliance.manifest import gate_row_counts, new_run_id, open_run, record_checks, record_run
from alliance.migrate import migrate
from alliance.publish import publish as swap_in
from alliance.publish import stamp_build
from alliance.roles import component_url
from alliance.schemas import BUILD_SCHEMA
from alliance.statements import IssueResult, issue_statements
from alliance.warehouse import connect
from connectors.claims import land_claims

log = logging.getLogger(__name__)

RUN_LOCK_KEY = RUN.key  # session advisory lock: one transform run (prepare → publish) per warehouse (alliance/locks.py)


class StepFailed(RuntimeError):
    """A step failed for a reason the run log records; the message is for the operator."""


class RunRefused(StepFailed):
    """Another transform run holds the run lock: this one builds and publishes nothing."""


@dataclass
class TransformResult:
    run_id: str
    published: bool
    failures: list[str] = field(default_factory=list)
    alerts_fired: int = 0
    statements: IssueResult | None = None
    refused: bool = False
    data_docs: Path | None = None


def _holder(url: str) -> str:
    """Who holds the run lock, for the refusal message."""
    with connect(url) as conn:
        row = conn.execute(
            "select l.pid, a.backend_start from pg_locks l left join pg_stat_activity a using (pid)"
            " where l.locktype = 'advisory' and l.granted and l.objid = %s and l.classid = %s",
            (RUN_LOCK_KEY & 0xFFFFFFFF, RUN_LOCK_KEY >> 32),
        ).fetchone()
        running = None
        if conn.execute("select to_regclass('ops.runs') is not null").fetchone()[0]:
            running = conn.execute(
                "select run_id, started_at from ops.runs where kind = 'transform' and status = 'running'"
                " order by started_at desc limit 1").fetchone()
    parts = []
    if running:
        parts.append(f"run {running[0]} started {running[1]:%Y-%m-%d %H:%M:%S}Z")
    if row:
        parts.append(f"backend pid {row[0]}")
    return ", ".join(parts) or "unknown holder"


def _refuse(url: str, run_id: str) -> RunRefused:
    message = (f"another transform run is in progress on this warehouse ({_holder(url)}); run {run_id} exits "
               "without building or publishing: rerun when it has finished (or pass --wait SECONDS)")
    record_run(url, run_id, "refused", message=message)
    return RunRefused(message)


@contextmanager
def run_lock(url: str, run_id: str, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the run lock (a session advisory lock) for a whole in-process run; refuse, or wait, when it is held."""
    with psycopg.connect(url, autocommit=True) as conn:
        got = conn.execute("select pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]
        if not got and wait_seconds > 0:
            log.info("run %s waits up to %ss for the run in progress (%s)", run_id, wait_seconds, _holder(url))
            conn.execute(f"set lock_timeout = '{int(wait_seconds * 1000)}ms'")
            try:
                conn.execute("select pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
                got = True
            except psycopg.errors.LockNotAvailable:
                got = False
            conn.execute("reset lock_timeout")
        if not got:
            raise _refuse(url, run_id)
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))


def ensure_no_run_in_progress(url: str, run_id: str) -> None:
    """For runs split into tasks (Airflow): refuse to start while an in-process run holds the run lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("select pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:
            raise _refuse(url, run_id)
        conn.execute("select pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))


def prepare(config: AllianceConfig, run_id: str, url: str | None = None, *, locked: bool = False) -> None:
    """Open the run in the run log, mirror the config and alert rules into the warehouse, land the claims files,
    clear the build's stamp.

    `locked`: the caller holds the run lock (in-process run); otherwise refuse while another run holds it.
    """
    url = url or component_url("transformer")
    open_run(url, run_id, config)
    if not locked:
        ensure_no_run_in_progress(url, run_id)
    with connect(url) as conn:
        migrate(conn)  # a transform before the first ingest still builds
        sync_config(conn, config)
        land_claims(conn, config.claims, {p.id for p in config.partners})  # §9.2, judged by this run's build
        sync_alert_rules(conn, load_alerts_file(config.alerts).rules if config.alerts is not None else [])
        # The build schema is kept (a recycled snapshot the incremental marts start from, or a failed build kept
        # for inspection), but never with an earlier run's gate stamp: only this run's gate can stamp it.
        if conn.execute("select to_regnamespace(%s)", (BUILD_SCHEMA,)).fetchone()[0] is not None:
            conn.execute(sql.SQL("comment on schema {} is null").format(sql.Identifier(BUILD_SCHEMA)))
    record_run(url, run_id, status="running", step="prepare", message="transform started")


def build(config: AllianceConfig, run_id: str, url: str | None = None, as_of: date | None = None) -> list[str]:
    """dbt build (models and their tests) into the build schema; returns failing nodes, if any."""
    url = url or component_url("transformer")
    outcome = dbt_build(url, BUILD_SCHEMA, dbt_vars_from_config(config, as_of_date=as_of)).outcome
    for line in outcome.warnings:  # e.g. §8.5: reviews of orders that are not held, ignored
        log.warning("dbt: %s", line)
    for line in outcome.failures:
        log.error("dbt: %s", line)
    return list(outcome.failures)


def check(
    run_id: str, dbt_failures: list[str], url: str | None = None, config: AllianceConfig | None = None
) -> None:
    """The quality gate: dbt tests and GX suites on raw.* and the build schema. Raises when anything failed.

    Checks passed and failed, each failure's table, column and sample rows, and the Data Docs path are stored in
    the run log (ops.runs); the failing build schema stays for inspection. A passed gate stamps the build schema.
    """
    url = url or component_url("transformer")
    settings = GateSettings.from_config(config) if config is not None else GateSettings()
    result = run_gate(url, BUILD_SCHEMA, dbt_failures=dbt_failures, settings=settings)
    record_checks(url, run_id, result)
    if not result.passed:
        message = "quality gate failed, analytics left unchanged:\n  " + "\n  ".join(result.failures)
        if result.data_docs:
            message += f"\n  GX Data Docs: {result.data_docs}"
        message += f"\n  failing build kept for inspection in schema {BUILD_SCHEMA}; details in ops.runs"
        record_run(url, run_id, status="gate_failed", step="gate", message=message)
        raise StepFailed(message)
    stamp_build(url, run_id, BUILD_SCHEMA)


def publish(run_id: str, url: str | None = None, config: AllianceConfig | None = None) -> None:
    url = url or component_url("transformer")
    timeout = config.gate.lock_timeout_seconds if config is not None else 60
    swap_in(url, BUILD_SCHEMA, run_id=run_id, require_stamp=True, lock_timeout_seconds=timeout,
            row_counts=gate_row_counts(url, run_id))
    record_run(url, run_id, status="published", step="publish", message="analytics published")


def alert(config: AllianceConfig, run_id: str, url: str | None = None, as_of: date | None = None) -> int:
    """Evaluate alert rules on the published data; returns how many alerts newly fired."""
    url = url or component_url("transformer")
    outcome = AlertOutcome()
    if config.alerts is not None:
        outcome = evaluate(url, load_alerts_file(config.alerts), run_id=run_id, as_of=as_of)
    failed = [d for d in outcome.deliveries if d.status == "failed"]
    message = f"{len(outcome.fired)} alert(s) fired, {len(outcome.resolved)} resolved" + (
        f", {len(failed)} delivery(ies) failed (ops.alert_deliveries)" if failed else "")
    record_run(url, run_id, status="succeeded", step="alerts", message=message)
    return len(outcome.fired)


def issue(config: AllianceConfig, run_id: str, url: str | None = None) -> IssueResult:
    """§9.1 after a publish: write the statements of locked months that are new or changed (revised)."""
    url = url or component_url("transformer")
    result = issue_statements(url, run_id=run_id, currency=config.reporting_currency,
                              names={p.id: p.name or p.id for p in config.partners})
    if result.written:
        log.info("run %s: %d statement(s) issued, %d revised", run_id, len(result.first), len(result.revised))
    return result


def fail(run_id: str, step: str, error: BaseException, url: str | None = None) -> None:
    """Record the run as failed at `step` (a published run keeps published = true in the run log)."""
    url = url or component_url("transformer")
    record_run(url, run_id, status="failed", step=step, message=str(error))


def transform(
    config: AllianceConfig, url: str | None = None, as_of: date | None = None, wait_seconds: float = 0
) -> TransformResult:
    """The whole transform in-process under the run lock: config → dbt build → gate → publish → alerts."""
    url = url or component_url("transformer")
    run_id = new_run_id()
    step = "prepare"
    try:
        with run_lock(url, run_id, wait_seconds):
            prepare(config, run_id, url, locked=True)
            step = "build"
            failures = build(config, run_id, url, as_of)
            step = "gate"
            check(run_id, failures, url, config)
            step = "publish"
            publish(run_id, url, config)
        step = "alerts"
        fired = alert(config, run_id, url, as_of)
        step = "statements"
        issued = issue(config, run_id, url)
    except RunRefused as exc:
        return TransformResult(run_id, published=False, failures=[str(exc)], refused=True)
    except StepFailed as exc:
        lines = str(exc).splitlines()[1:]
        docs = next((line.split(": ", 1)[1] for line in lines if line.strip().startswith("GX Data Docs:")), None)
        return TransformResult(run_id, published=False, failures=lines, data_docs=Path(docs) if docs else None)
    except Exception as exc:
        fail(run_id, step, exc, url)
        raise
    return TransformResult(run_id, published=True, alerts_fired=fired, statements=issued)
