"""Asset URIs of the warehouse tables and the statements folder, without importing Airflow (the webhook receiver
needs them too).

URIs follow Airflow's postgres scheme (host, port, database, schema, table) and are built from
ALLIANCE_WAREHOUSE_URL without touching the database, so the DAGs and the receiver agree on them.
"""

from __future__ import annotations

import os
from pathlib import Path

from alliance.warehouse import DATABASE, parse_url, state_dir


def warehouse_prefix(url: str | None = None) -> str:
    url = (url if url is not None else os.environ.get("ALLIANCE_WAREHOUSE_URL", "")).strip()
    if not url:
        return f"postgres://127.0.0.1:5432/{DATABASE}"
    parts = parse_url(url)
    return f"postgres://{parts.host}:{parts.port}/{parts.dbname}"


def table_uri(schema: str, table: str, url: str | None = None) -> str:
    return f"{warehouse_prefix(url)}/{schema}/{table}"


STATEMENTS_DIR_VARIABLE = "ALLIANCE_STATEMENTS_DIR"


def statements_dir() -> Path:
    """Where issued partner statements go (§9.1): $ALLIANCE_STATEMENTS_DIR, else `statements/` in the state dir."""
    configured = os.environ.get(STATEMENTS_DIR_VARIABLE, "").strip()
    return Path(configured).resolve() if configured else state_dir() / "statements"


def statements_uri() -> str:
    """The asset downstream senders watch: the statements folder, updated when a run (re)writes statements."""
    return statements_dir().as_uri()
