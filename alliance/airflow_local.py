"""A local Airflow for the demo and tests: home under .alliance/airflow, metadata in the warehouse server.

The metadata database is `airflow` on the same PostgreSQL server as the warehouse (never
SQLite), so `airflow dags test` exercises the same code paths as a deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import psycopg

from alliance.warehouse import PROJECT_ROOT, parse_url, state_dir

AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def metadata_url(warehouse_url: str) -> str:
    configured = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if configured:
        return configured
    parts = parse_url(warehouse_url)
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    return f"postgresql+psycopg://{auth}@{parts.host}:{parts.port}/airflow"


def airflow_env(warehouse_url: str, config_path: Path) -> dict[str, str]:
    home = state_dir() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    meta = metadata_url(warehouse_url)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            "ALLIANCE_WAREHOUSE_URL": warehouse_url,
            "ALLIANCE_CONFIG": str(Path(config_path).resolve()),
            "GX_ANALYTICS_ENABLED": "false",
            "XDG_RUNTIME_DIR": env.get("XDG_RUNTIME_DIR", "/tmp"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
        }
    )
    return env


def ensure_metadata_db(env: dict[str, str]) -> None:
    """Create and migrate the Airflow metadata database once per Airflow version."""
    meta = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    parts = parse_url(meta.replace("postgresql+psycopg", "postgresql"))
    admin = psycopg.connect(
        host=parts.host, port=parts.port, user=parts.user, password=parts.password or None,
        dbname="postgres", autocommit=True,
    )
    with admin:
        if not admin.execute("select 1 from pg_database where datname = %s", (parts.dbname,)).fetchone():
            admin.execute(f'create database "{parts.dbname}"')
    stamp = Path(env["AIRFLOW_HOME"]) / f"migrated-{version('apache-airflow-core')}-{parts.port}-{parts.dbname}"
    if stamp.exists():
        return
    subprocess.run([str(AIRFLOW_BIN), "db", "migrate"], env=env, check=True, capture_output=True, text=True)
    stamp.touch()


def dags_test(dag_id: str, env: dict[str, str], log_file: Path) -> int:
    """Run one DAG through Airflow (`airflow dags test`), output to log_file; returns the exit code."""
    with log_file.open("a") as out:
        proc = subprocess.run([str(AIRFLOW_BIN), "dags", "test", dag_id], env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode
