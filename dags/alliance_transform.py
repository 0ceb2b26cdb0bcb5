"""Transform on new landed data: dbt build → quality gate → atomic publish → alerts, and partner statements.

Scheduled on the raw assets (polls and webhooks both emit them). Several asset events that arrive
while a run is going collapse into the next run; every run rebuilds from all of raw, so nothing is lost.
After the publish, locked months' statements that are new or changed are written (§9.1); the STATEMENTS asset gets
an event only then (the task is skipped when nothing was written), for downstream senders.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from alliance.airflow_support import (
    PUBLISHED,
    RAW_CLICKS,
    RAW_ORDERS,
    STATEMENTS,
    AllianceFailureNotifier,
    dag_as_of,
    dag_config,
)


@dag(
    dag_id="alliance_transform",
    schedule=(RAW_ORDERS | RAW_CLICKS),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 1, "retry_delay": timedelta(seconds=10), "on_failure_callback": [AllianceFailureNotifier()],
    },
    tags=["alliance"],
    doc_md=__doc__,
)
def alliance_transform() -> None:
    @task
    def prepare() -> str:
        from alliance import run

        run_key = run.new_run_id()
        run.prepare(dag_config(), run_key)
        return run_key

    @task
    def dbt_build(run_key: str) -> list[str]:
        from alliance import run

        return run.build(dag_config(), run_key, as_of=dag_as_of())

    @task(retries=0)  # a failed gate is a data problem: notify at once, retrying cannot fix it
    def quality_gate(run_key: str, dbt_failures: list[str]) -> str:
        from alliance import run

        run.check(run_key, dbt_failures, config=dag_config())
        return run_key

    @task(outlets=PUBLISHED)
    def publish(run_key: str) -> str:
        from alliance import run

        run.publish(run_key, config=dag_config())
        return run_key

    @task
    def alerts(run_key: str) -> int:
        from alliance import run

        return run.alert(dag_config(), run_key, as_of=dag_as_of())

    @task(outlets=[STATEMENTS])
    def statements(run_key: str) -> int:
        from alliance import run

        result = run.issue(dag_config(), run_key)
        if not result.written:
            raise AirflowSkipException(f"no statement new or changed ({result.unchanged} unchanged)")
        return len(result.first) + len(result.revised)

    run_key = prepare()
    published = publish(quality_gate(run_key, dbt_build(run_key)))
    alerts(published)
    statements(published)


alliance_transform()
