"""Pull every partner API into raw.*: one mapped task per storefront and per referral network.

Backfill a date range: trigger with `{"since": "2026-10-01"}` (re-pulls everything changed since then,
then continues incrementally), or `airflow backfill create --dag-id alliance_ingest --from-date ...
--to-date ...` (each backfill run re-pulls from its data interval start). Landing upserts, so re-pulls
duplicate nothing. Each mapped instance runs in its partner's pool (alliance.airflow_policy).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from alliance.airflow_support import RAW_CLICKS, RAW_ORDERS, AllianceFailureNotifier, dag_config


@dag(
    dag_id="alliance_ingest",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10), "on_failure_callback": [AllianceFailureNotifier()],
    },
    params={"since": Param(None, type=["null", "string"], format="date",
                           description="re-pull from this UTC date (YYYY-MM-DD); empty = incremental")},
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
    def ingest_orders(source_id: str, params=None, dag_run=None, data_interval_start=None) -> dict:  # noqa: ANN001
        from alliance.ingest_task import backfill_start, ingest_one

        return ingest_one(dag_config(), source_id, backfill_start(params, dag_run, data_interval_start))

    @task(outlets=[RAW_CLICKS], map_index_template="{{ task.op_kwargs['source_id'] }}")
    def ingest_clicks(source_id: str, params=None, dag_run=None, data_interval_start=None) -> dict:  # noqa: ANN001
        from alliance.ingest_task import backfill_start, ingest_one

        return ingest_one(dag_config(), source_id, backfill_start(params, dag_run, data_interval_start))

    ingest_orders.expand(source_id=storefronts())
    ingest_clicks.expand(source_id=networks())


alliance_ingest()
