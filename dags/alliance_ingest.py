"""Pull every partner API into raw.*: one mapped task per storefront and per referral network."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from alliance.airflow_support import RAW_CLICKS, RAW_ORDERS, dag_config


@dag(
    dag_id="alliance_ingest",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    tags=["alliance"],
    doc_md=__doc__,
)
def alliance_ingest() -> None:
    @task
    def storefronts() -> list[str]:
        return [partner.id for partner in dag_config().storefronts]

    @task
    def networks() -> list[str]:
        return [network.id for network in dag_config().referral_networks]

    @task(outlets=[RAW_ORDERS], map_index_template="{{ task.op_kwargs['source_id'] }}")
    def ingest_orders(source_id: str) -> dict:
        from alliance.ingest_task import ingest_one

        return ingest_one(dag_config(), source_id)

    @task(outlets=[RAW_CLICKS], map_index_template="{{ task.op_kwargs['source_id'] }}")
    def ingest_clicks(source_id: str) -> dict:
        from alliance.ingest_task import ingest_one

        return ingest_one(dag_config(), source_id)

    ingest_orders.expand(source_id=storefronts())
    ingest_clicks.expand(source_id=networks())


alliance_ingest()
