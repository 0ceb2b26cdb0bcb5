"""Thin Airflow adapter: assets and config lookup for the DAGs. The only module that imports Airflow.

Asset URIs follow Airflow's postgres scheme (host, port, database, schema, table) and are
built from ALLIANCE_WAREHOUSE_URL at parse time without touching the database.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset, Variable

from alliance.assets import table_uri
from alliance.config import AllianceConfig, load_config

PUBLISHED_TABLES = (
    "fct_orders", "fct_referrals", "fct_order_attribution", "partner_kpis_daily",
    "partner_balances", "objective_progress",
)


def table_asset(schema: str, table: str) -> Asset:
    return Asset(name=f"{schema}.{table}", uri=table_uri(schema, table), group="alliance")


RAW_ORDERS = table_asset("raw", "orders")
RAW_CLICKS = table_asset("raw", "clicks")
PUBLISHED = [table_asset("analytics", table) for table in PUBLISHED_TABLES]


def dag_config() -> AllianceConfig:
    """The config named by the Airflow Variable `alliance_config`, else ALLIANCE_CONFIG."""
    path = Variable.get("alliance_config", default=None) or os.environ.get("ALLIANCE_CONFIG")
    return load_config(path)
