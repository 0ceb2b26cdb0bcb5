"""Per-partner pools for the mapped ingest tasks (an Airflow cluster policy, loaded by airflow_local_settings).

Why a policy: a mapped task takes one pool for all its map indexes, but each partner needs its own,
so that scheduled runs, manual runs and backfills never pull one partner twice at the same time
(two pulls would double the request rate the partner allows; connectors rate-limit each pull at
`requests_per_second`). The hook gives map index i of ingest_orders / ingest_clicks the pool of the
i-th storefront / network, the same order the DAG's storefronts() / networks() tasks return.
"""

from __future__ import annotations

import importlib
import logging
import os

from alliance.config import AllianceConfig, load_config

PRELOAD_VARIABLE = "ALLIANCE_PRELOAD_TASK_IMPORTS"
# what the event path's tasks import: dbt (dbt_build) and GX with alliance's expectation (quality_gate)
PRELOADED_MODULES = ("dbt.cli.main", "great_expectations", "alliance.gx_expectations")
POOL_PREFIX = "alliance_"
ONE_PULL_AT_A_TIME = 1


def pool_name(source_id: str) -> str:
    return f"{POOL_PREFIX}{source_id}"


def pool_spec(config: AllianceConfig) -> list[dict]:
    """Airflow `pools import` entries: one slot each (one pull per partner at a time), rate limit in the text."""
    sources = [(p.id, p.requests_per_second) for p in config.storefronts]
    sources += [(n.id, n.requests_per_second) for n in config.referral_networks]
    return [
        {"name": pool_name(ident), "slots": ONE_PULL_AT_A_TIME, "include_deferred": False,
         "description": f"ingest of {ident}: one pull at a time, each limited to "
                       + (f"{rps:g} requests/s" if rps else "the connector's default rate")}
        for ident, rps in sources
    ]


def source_for(task_id: str, map_index: int, config: AllianceConfig) -> str | None:
    if map_index < 0:
        return None
    if task_id == "ingest_orders":
        ids = [p.id for p in config.storefronts]
    elif task_id == "ingest_clicks":
        ids = [n.id for n in config.referral_networks]
    else:
        return None
    return ids[map_index] if map_index < len(ids) else None


def task_instance_mutation_hook(task_instance, dag_run=None) -> None:  # noqa: ANN001 - Airflow's types
    """Cluster policy: move alliance_ingest's mapped instances into their partner's pool, if that pool exists."""
    if getattr(task_instance, "dag_id", None) != "alliance_ingest":
        return
    try:
        config = load_config(os.environ.get("ALLIANCE_CONFIG"), require_secrets=False)
    except Exception:  # noqa: BLE001 - a policy must never break scheduling; the default pool still works
        return
    source = source_for(task_instance.task_id, task_instance.map_index, config)
    if source is None:
        return
    from airflow.models.pool import Pool
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    # Query in the caller's session: opening our own would close the scheduler's and detach its objects.
    session = object_session(task_instance)
    if session is None:
        return
    if session.scalar(select(Pool.id).where(Pool.pool == pool_name(source))) is not None:
        task_instance.pool = pool_name(source)


def preload_task_imports() -> list[str]:
    """Import dbt and GX once in a process that forks task processes, when ALLIANCE_PRELOAD_TASK_IMPORTS is set.

    Why: Airflow 3 runs each task in a process forked from the executor's worker (LocalExecutor: children of the
    scheduler; Celery: the worker's pool), so what that process has imported every task has too, and dbt (2-5 s)
    and GX (~3 s) were imported again by every dbt_build and quality_gate task on the webhook-to-published path.
    Set it on the scheduler (LocalExecutor) and on Celery workers only: the api-server, DAG processor and triggerer
    run no task. Called from airflow_local_settings (devstack/airflow_local.py, docker-compose.yml).
    """
    if os.environ.get(PRELOAD_VARIABLE, "").strip().lower() not in ("1", "true", "yes"):
        return []
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # as alliance.gate.quiet_gx, before GX is imported
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    return list(PRELOADED_MODULES)
