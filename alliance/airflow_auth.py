"""Airflow auth manager: SimpleAuthManager plus logins that may only create asset events (the webhook receiver's).

Why: the receiver is internet-facing and tells Airflow about landed data with `POST /api/v2/assets/events` (after
looking the asset up by URI). SimpleAuthManager's smallest role allowed to create asset events, `op`, may also edit
connections (the partners' credentials), pools and variables; a stolen receiver login must not. The users named in
ALLIANCE_AIRFLOW_EVENT_USERS (comma-separated; each also listed in `[core] simple_auth_manager_users`) may read
assets (and asset aliases: the asset list asks for both) and create asset events, and are refused everything else.
Enable with `AIRFLOW__CORE__AUTH_MANAGER=alliance.airflow_auth.AssetEventsAuthManager` (docker-compose.yml does).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

EVENT_USERS_VARIABLE = "ALLIANCE_AIRFLOW_EVENT_USERS"
ASSET_METHODS = ("GET", "POST")  # look the asset up, create its event


def event_users() -> set[str]:
    return {name.strip() for name in os.environ.get(EVENT_USERS_VARIABLE, "").split(",") if name.strip()}


class AssetEventsAuthManager(SimpleAuthManager):
    """SimpleAuthManager where the ALLIANCE_AIRFLOW_EVENT_USERS may read assets and create asset events only."""

    @staticmethod
    def events_only(user: Any) -> bool:
        return getattr(user, "username", None) in event_users()

    def is_authorized_asset(self, *, method: Any, user: Any, details: Any = None) -> bool:
        if self.events_only(user):
            return method in ASSET_METHODS
        return super().is_authorized_asset(method=method, user=user, details=details)

    def is_authorized_asset_alias(self, *, method: Any, user: Any, details: Any = None) -> bool:
        if self.events_only(user):  # GET /api/v2/assets (the look-up by URI) also asks for reading aliases
            return method == "GET"
        return super().is_authorized_asset_alias(method=method, user=user, details=details)


def _refused_to_event_users(name: str):  # noqa: ANN202 - an auth manager method
    inherited = getattr(SimpleAuthManager, name)

    def check(self: AssetEventsAuthManager, **kwargs: Any) -> bool:
        if self.events_only(kwargs.get("user")):
            return False
        return inherited(self, **kwargs)

    check.__name__ = name
    check.__doc__ = f"{name} of SimpleAuthManager, refused to the asset-events-only users."
    return check


for _name in ("is_authorized_configuration", "is_authorized_connection", "is_authorized_dag",
              "is_authorized_pool", "is_authorized_team", "is_authorized_variable",
              "is_authorized_view", "is_authorized_custom_view", "is_authorized_hitl_task"):
    setattr(AssetEventsAuthManager, _name, _refused_to_event_users(_name))
