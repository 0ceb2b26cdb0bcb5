"""Drain the webhook outbox into Airflow asset events through Airflow's public REST API.

Why an outbox: the event is committed in raw before the partner gets its 200; telling Airflow is
a second step that may fail (Airflow down, DAGs not parsed yet). Pending rows are retried with
backoff and on every start, so nothing acknowledged is ever left unannounced. Several pending
deliveries for one table become ONE asset event: the transform rebuilds from all of raw, so
collapsing loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import requests

from alliance.warehouse import connect

log = logging.getLogger("alliance.webhooks.notify")


class NotifyError(RuntimeError):
    pass


@dataclass
class AirflowClient:
    """Airflow 3 public API: a JWT from /auth/token, then POST /api/v2/assets/events."""

    base_url: str
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._token: str | None = None
        self._asset_ids: dict[str, int] = {}
        self.session = requests.Session()

    @classmethod
    def from_env(cls) -> AirflowClient | None:
        url = os.environ.get("ALLIANCE_AIRFLOW_API_URL", "").strip()
        if not url:
            return None
        return cls(url, os.environ.get("ALLIANCE_AIRFLOW_USERNAME") or None,
                   os.environ.get("ALLIANCE_AIRFLOW_PASSWORD") or None)

    def _login(self) -> str:
        if self.username:  # a deployment with users: credentials for a role that may create asset events
            resp = self.session.post(f"{self.base_url}/auth/token", timeout=self.timeout,
                                     json={"username": self.username, "password": self.password or ""})
        else:  # local SimpleAuthManager with simple_auth_manager_all_admins
            resp = self.session.get(f"{self.base_url}/auth/token", timeout=self.timeout)
        if resp.status_code not in (200, 201):
            raise NotifyError(f"Airflow login failed: HTTP {resp.status_code}")
        return resp.json()["access_token"]

    def _call(self, method: str, path: str, **kwargs: object) -> requests.Response:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            resp = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout,
                                        headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code == 401 and attempt == 1:
                self._token = None  # expired token: log in again once
                continue
            return resp
        raise AssertionError("unreachable")

    def asset_id(self, uri: str) -> int:
        if uri not in self._asset_ids:
            resp = self._call("GET", "/api/v2/assets", params={"uri_pattern": uri, "limit": 100})
            if resp.status_code != 200:
                raise NotifyError(f"asset lookup failed: HTTP {resp.status_code}")
            matches = [a["id"] for a in resp.json().get("assets", []) if a.get("uri") == uri]
            if not matches:
                raise NotifyError(f"Airflow does not know asset {uri} yet (DAGs not parsed?)")
            self._asset_ids[uri] = matches[0]
        return self._asset_ids[uri]

    def asset_event(self, uri: str, extra: dict) -> None:
        resp = self._call("POST", "/api/v2/assets/events", json={"asset_id": self.asset_id(uri), "extra": extra})
        if resp.status_code not in (200, 201):
            raise NotifyError(f"asset event for {uri} failed: HTTP {resp.status_code} {resp.text[:200]}")


def drain_outbox(warehouse_url: str, client: AirflowClient) -> int:
    """Announce every pending outbox row; returns how many rows were announced. Raises on failure."""
    announced = 0
    with connect(warehouse_url) as conn:
        pending = conn.execute(
            "select asset_uri, array_agg(outbox_id order by outbox_id) from raw.webhook_outbox "
            "where notified_at is null group by asset_uri order by min(outbox_id)"
        ).fetchall()
        conn.commit()
        for uri, ids in pending:
            try:
                client.asset_event(uri, {"source": "alliance.webhooks", "deliveries": len(ids)})
            except (NotifyError, requests.RequestException) as exc:
                conn.execute(
                    "update raw.webhook_outbox set attempts = attempts + 1, last_error = %s where outbox_id = any(%s)",
                    (str(exc)[:500], ids),
                )
                conn.commit()
                raise NotifyError(str(exc)) from exc
            conn.execute(
                "update raw.webhook_outbox set notified_at = now(), attempts = attempts + 1, last_error = null "
                "where outbox_id = any(%s)",
                (ids,),
            )
            conn.commit()
            announced += len(ids)
    return announced


class OutboxNotifier:
    """A background thread: drains on wake-up (after each landed event), on start and every `poll` seconds."""

    def __init__(self, warehouse_url: str, client: AirflowClient | None, *, poll: float = 30.0,
                 max_backoff: float = 60.0) -> None:
        self.url = warehouse_url
        self.client = client
        self.poll = poll
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-outbox", daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.client is None:
            log.warning("ALLIANCE_AIRFLOW_API_URL not set: landed webhooks wait in raw.webhook_outbox "
                        "and reach analytics with the next scheduled run")
            return
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                count = drain_outbox(self.url, self.client)
                if count:
                    log.info("announced %d webhook deliveries to Airflow", count)
                delay = 1.0
                self._wake.wait(self.poll)
            except Exception as exc:  # noqa: BLE001 - keep retrying; rows stay pending in the outbox
                log.warning("Airflow notification failed, retrying in %.0fs: %s", delay, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)
