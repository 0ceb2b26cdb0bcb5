"""Transform on new landed data: dbt build → quality gate → atomic publish → alerts."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from alliance.airflow_support import PUBLISHED, RAW_CLICKS, RAW_ORDERS, dag_config


@dag(
    dag_id="alliance_transform",
    schedule=(RAW_ORDERS | RAW_CLICKS),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["alliance"],
    doc_md=__doc__,
)
def alliance_transform() -> None:
    @task
    def prepare() -> str:
        from alliance import run

        run_id = run.new_run_id()
        run.prepare(dag_config(), run_id)
        return run_id

    @task
    def dbt_build(run_id: str) -> list[str]:
        from alliance import run

        return run.build(dag_config(), run_id)

    @task
    def quality_gate(run_id: str, dbt_failures: list[str]) -> str:
        from alliance import run

        run.check(run_id, dbt_failures)
        return run_id

    @task(outlets=PUBLISHED)
    def publish(run_id: str) -> str:
        from alliance import run

        run.publish(run_id)
        return run_id

    @task
    def alerts(run_id: str) -> int:
        from alliance import run

        return run.alert(dag_config(), run_id)

    run_id = prepare()
    alerts(publish(quality_gate(run_id, dbt_build(run_id))))


alliance_transform()
