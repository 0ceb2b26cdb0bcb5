"""docker-compose.yml is a valid Compose file whose every command is one this suite runs for real.

Docker does not run here, so instead: the file validates against the Compose Specification schema
(vendored from a PyPI wheel, tests/data/README.md), and each service's command is traced to the test
that executes it (the Airflow components in tests/test_airflow_live.py, the CLI servers below).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from devstack.airflow_local import COMPONENTS
from devstack.freshness import free_port
from devstack.sandbox.env import load_sandbox_env
from devstack.sandbox.server import SHOPIFY_API_VERSION

ROOT = Path(__file__).parents[1]
ALLIANCE = str(Path(sys.executable).with_name("alliance"))
OFFICIAL_IMAGES = {"warehouse": "postgres:", "redis": "redis:"}

# command (without options) -> where the suite runs it
SUITE_COMMANDS = {
    ("airflow", "db", "migrate"): "devstack.airflow_local.ensure_metadata_db (every Airflow test)",
    **{("airflow", c): "tests/test_airflow_live.py via devstack.freshness.live_stack" for c in COMPONENTS},
    ("airflow", "celery", "worker"): "tests/test_celery_live.py (two of them, devstack.airflow_local.CELERY_WORKERS)",
    ("alliance", "webhooks"): "test_cli_servers_start_and_answer",
    ("alliance", "sandbox"): "test_cli_servers_start_and_answer",
    ("alliance", "warehouse", "migrate"): "test_warehouse_migrate_applies_roles_then_components_log_in",
}
REFUSE = ROOT / "deploy" / "refuse-placeholders.sh"
ROLE_PASSWORDS = ("ALLIANCE_OWNER_PASSWORD", "ALLIANCE_LOADER_PASSWORD", "ALLIANCE_WEBHOOK_RECEIVER_PASSWORD",
                  "ALLIANCE_TRANSFORMER_PASSWORD", "ALLIANCE_AIRFLOW_DB_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_spec(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose_spec.json").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft201909Validator(schema).iter_errors(compose)]
    assert errors == []
    broken = dict(compose, services={"x": {"image": "a", "healthcheck": {"test": 1, "bogus": 2}}})
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken)), "the schema does reject bad files"


def test_every_command_is_one_the_suite_runs(compose):
    assert COMPONENTS == ("api-server", "scheduler", "dag-processor", "triggerer")  # live_stack's default
    for name, service in compose["services"].items():
        if name in OFFICIAL_IMAGES:
            assert service["image"].startswith(OFFICIAL_IMAGES[name])
            assert service.get("command", ["postgres"]) == ["postgres"], "the image's own server, nothing else"
            continue
        words = [w for w in service["command"] if not w.startswith("-")]
        key = next((k for k in SUITE_COMMANDS if tuple(words[: len(k)]) == k), None)
        assert key is not None, f"{name}: {service['command']} is not a command the test suite runs"
        assert service.get("build") == "." and service["image"] == "alliance:latest"


def test_healthchecks_volumes_profiles_and_secrets(compose):
    services = compose["services"]
    for name, service in services.items():
        if name not in ("airflow-init", "warehouse-migrate"):
            assert "healthcheck" in service, name
    assert services["sandbox"]["profiles"] == ["demo"]
    assert all("profiles" not in s for n, s in services.items() if n != "sandbox")
    assert {"warehouse-data", "redis-data"} <= set(compose["volumes"])
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for var in ("POSTGRES_PASSWORD", *ROLE_PASSWORDS, "AIRFLOW_JWT_SECRET", "AIRFLOW_WEBHOOKS_PASSWORD"):
        assert f"${{{var}:?" in text and f"{var}=" in example
    assert "ALLIANCE_PII_SALT=" in example and "ALLIANCE_PII_SALT" not in text.replace(
        "ALLIANCE_REQUIRED_SECRETS: ALLIANCE_PII_SALT", ""), "the salt comes from secrets/alliance.env only"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert "secrets/" in (ROOT / ".gitignore").read_text().split()
    assert "secrets/" in (ROOT / ".dockerignore").read_text().split(), "secrets are never copied into the image"


def test_each_service_gets_only_its_own_logins(compose):
    """Least privilege in compose: the superuser's password stays in the warehouse container; the receiver knows
    its own two logins and an Airflow user that may only create asset events; the tasks log in as their roles."""
    services = compose["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        if name != "warehouse":
            assert "POSTGRES_PASSWORD" not in json.dumps(service), name
        urls = {k: v for k, v in env.items() if k.endswith(("_URL", "_CONN", "_BACKEND")) and "://" in str(v)}
        for key, url in urls.items():
            assert "postgres:" not in url and "change-me" not in url, f"{name}.{key} logs in as the superuser"
    receiver = services["webhooks"]["environment"]
    assert {k for k in receiver if k.endswith("_URL") and "postgresql" in receiver[k]} == {
        "ALLIANCE_WEBHOOK_RECEIVER_URL", "ALLIANCE_LOADER_URL"}
    assert receiver["ALLIANCE_AIRFLOW_USERNAME"] == "webhooks"
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__CORE__AUTH_MANAGER"] == "alliance.airflow_auth.AssetEventsAuthManager"
    assert scheduler["ALLIANCE_AIRFLOW_EVENT_USERS"] == "webhooks"
    assert "webhooks:viewer" in scheduler["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert scheduler["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert "alliance_airflow:" in scheduler["AIRFLOW__CELERY__RESULT_BACKEND"], "results in the metadata DB"
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker"]
    assert services["redis"]["image"].startswith("redis:")
    assert "ALLIANCE_WAREHOUSE_URL" in services["warehouse-migrate"]["environment"]
    assert all("ALLIANCE_WAREHOUSE_URL" not in (s.get("environment") or {})
               for n, s in services.items() if n != "warehouse-migrate"), "only the migration uses the owner"
    init = [v for v in services["warehouse"]["volumes"] if "initdb.d" in v]
    assert any("postgres-roles.sh" in v for v in init)
    roles_script = (ROOT / "deploy" / "postgres-roles.sh").read_text()
    for role in ("alliance_owner", "alliance_loader", "alliance_webhook_receiver", "alliance_transformer",
                 "alliance_airflow"):
        assert f"create role {role} login password" in roles_script or f"create role {role} login createrole" \
            in roles_script, role
    assert "--auth-host=scram-sha-256" in services["warehouse"]["environment"]["POSTGRES_INITDB_ARGS"]


def _refuse(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REFUSE), "echo", "started"], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)


def test_every_service_refuses_placeholder_secrets_at_start(compose):
    for name, service in compose["services"].items():
        if name == "redis":  # holds no secret (the broker listens on the compose network only)
            continue
        entry = service.get("entrypoint") or []
        assert entry and entry[0].endswith("refuse-placeholders.sh"), f"{name} starts through the placeholder check"
    example = {k: v for k, v in (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                                 if line and not line.startswith("#"))}
    refused = _refuse(example)
    assert refused.returncode == 78 and "started" not in refused.stdout
    for name in ("POSTGRES_PASSWORD", "ALLIANCE_LOADER_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"):
        assert name in refused.stderr
    assert "change-me" not in refused.stderr, "names only, never values"
    url = _refuse({"ALLIANCE_LOADER_URL": "postgresql://alliance_loader:change-me@warehouse:5432/alliance"})
    assert url.returncode == 78 and "ALLIANCE_LOADER_URL" in url.stderr
    missing = _refuse({"ALLIANCE_REQUIRED_SECRETS": "ALLIANCE_PII_SALT"})
    assert missing.returncode == 78 and "ALLIANCE_PII_SALT" in missing.stderr
    real = {k: secrets.token_urlsafe(16) for k in example} | {"ALLIANCE_REQUIRED_SECRETS": "ALLIANCE_PII_SALT",
                                                              "ALLIANCE_PII_SALT": secrets.token_urlsafe(16)}
    started = _refuse(real)
    assert started.returncode == 0 and started.stdout.strip() == "started", started.stderr


def test_warehouse_migrate_applies_roles_then_components_log_in(warehouse):
    """compose's one-shot `alliance warehouse migrate` (as the owner) creates the component roles and grants; then
    a component's own login (e.g. the receiver's) works with exactly its grants."""
    from alliance.roles import enable_login, role_password, with_login

    env = {**os.environ, "ALLIANCE_WAREHOUSE_URL": warehouse}
    first = subprocess.run([ALLIANCE, "warehouse", "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "0010_component_roles" in first.stdout, first.stderr
    again = subprocess.run([ALLIANCE, "warehouse", "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout
    password = role_password("alliance_webhook_receiver")  # the run's shared password: roles are cluster-wide
    enable_login(warehouse, "alliance_webhook_receiver", password)
    import psycopg

    with psycopg.connect(with_login(warehouse, "alliance_webhook_receiver", password), autocommit=True) as conn:
        assert conn.execute("select pending from raw.webhook_inbox_health()").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from raw.webhook_inbox")


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_cli_servers_start_and_answer(warehouse):
    load_sandbox_env()
    demo = str(ROOT / "config" / "demo.yml")
    web_port, sandbox_port = free_port(), free_port()
    env = {**os.environ, "ALLIANCE_AIRFLOW_API_URL": ""}
    procs = [
        subprocess.Popen([ALLIANCE, "webhooks", "--host", "127.0.0.1", "--port", str(web_port), "--config", demo],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([ALLIANCE, "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port), "--config", demo],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
    ]
    try:
        health = _wait_http(f"http://127.0.0.1:{web_port}/healthz", procs[0])
        assert health.status_code == 200
        orders = _wait_http(f"http://127.0.0.1:{sandbox_port}/northwind/admin/api/{SHOPIFY_API_VERSION}/orders.json",
                            procs[1])
        assert orders.status_code == 401, "the sandbox answers and wants the partner's token"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=20) for proc in procs]
    assert codes[0] == 0, "the receiver stops cleanly on SIGTERM"
