"""A local Airflow for the demo and tests: home under .alliance/airflow, metadata in the warehouse server.

The metadata database is `airflow` on the same PostgreSQL server as the warehouse (never
SQLite), so `airflow dags test` exercises the same code paths as a deployment.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import psycopg
import psycopg.sql
import requests

from alliance.airflow_policy import PRELOAD_VARIABLE, pool_spec
from alliance.assets import table_uri
from alliance.config import load_config
from alliance.roles import URL_VARIABLES, component_url, ensure_airflow_owner
from alliance.schemas import PUBLISHED_TABLES
from alliance.warehouse import PROJECT_ROOT, parse_url, state_dir
from alliance.webhooks.notify import AirflowClient, NotifyError
from connectors.pii import PiiError, pii_salt
from devstack.celery_broker import Broker, start_broker
from devstack.ports import free_port
from devstack.sandbox.env import is_demo_config, load_sandbox_env
from devstack.sandbox.server import start_sandbox
from devstack.sandbox.world import build_world

AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def metadata_url(warehouse_url: str) -> str:
    """AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, else the database `airflow` on the warehouse server, owned by its own
    login alliance_airflow (alliance/roles.py), which can touch nothing else."""
    configured = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if configured:
        return configured
    return ensure_airflow_owner(warehouse_url).replace("postgresql://", "postgresql+psycopg://", 1)


def airflow_env(warehouse_url: str, config_path: Path) -> dict[str, str]:
    home = state_dir() / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    install_local_settings(home)
    meta = metadata_url(warehouse_url)
    env = dict(os.environ)
    if not os.environ.get("ALLIANCE_WAREHOUSE_URL", "").strip():  # the embedded warehouse: tasks log in as their roles
        for component, variable in URL_VARIABLES.items():
            env[variable] = env.get(variable) or component_url(component)
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
            admin.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(parts.dbname)))
    stamp = Path(env["AIRFLOW_HOME"]) / f"migrated-{version('apache-airflow-core')}-{parts.port}-{parts.dbname}"
    if not stamp.exists():
        subprocess.run([str(AIRFLOW_BIN), "db", "migrate"], env=env, check=True, capture_output=True, text=True)
        stamp.touch()
    _release_legacy_asset_names(parts)


LEGACY_ASSET_NAMES = ["raw.orders", "raw.clicks"] + [f"analytics.{t}" for t in PUBLISHED_TABLES]


def _release_legacy_asset_names(parts) -> None:  # noqa: ANN001 - a parsed URL
    """Earlier versions named assets `schema.table`; an active asset under such a name blocks activating the
    URI-named asset for the same table. Deactivate them (the DAG parse activates the current ones)."""
    with psycopg.connect(host=parts.host, port=parts.port, user=parts.user, password=parts.password or None,
                         dbname=parts.dbname, autocommit=True) as conn:
        if conn.execute("select to_regclass('asset_active')").fetchone()[0]:
            conn.execute("delete from asset_active where name = any(%s)", (LEGACY_ASSET_NAMES,))


def dags_test(dag_id: str, env: dict[str, str], log_file: Path) -> int:
    """Run one DAG through Airflow (`airflow dags test`), output to log_file; returns the exit code."""
    with log_file.open("a") as out:
        proc = subprocess.run([str(AIRFLOW_BIN), "dags", "test", dag_id], env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc.returncode


# --- a running Airflow: api-server, scheduler, dag-processor, triggerer ---------------------------------

LOCAL_SETTINGS = PROJECT_ROOT / "deploy" / "airflow_local_settings.py"  # the Dockerfile installs the same file
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_WORKERS = ("celery-worker-1", "celery-worker-2")  # `airflow celery worker`, two of them on one machine
EXECUTORS = ("local", "celery")
DAG_IDS = ("alliance_ingest", "alliance_transform")


def _persistent_secret(home: Path, name: str) -> str:
    """A random secret kept under AIRFLOW_HOME so every component (and a restart) signs with the same key."""
    path = home / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def install_local_settings(home: Path) -> None:
    config_dir = home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "airflow_local_settings.py").write_text(LOCAL_SETTINGS.read_text())


def server_env(base: dict[str, str], port: int) -> dict[str, str]:
    """A real local deployment: LocalExecutor, SimpleAuthManager with everyone admin (loopback only),
    and scheduler / DAG-processor intervals tuned for seconds-level freshness on a laptop."""
    home = Path(base["AIRFLOW_HOME"])
    install_local_settings(home)
    env = dict(base)
    api = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _persistent_secret(home, "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": _persistent_secret(home, "api_secret_key"),
        # freshness: the scheduler loop wakes often; the DAG processor does not re-parse needlessly
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "ALLIANCE_AIRFLOW_API_URL": api,
    })
    return env


def celery_env(base: dict[str, str], broker: Broker) -> dict[str, str]:
    """CeleryExecutor on top of `server_env`: Redis broker, result backend on the metadata database, this stack's
    own queue (so stacks sharing one Redis never run each other's tasks), and worker records that name the worker
    (`result_extended`: celery_taskmeta.worker, which tests read to see both workers ran tasks)."""
    env = dict(base)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"),
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": '{"result_extended": true}',
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": broker.queue_name,
    })
    return env


class LocalAirflow:
    """The four Airflow components as child processes (each in its own process group), logs under AIRFLOW_HOME."""

    def __init__(self, env: dict[str, str], port: int, components: tuple[str, ...] = COMPONENTS) -> None:
        self.env = env
        self.port = port
        self.components = components
        self.url = f"http://127.0.0.1:{port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, int] = {}  # each component's log offset at this start
        self.log_dir = Path(env["AIRFLOW_HOME"]) / "logs" / "components"

    def _command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of one component."""
        if name in CELERY_WORKERS:  # each worker: its own Celery name, pid file and log-server port
            home = Path(self.env["AIRFLOW_HOME"])
            args = [str(AIRFLOW_BIN), "celery", "worker", "--celery-hostname", f"{name}@%h",
                    "--queues", self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"], "--pid", str(home / f"{name}.pid")]
            # INFO: the worker logs `<name>@<host> ready.` once it consumes (workers_ready reads it)
            return args, {**self.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                          "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO", PRELOAD_VARIABLE: "1"}
        args = [str(AIRFLOW_BIN), name]
        if name == "api-server":
            args += ["--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"]
        if name == "scheduler" and self.env.get("AIRFLOW__CORE__EXECUTOR") == "LocalExecutor":
            return args, {**self.env, PRELOAD_VARIABLE: "1"}  # its LocalExecutor forks the task processes
        return args, self.env

    def start(self) -> LocalAirflow:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.components:
            args, env = self._command(name)
            out = (self.log_dir / f"{name}.log").open("a")
            self.started_at[name] = out.tell()
            self.procs[name] = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        return self

    def workers_ready(self) -> bool:
        """Whether every Celery worker of this start has logged `<name>@<host> ready.` (consuming its queue)."""
        for name in self.components:
            if name in CELERY_WORKERS:
                with (self.log_dir / f"{name}.log").open() as log:
                    log.seek(self.started_at[name])
                    if not any(f"{name}@" in line and " ready." in line for line in log):
                        return False
        return True

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = "\n".join((self.log_dir / f"{name}.log").read_text().splitlines()[-20:])
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM each component's process group (its task runners included), SIGKILL what lingers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group may hold children even after the leader ended
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(timeout=5)

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- REST helpers (Airflow 3 public API) ---

    def api(self):  # noqa: ANN201 - an AirflowClient
        # a local api-server with one worker, beside a scheduler running dbt on a shared 2-core machine, can take
        # longer than the notifier's 10 s to answer (seen at load 9): the dev stack's own calls wait a minute
        return AirflowClient(self.url, timeout=60.0)

    def wait_ready(self, timeout: float = 240) -> None:
        """Until the API answers, both DAGs are parsed into the metadata DB and every Celery worker consumes."""
        deadline = time.monotonic() + timeout
        client = self.api()
        while True:
            self.check_alive()
            try:
                if (all(client._call("GET", f"/api/v2/dags/{d}").status_code == 200 for d in DAG_IDS)
                        and self.workers_ready()):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow not ready after {timeout:.0f}s; logs in {self.log_dir}")
            time.sleep(1)

    def wait_asset(self, uri: str, timeout: float = 180) -> None:
        """Until the DAG processor has (re)parsed the DAGs with this warehouse's asset URIs."""
        deadline = time.monotonic() + timeout
        client = self.api()
        while True:
            self.check_alive()
            try:
                client.asset_id(uri)
                return
            except NotifyError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"asset {uri} not registered after {timeout:.0f}s") from None
                time.sleep(1)

    def quiesce(self) -> None:
        """Pause the DAGs and fail unfinished runs, so a later scheduler (another env) never adopts them."""
        client = self.api()
        for dag_id in DAG_IDS:
            client._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})
            runs = client._call("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                params=[("state", "running"), ("state", "queued")]).json().get("dag_runs", [])
            for run in runs:
                client._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})

    def setup(self, config_path: Path, unpause: tuple[str, ...] = DAG_IDS) -> None:
        """Pools per partner, a clean asset queue for the transform, then unpause the DAGs."""
        client = self.api()
        for pool in pool_spec(load_config(config_path, require_secrets=False)):
            resp = client._call("POST", "/api/v2/pools", json=pool)
            if resp.status_code == 409:
                resp = client._call("PATCH", f"/api/v2/pools/{pool['name']}", json=pool)
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"pool {pool['name']}: HTTP {resp.status_code} {resp.text[:200]}")
        client._call("DELETE", "/api/v2/dags/alliance_transform/assets/queuedEvents")
        for dag_id in unpause:
            resp = client._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            if resp.status_code != 200:
                raise RuntimeError(f"unpause {dag_id}: HTTP {resp.status_code} {resp.text[:200]}")


def serve(warehouse_url: str, config_path: Path, *, port: int = 8080, executor: str = "local",
          console=None) -> int:  # noqa: ANN001
    """`make airflow`: a real Airflow on the embedded warehouse until Ctrl-C, plus the sandbox partner APIs and their
    documented credentials when `config_path` is a demo config (else ALLIANCE_PII_SALT must be set: exit 2).
    `executor="celery"` (`make airflow EXECUTOR=celery`): CeleryExecutor with a Redis broker (`start_broker`) and
    two `airflow celery worker` processes."""
    say = console.print if console else print
    if executor not in EXECUTORS:
        say(f"unknown executor `{executor}`: choose one of {', '.join(EXECUTORS)}")
        return 2
    sandbox = None
    if is_demo_config(config_path):  # the demo alliance: the sandbox APIs and their documented credentials
        load_sandbox_env()
        sandbox = start_sandbox(build_world(load_config(config_path, require_secrets=False), seed=42))
        os.environ["ALLIANCE_SANDBOX_URL"] = sandbox.url
    else:  # a real alliance: its own salt, never the demo's
        try:
            pii_salt()
        except PiiError as exc:
            say(f"[red]{exc}[/]" if console else str(exc))
            return 2
    env = server_env(airflow_env(warehouse_url, config_path), port)
    components, broker = COMPONENTS, None
    if executor == "celery":
        broker = start_broker(Path(env["AIRFLOW_HOME"]) / "redis")
        env, components = celery_env(env, broker), COMPONENTS + CELERY_WORKERS
        say(f"CeleryExecutor: broker {broker.url} ({'started here' if broker.private else 'already running'}), "
            f"queue {broker.queue_name}, workers {', '.join(CELERY_WORKERS)}")
    ensure_metadata_db(env)
    airflow = LocalAirflow(env, port, components).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        say(f"starting Airflow (logs: {airflow.log_dir}) ...")
        airflow.wait_ready()
        airflow.wait_asset(table_uri("raw", "orders", warehouse_url))
        airflow.setup(config_path)
        say(f"Airflow UI: {airflow.url}  (login: none needed, every local user is admin: "
            "SimpleAuthManager all_admins, loopback only)")
        if sandbox is not None:
            say(f"sandbox partner APIs: {sandbox.url}")
        say("DAGs alliance_ingest (hourly) and alliance_transform (on raw assets) are unpaused.")
        say(f"webhooks: in another shell `ALLIANCE_AIRFLOW_API_URL={airflow.url} alliance webhooks "
            f"--config {config_path}`.  Ctrl-C stops everything.")
        while not done.wait(2):
            airflow.check_alive()
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        say(f"[red]{exc}[/]" if console else str(exc))
        return 1
    finally:
        airflow.stop()
        if broker is not None:
            broker.stop()
        if sandbox is not None:
            sandbox.stop()
    return 0
