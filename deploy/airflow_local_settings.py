"""alliance's Airflow local settings: the per-partner pools cluster policy, and the task imports preloaded where
task processes are forked (ALLIANCE_PRELOAD_TASK_IMPORTS, set on the scheduler with LocalExecutor and on Celery
workers). Installed as $AIRFLOW_HOME/config/airflow_local_settings.py by devstack/airflow_local.py and the Dockerfile.
"""

from alliance.airflow_policy import preload_task_imports, task_instance_mutation_hook  # noqa: F401

preload_task_imports()
