"""Asset URIs of the warehouse tables, without importing Airflow (the webhook receiver needs them too).

URIs follow Airflow's postgres scheme (host, port, database, schema, table) and are built from
ALLIANCE_WAREHOUSE_URL without touching the database, so the DAGs and the receiver agree on them.
"""

from __future__ import annotations

import os

from alliance.warehouse import DATABASE, parse_url


def warehouse_prefix(url: str | None = None) -> str:
    url = (url if url is not None else os.environ.get("ALLIANCE_WAREHOUSE_URL", "")).strip()
    if not url:
        return f"postgres://127.0.0.1:5432/{DATABASE}"
    parts = parse_url(url)
    return f"postgres://{parts.host}:{parts.port}/{parts.dbname}"


def table_uri(schema: str, table: str, url: str | None = None) -> str:
    return f"{warehouse_prefix(url)}/{schema}/{table}"
