"""Where alert notifications go: log, generic webhook (JSON, HMAC-SHA256 signed), Slack incoming webhook, e-mail
(SMTP). Each gets one message per run (alliance/alerts/message.py), never one per alert.

Slack and e-mail go through the same senders as the Airflow failure notifier (alliance/failure_notify.py).
A channel's `send` raises on failure; alliance/alerts/deliver.py retries it with backoff and records the attempt.
Secrets and addresses are read from the environment variables the channel config names, at send time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import requests

from alliance.alerts.message import AlertMessage
from alliance.alerts.rules import ChannelConfig
from alliance.failure_notify import post_slack_text, send_email_text

LOGGER_NAME = "alliance.alerts"
SIGNATURE_HEADER = "X-Alliance-Signature"
TIMESTAMP_HEADER = "X-Alliance-Timestamp"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


class ChannelNotConfigured(RuntimeError):
    """The environment variable a channel needs is not set: the delivery is recorded as skipped, not retried."""


@runtime_checkable
class Channel(Protocol):
    """A destination for alert notifications: `send` gets the run's message for this channel (its events grouped
    by partner and rule), raises on failure."""

    name: str

    def send(self, message: AlertMessage) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): receivers recompute it and reject stale stamps."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class LogChannel:
    """One log record per message on logger `alliance.alerts`, level from its most severe firing group."""

    name = "log"
    retries = 0
    backoff_seconds = 0.0

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def send(self, message: AlertMessage) -> None:
        fired = any(e.event == "fired" for e in message.events)
        level = _LEVELS.get(message.severity, logging.WARNING) if fired else logging.INFO
        self.logger.log(level, "%s", message.text())


class _EnvChannel:
    def __init__(self, name: str, config: ChannelConfig, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.config = config
        self.retries = config.retries
        self.backoff_seconds = config.backoff_seconds
        self.env = env if env is not None else os.environ

    def _need(self, key: str | None) -> str:
        value = self.env.get(key or "")
        if not value:
            raise ChannelNotConfigured(f"environment variable {key} is not set")
        return value


class WebhookChannel(_EnvChannel):
    """POST the message as JSON, signed with HMAC-SHA256 over timestamp and body; any non-2xx is a failure."""

    def send(self, message: AlertMessage) -> None:
        url, secret = self._need(self.config.url_env), self._need(self.config.secret_env)
        body = json.dumps(message.payload(), sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                   SIGNATURE_HEADER: sign(secret, stamp, body)}
        resp = requests.post(url, data=body, headers=headers, timeout=self.config.timeout_seconds)
        resp.raise_for_status()


class SlackChannel(_EnvChannel):
    """Slack incoming webhook, through the failure notifier's sender."""

    def send(self, message: AlertMessage) -> None:
        post_slack_text(self._need(self.config.url_env), message.text(), timeout=self.config.timeout_seconds)


class EmailChannel(_EnvChannel):
    """Plain-text e-mail through ALLIANCE_SMTP_* (the failure notifier's sender); recipients from `to_env`."""

    def send(self, message: AlertMessage) -> None:
        self._need("ALLIANCE_SMTP_HOST")
        to = self._need(self.config.to_env or "ALLIANCE_SMTP_TO")
        send_email_text(message.subject(), message.text(), dict(self.env), to=to,
                        timeout=self.config.timeout_seconds)


def build_channel(name: str, config: ChannelConfig, env: Mapping[str, str] | None = None) -> Channel:
    """The channel object for a validated config entry."""
    if config.type == "log":
        channel = LogChannel()
        channel.name = name
        return channel
    return {"webhook": WebhookChannel, "slack": SlackChannel, "email": EmailChannel}[config.type](name, config, env)
