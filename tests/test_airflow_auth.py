"""The webhook receiver's Airflow login may create asset events and nothing else (alliance/airflow_auth.py).

Airflow's own auth manager class decides, as the api-server asks it for each route (POST /api/v2/assets/events
asks `is_authorized_asset(method="POST")`); here it is asked directly, for the receiver and for an admin.
"""

from __future__ import annotations

import pytest
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

from alliance.airflow_auth import EVENT_USERS_VARIABLE, AssetEventsAuthManager


@pytest.fixture()
def manager(monkeypatch) -> AssetEventsAuthManager:
    monkeypatch.setenv(EVENT_USERS_VARIABLE, "webhooks")
    return AssetEventsAuthManager()


RECEIVER = SimpleAuthManagerUser(username="webhooks", role="viewer")
ADMIN = SimpleAuthManagerUser(username="admin", role="admin")
OPERATOR = SimpleAuthManagerUser(username="ops", role="op")


def test_the_receiver_may_look_up_assets_and_create_asset_events(manager):
    assert manager.is_authorized_asset(method="GET", user=RECEIVER)
    assert manager.is_authorized_asset(method="POST", user=RECEIVER)
    assert not manager.is_authorized_asset(method="DELETE", user=RECEIVER)
    assert not manager.is_authorized_asset(method="PUT", user=RECEIVER)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_the_receiver_is_refused_everything_else(manager, method):
    user = RECEIVER
    assert not manager.is_authorized_connection(method=method, user=user)
    assert not manager.is_authorized_variable(method=method, user=user)
    assert not manager.is_authorized_pool(method=method, user=user)
    assert not manager.is_authorized_configuration(method=method, user=user)
    assert not manager.is_authorized_dag(method=method, user=user)
    assert not manager.is_authorized_dag(method=method, user=user, access_entity=DagAccessEntity.RUN)
    assert manager.is_authorized_asset_alias(method=method, user=user) == (method == "GET")
    assert not manager.is_authorized_view(access_view=AccessView.PLUGINS, user=user)


def test_other_users_keep_simple_auth_managers_rules(manager):
    assert manager.is_authorized_connection(method="PUT", user=ADMIN)
    assert manager.is_authorized_asset(method="POST", user=OPERATOR)
    assert manager.is_authorized_dag(method="GET", user=SimpleAuthManagerUser(username="peter", role="viewer"))
    assert not manager.is_authorized_connection(method="PUT", user=SimpleAuthManagerUser(username="v", role="viewer"))


def test_a_real_api_server_lets_the_receiver_create_asset_events_only(warehouse, fresh_database_factory, tmp_path,
                                                                      monkeypatch):
    """Airflow's api-server with this auth manager (as docker-compose.yml configures it), logins with passwords:
    the receiver's token reaches the asset routes and is refused (403) on connections, variables, pools, DAGs and
    runs; the admin's is not."""
    import json
    import time
    from pathlib import Path

    import requests

    from alliance.webhooks.notify import AirflowClient
    from devstack.airflow_local import LocalAirflow, airflow_env, ensure_metadata_db, server_env
    from devstack.ports import free_port

    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                       fresh_database_factory("airflow").replace("postgresql://", "postgresql+psycopg://"))
    passwords = {"admin": "admin-" + tmp_path.name, "webhooks": "hooks-" + tmp_path.name}
    (tmp_path / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    env = server_env(airflow_env(warehouse, Path(__file__).parents[1] / "config" / "demo.yml"), port)
    env.update({"AIRFLOW__CORE__AUTH_MANAGER": "alliance.airflow_auth.AssetEventsAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,webhooks:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
                EVENT_USERS_VARIABLE: "webhooks"})
    ensure_metadata_db(env)
    with LocalAirflow(env, port, ("api-server",)) as airflow:
        deadline = time.monotonic() + 120
        while True:
            airflow.check_alive()
            try:
                if requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "api-server did not answer"
            time.sleep(1)
        receiver = AirflowClient(airflow.url, "webhooks", passwords["webhooks"], timeout=60)
        admin = AirflowClient(airflow.url, "admin", passwords["admin"], timeout=60)
        assert receiver._call("GET", "/api/v2/assets").status_code == 200
        event = receiver._call("POST", "/api/v2/assets/events", json={"asset_id": 424242, "extra": {}})
        assert event.status_code == 404, "authorised: only the asset is unknown"
        for method, path, body in (("GET", "/api/v2/connections", None), ("GET", "/api/v2/variables", None),
                                   ("GET", "/api/v2/pools", None), ("GET", "/api/v2/dags", None),
                                   ("POST", "/api/v2/dags/alliance_ingest/dagRuns", {"logical_date": None}),
                                   ("PATCH", "/api/v2/dags/alliance_ingest", {"is_paused": False}),
                                   ("POST", "/api/v2/variables", {"key": "k", "value": "v"}),
                                   ("GET", "/api/v2/config", None)):
            answer = receiver._call(method, path, json=body) if body else receiver._call(method, path)
            assert answer.status_code == 403, (method, path, answer.status_code)
        assert admin._call("GET", "/api/v2/connections").status_code == 200
        assert admin._call("GET", "/api/v2/pools").status_code == 200
        wrong = requests.post(f"{airflow.url}/auth/token", json={"username": "webhooks", "password": "nope"},
                              timeout=30)
        assert wrong.status_code in (401, 403)
