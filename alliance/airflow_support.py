"""Thin Airflow adapter: assets and config lookup for the DAGs. The only module that imports Airflow.

Asset URIs follow Airflow's postgres scheme (host, port, database, schema, table) and are
built from ALLIANCE_WAREHOUSE_URL at parse time without touching the database.
"""

from __future__ import annotations

import os
from datetime import date

from airflow.sdk import Asset, BaseNotifier, Variable

from alliance.airflow_credentials import require_connections
from alliance.airflow_policy import pool_spec
from alliance.assets import statements_uri, table_uri
from alliance.config import AllianceConfig, load_config
from alliance.failure_notify import Failure, notify_failure
from alliance.schemas import PUBLISHED_SCHEMA, PUBLISHED_TABLES, RAW_SCHEMA


def table_asset(schema: str, table: str) -> Asset:
    """Named by its URI: Airflow keeps asset names unique, so a name shared by two warehouses (the demo's
    and a test's, on one metadata DB) would leave one of them inactive and fail the tasks producing it."""
    uri = table_uri(schema, table)
    return Asset(name=uri, uri=uri, group="alliance")


RAW_ORDERS = table_asset(RAW_SCHEMA, "orders")
RAW_CLICKS = table_asset(RAW_SCHEMA, "clicks")
PUBLISHED = [table_asset(PUBLISHED_SCHEMA, table) for table in PUBLISHED_TABLES]
# §9.1 the statements folder: an event whenever a run wrote new or revised partner statements, for downstream senders
STATEMENTS = Asset(name=statements_uri(), uri=statements_uri(), group="alliance")


def dag_config() -> AllianceConfig:
    """The config named by the Airflow Variable `alliance_config`, else ALLIANCE_CONFIG."""
    path = Variable.get("alliance_config", default=None) or os.environ.get("ALLIANCE_CONFIG")
    return require_connections(load_config(path))


def dag_as_of() -> date | None:
    """The day the transform treats as today (lock dates, pending/locked, alert periods), from the Airflow Variable
    `alliance_as_of`, else ALLIANCE_AS_OF; unset means today (UTC). For replays and for tests that must not depend
    on the date they run, as `alliance transform --as-of` does on the command line."""
    value = (Variable.get("alliance_as_of", default=None) or os.environ.get("ALLIANCE_AS_OF") or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("alliance_as_of / ALLIANCE_AS_OF must be a date as YYYY-MM-DD") from None


class AllianceFailureNotifier(BaseNotifier):
    """on_failure_callback for every alliance task: log, plus Slack / SMTP when configured (env)."""

    def notify(self, context) -> None:  # noqa: ANN001 - Airflow's Context
        ti = context.get("ti") or context.get("task_instance")
        error = context.get("exception")
        notify_failure(Failure(
            dag_id=getattr(ti, "dag_id", "?"), task_id=getattr(ti, "task_id", "?"),
            run_id=str(context.get("run_id") or getattr(ti, "run_id", "?")),
            error=f"{type(error).__name__}: {error}" if error else "failed (no exception recorded)",
            try_number=getattr(ti, "try_number", None), log_url=getattr(ti, "log_url", None),
        ))


def partner_pools(config: AllianceConfig) -> list[dict]:
    """One pool per storefront and network: `alliance_<id>`, see alliance.airflow_policy."""
    return pool_spec(config)
