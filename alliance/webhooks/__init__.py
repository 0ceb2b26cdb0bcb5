"""`alliance webhooks`: receive partner webhooks into an inbox, process them into raw, announce them to Airflow."""

from __future__ import annotations

from alliance.webhooks.app import Limits
from alliance.webhooks.notify import AirflowClient, OutboxNotifier
from alliance.webhooks.processor import InboxProcessor
from alliance.webhooks.server import WebhookServer, build_server
from alliance.webhooks.sources import sign

__all__ = ["AirflowClient", "InboxProcessor", "Limits", "OutboxNotifier", "WebhookServer", "build_server", "sign"]
