"""Per-partner pools for the mapped ingest tasks (an Airflow cluster policy, loaded by airflow_local_settings).

Why a policy: a mapped task takes one pool for all its map indexes, but each partner needs its own,
so that scheduled runs, manual runs and backfills never pull one partner twice at the same time
(two pulls would double the request rate the partner allows; connectors rate-limit each pull at
`requests_per_second`). The hook gives map index i of ingest_orders / ingest_clicks the pool of the
i-th storefront / network, the same order the DAG's storefronts() / networks() tasks return.
"""

from __future__ import annotations

import os

from alliance.config import AllianceConfig, load_config

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
