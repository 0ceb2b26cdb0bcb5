"""Task imports preloaded where Airflow forks task processes: the scheduler (LocalExecutor) and Celery workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alliance.airflow_policy import PRELOAD_VARIABLE, PRELOADED_MODULES, preload_task_imports
from devstack.airflow_local import CELERY_WORKERS, COMPONENTS, LOCAL_SETTINGS, LocalAirflow

CHECK = ("import json, sys; exec(open(sys.argv[1]).read()); "
         "print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))")


def _imported_by_local_settings(env: dict[str, str]) -> list[str]:
    """Which task modules a fresh interpreter holds after running alliance's airflow_local_settings.py."""
    out = subprocess.run([sys.executable, "-c", CHECK.format(modules=PRELOADED_MODULES), str(LOCAL_SETTINGS)],
                         env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_local_settings_preload_only_when_asked() -> None:
    base = {k: v for k, v in os.environ.items() if k != PRELOAD_VARIABLE}
    assert _imported_by_local_settings(base) == []
    assert _imported_by_local_settings({**base, PRELOAD_VARIABLE: "1"}) == sorted(PRELOADED_MODULES)


def test_preload_is_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv(PRELOAD_VARIABLE, raising=False)
    assert preload_task_imports() == []


def test_only_the_processes_that_fork_tasks_preload(tmp_path: Path) -> None:
    cases = (("LocalExecutor", {"scheduler", *CELERY_WORKERS}), ("CeleryExecutor", set(CELERY_WORKERS)))
    for executor, forking in cases:
        env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": executor,
               "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default"}
        airflow = LocalAirflow(env, 8080, COMPONENTS + CELERY_WORKERS)
        preloading = {name for name in airflow.components if PRELOAD_VARIABLE in airflow._command(name)[1]}
        assert preloading == forking, executor
