"""`make docs`: the dbt docs site of the transform, built offline into one static HTML file.

Why static and catalog-free: the published tables live in `analytics` after an atomic swap, so the docs take the
column names, types (the enforced model contracts) and descriptions from the project itself; no warehouse, server
or internet is needed to build or open them.
"""

from __future__ import annotations

from pathlib import Path

from alliance.config import AllianceConfig
from alliance.dbt_runner import DBT_PROJECT_DIR, dbt_vars_from_config, run_dbt

DOCS_FILE = DBT_PROJECT_DIR / "target" / "static_index.html"
OFFLINE_URL = "postgresql://docs:docs@127.0.0.1:9/docs"  # never connected to: the catalog is left empty


def build_docs(config: AllianceConfig) -> Path:
    """dbt docs generate --static --empty-catalog; returns the self-contained HTML file."""
    outcome = run_dbt(["docs", "generate", "--static", "--empty-catalog", "--no-compile"], OFFLINE_URL,
                      vars=dbt_vars_from_config(config))
    if not outcome.success or not DOCS_FILE.exists():
        raise RuntimeError("dbt docs generate failed: " + "; ".join(outcome.failures))
    return DOCS_FILE
