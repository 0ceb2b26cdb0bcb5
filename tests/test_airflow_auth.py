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
    assert not manager.is_authorized_asset_alias(method=method, user=user)
    assert not manager.is_authorized_view(access_view=AccessView.PLUGINS, user=user)


def test_other_users_keep_simple_auth_managers_rules(manager):
    assert manager.is_authorized_connection(method="PUT", user=ADMIN)
    assert manager.is_authorized_asset(method="POST", user=OPERATOR)
    assert manager.is_authorized_dag(method="GET", user=SimpleAuthManagerUser(username="peter", role="viewer"))
    assert not manager.is_authorized_connection(method="PUT", user=SimpleAuthManagerUser(username="v", role="viewer"))
