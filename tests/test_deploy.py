"""docker-compose.yml is a valid Compose file whose every command is one this suite runs for real.

Docker does not run here, so instead: the file validates against the Compose Specification schema
(vendored from a PyPI wheel, tests/data/README.md), and each service's command is traced to the test
that executes it (the Airflow components in tests/test_airflow_live.py, the CLI servers below).
"""

from __future__ import annotations

import json
import os
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
    ("alliance", "webhooks"): "test_cli_servers_start_and_answer",
    ("alliance", "sandbox"): "test_cli_servers_start_and_answer",
}


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
            assert service["image"].startswith(OFFICIAL_IMAGES[name]) and "command" not in service
            continue
        words = [w for w in service["command"] if not w.startswith("-")]
        key = next((k for k in SUITE_COMMANDS if tuple(words[: len(k)]) == k), None)
        assert key is not None, f"{name}: {service['command']} is not a command the test suite runs"
        assert service.get("build") == "." and service["image"] == "alliance:latest"


def test_healthchecks_volumes_profiles_and_secrets(compose):
    services = compose["services"]
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, name
    assert services["sandbox"]["profiles"] == ["demo"]
    assert all("profiles" not in s for n, s in services.items() if n != "sandbox")
    assert {"warehouse-data", "redis-data"} <= set(compose["volumes"])
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for var in ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"):
        assert f"${{{var}:?" in text and f"{var}=" in example
    for secret_var in ("ALLIANCE_PII_SALT", "ALLIANCE_WAREHOUSE_URL", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert f"{secret_var}=" in example and secret_var not in text, "secrets come from .env, not the file"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


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
