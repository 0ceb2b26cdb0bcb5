"""One transform run, step by step: the functions the CLI and the Airflow DAGs both call.

Each step is idempotent, so a retried task or several asset events collapsing into one
run never double-count: dbt rebuilds the build schema, publish swaps it in whole, and
alerts are keyed by rule, partner and period.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from alliance.config import AllianceConfig
from alliance.config_sync import sync_config
from alliance.warehouse import connect, warehouse_url

log = logging.getLogger(__name__)

BUILD_SCHEMA = "alliance_build"
RAW_SCHEMA_SQL = Path(__file__).resolve().parents[1] / "connectors" / "raw_schema.sql"


class StepFailed(RuntimeError):
    """A step failed for a reason the run log records; the message is for the operator."""


@dataclass
class TransformResult:
    run_id: str
    published: bool
    failures: list[str] = field(default_factory=list)
    alerts_fired: int = 0


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def prepare(config: AllianceConfig, run_id: str, url: str | None = None) -> None:
    """Mirror the config into the warehouse and open the run in the run log."""
    from alliance.publish import record_run

    url = url or warehouse_url()
    with connect(url) as conn:
        conn.execute(RAW_SCHEMA_SQL.read_text())  # a transform before the first ingest still builds
        sync_config(conn, config)
        # A failed earlier build must not leave stale tables for this run's gate to pass on.
        conn.execute(f"drop schema if exists {BUILD_SCHEMA} cascade")
    record_run(url, run_id, status="running", step="prepare", message="transform started")


def build(config: AllianceConfig, run_id: str, url: str | None = None, as_of: date | None = None) -> list[str]:
    """dbt build (models and their tests) into the build schema; returns failing nodes, if any."""
    from alliance.dbt_runner import dbt_vars_from_config
    from alliance.incremental import dbt_build

    url = url or warehouse_url()
    outcome = dbt_build(url, BUILD_SCHEMA, dbt_vars_from_config(config, as_of_date=as_of)).outcome
    for line in outcome.failures:
        log.error("dbt: %s", line)
    return list(outcome.failures)


def check(run_id: str, dbt_failures: list[str], url: str | None = None) -> None:
    """The quality gate: dbt tests and GX suites on the build schema. Raises when anything failed."""
    from alliance.gate import run_gate
    from alliance.publish import record_run

    url = url or warehouse_url()
    result = run_gate(url, BUILD_SCHEMA, dbt_failures=dbt_failures)
    if not result.passed:
        message = "quality gate failed, analytics left unchanged:\n  " + "\n  ".join(result.failures)
        record_run(url, run_id, status="gate_failed", step="gate", message=message)
        raise StepFailed(message)


def publish(run_id: str, url: str | None = None) -> None:
    from alliance.publish import publish as swap_in
    from alliance.publish import record_run

    url = url or warehouse_url()
    swap_in(url, BUILD_SCHEMA, run_id=run_id)
    record_run(url, run_id, status="published", step="publish", message="analytics published")


def alert(config: AllianceConfig, run_id: str, url: str | None = None, as_of: date | None = None) -> int:
    """Evaluate alert rules on the published data; returns how many alerts newly fired."""
    from alliance.alerts import AlertOutcome, evaluate, load_alerts_file
    from alliance.publish import record_run

    url = url or warehouse_url()
    outcome = AlertOutcome()
    if config.alerts is not None:
        outcome = evaluate(url, load_alerts_file(config.alerts), run_id=run_id, as_of=as_of)
    failed = [d for d in outcome.deliveries if d.status == "failed"]
    message = f"{len(outcome.fired)} alert(s) fired, {len(outcome.resolved)} resolved" + (
        f", {len(failed)} delivery(ies) failed (ops.alert_deliveries)" if failed else "")
    record_run(url, run_id, status="succeeded", step="alerts", message=message)
    return len(outcome.fired)


def fail(run_id: str, step: str, error: BaseException, url: str | None = None) -> None:
    from alliance.publish import record_run

    record_run(url or warehouse_url(), run_id, status="failed", step=step, message=str(error))


def transform(config: AllianceConfig, url: str | None = None, as_of: date | None = None) -> TransformResult:
    """The whole transform in-process: config → dbt build → gate → publish → alerts."""
    url = url or warehouse_url()
    run_id = new_run_id()
    step = "prepare"
    try:
        prepare(config, run_id, url)
        step = "build"
        failures = build(config, run_id, url, as_of)
        step = "gate"
        check(run_id, failures, url)
        step = "publish"
        publish(run_id, url)
        step = "alerts"
        fired = alert(config, run_id, url, as_of)
    except StepFailed as exc:
        return TransformResult(run_id, published=False, failures=str(exc).splitlines()[1:])
    except Exception as exc:
        fail(run_id, step, exc, url)
        raise
    return TransformResult(run_id, published=True, alerts_fired=fired)
