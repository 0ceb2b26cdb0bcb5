"""Thin Airflow adapter: assets and config lookup for the DAGs. The only module that imports Airflow.

Asset URIs follow Airflow's postgres scheme (host, port, database, schema, table) and are
built from ALLIANCE_WAREHOUSE_URL at parse time without touching the database.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset, Variable

from alliance.config import AllianceConfig, load_config
from alliance.warehouse import DATABASE, parse_url

PUBLISHED_TABLES = (
    "fct_orders", "fct_referrals", "fct_order_attribution", "partner_kpis_daily",
    "partner_balances", "objective_progress",
)


def _warehouse_prefix() -> str:
    url = os.environ.get("ALLIANCE_WAREHOUSE_URL", "").strip()
    if not url:
        return f"postgres://127.0.0.1:5432/{DATABASE}"
    parts = parse_url(url)
    return f"postgres://{parts.host}:{parts.port}/{parts.dbname}"


def table_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=f"{_warehouse_prefix()}/{schema}/{table}", group="alliance")


RAW_ORDERS = table_asset("raw", "orders")
RAW_CLICKS = table_asset("raw", "clicks")
PUBLISHED = [table_asset("analytics", table) for table in PUBLISHED_TABLES]


def dag_config() -> AllianceConfig:
    """The config named by the Airflow Variable `alliance_config`, else ALLIANCE_CONFIG."""
    path = Variable.get("alliance_config", default=None) or os.environ.get("ALLIANCE_CONFIG")
    return load_config(path)
