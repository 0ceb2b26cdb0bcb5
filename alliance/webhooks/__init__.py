"""`alliance webhooks`: receive partner webhooks, land them in raw, announce them to Airflow."""

from __future__ import annotations

from alliance.config import AllianceConfig
from alliance.webhooks.notify import AirflowClient, OutboxNotifier
from alliance.webhooks.receiver import Receiver, WebhookServer, sign


def build_server(config: AllianceConfig, warehouse_url: str, host: str = "127.0.0.1", port: int = 0,
                 client: AirflowClient | None = None, poll: float = 30.0) -> WebhookServer:
    """Receiver + outbox notifier wired together (the notifier wakes after every landed event)."""
    notifier = OutboxNotifier(warehouse_url, client, poll=poll)
    receiver = Receiver(config, warehouse_url, on_landed=notifier.wake)
    return WebhookServer(receiver, host, port, notifier)


__all__ = ["AirflowClient", "OutboxNotifier", "Receiver", "WebhookServer", "build_server", "sign"]
