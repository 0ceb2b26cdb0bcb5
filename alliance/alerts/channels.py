"""Where alert events go: log, generic webhook (JSON, HMAC-SHA256 signed), Slack incoming webhook, e-mail (SMTP).

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

from alliance.alerts.episode import FiredAlert
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
    """A destination for alert events; `send` gets the alert row (state firing or resolved), raises on failure."""

    name: str

    def send(self, alert: FiredAlert) -> None: ...


def describe(alert: FiredAlert) -> tuple[str, str]:
    """Subject and one-paragraph text for humans (Slack, e-mail); ids and numbers only, no customer data."""
    where = f"{alert.partner_id} {alert.kpi} " + (
        f"for {alert.period:%Y-%m} (projected month-end attainment)" if alert.kind == "pace" else f"on {alert.period}"
    )
    if alert.state == "resolved":
        subject = f"[alliance] resolved: {alert.rule_id} for {alert.partner_id}"
        text = f"RESOLVED {alert.rule_id} [{alert.severity}]: {where} is now {alert.resolved_value} " \
               f"(threshold {alert.threshold}); fired {alert.fired_at:%Y-%m-%d %H:%M} UTC with {alert.value}."
    else:
        subject = f"[alliance] {alert.severity} alert: {alert.rule_id} for {alert.partner_id}"
        text = f"{alert.severity.upper()} {alert.rule_id}: {where} = {alert.value}, {alert.comparison} " \
               f"threshold {alert.threshold}" + (f" (trailing average {alert.baseline})" if alert.baseline else "") \
               + f" (run {alert.run_id})."
    return subject, text


def payload(alert: FiredAlert) -> dict:
    """The webhook body: event name plus every column of the alert row."""
    return {"event": f"alert.{'resolved' if alert.state == 'resolved' else 'fired'}",
            "alert": alert.model_dump(mode="json")}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): receivers recompute it and reject stale stamps."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class LogChannel:
    """One log line per event on logger `alliance.alerts`, level from the rule's severity."""

    name = "log"
    retries = 0
    backoff_seconds = 0.0

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def send(self, alert: FiredAlert) -> None:
        level = logging.INFO if alert.state == "resolved" else _LEVELS.get(alert.severity, logging.WARNING)
        self.logger.log(level, "alert %s", describe(alert)[1])


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
    """POST the alert as JSON, signed with HMAC-SHA256 over timestamp and body; any non-2xx is a failure."""

    def send(self, alert: FiredAlert) -> None:
        url, secret = self._need(self.config.url_env), self._need(self.config.secret_env)
        body = json.dumps(payload(alert), sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                   SIGNATURE_HEADER: sign(secret, stamp, body)}
        resp = requests.post(url, data=body, headers=headers, timeout=self.config.timeout_seconds)
        resp.raise_for_status()


class SlackChannel(_EnvChannel):
    """Slack incoming webhook, through the failure notifier's sender."""

    def send(self, alert: FiredAlert) -> None:
        post_slack_text(self._need(self.config.url_env), describe(alert)[1], timeout=self.config.timeout_seconds)


class EmailChannel(_EnvChannel):
    """Plain-text e-mail through ALLIANCE_SMTP_* (the failure notifier's sender); recipients from `to_env`."""

    def send(self, alert: FiredAlert) -> None:
        self._need("ALLIANCE_SMTP_HOST")
        to = self._need(self.config.to_env or "ALLIANCE_SMTP_TO")
        subject, text = describe(alert)
        send_email_text(subject, text, dict(self.env), to=to, timeout=self.config.timeout_seconds)


def build_channel(name: str, config: ChannelConfig, env: Mapping[str, str] | None = None) -> Channel:
    """The channel object for a validated config entry."""
    if config.type == "log":
        channel = LogChannel()
        channel.name = name
        return channel
    return {"webhook": WebhookChannel, "slack": SlackChannel, "email": EmailChannel}[config.type](name, config, env)
