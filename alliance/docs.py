"""`make docs`: the dbt docs site of the transform, built offline into one static HTML file.

Why static and catalog-free: the published tables live in `analytics` after an atomic swap, so the docs take the
column names, types (the enforced model contracts) and descriptions from the project itself; no warehouse, server
or internet is needed to build or open them.
"""

from __future__ import annotations

from pathlib import Path

from alliance.config import AllianceConfig
from alliance.dbt_runner import dbt_vars_from_config, run_dbt, target_dir

DOCS_FILE_NAME = "static_index.html"  # in dbt's target directory (alliance.dbt_runner.target_dir)
OFFLINE_URL = "postgresql://docs:docs@127.0.0.1:9/docs"  # never connected to: the catalog is left empty


def build_docs(config: AllianceConfig) -> Path:
    """dbt docs generate --static --empty-catalog; returns the self-contained HTML file."""
    outcome = run_dbt(["docs", "generate", "--static", "--empty-catalog", "--no-compile"], OFFLINE_URL,
                      vars=dbt_vars_from_config(config))
    docs_file = target_dir() / DOCS_FILE_NAME
    if not outcome.success or not docs_file.exists():
        raise RuntimeError("dbt docs generate failed: " + "; ".join(outcome.failures))
    return docs_file
