"""Failure notifications: always logged; to Slack (incoming webhook) and e-mail (SMTP) when configured.

Why plain functions: the Airflow notifier (alliance/airflow_support.py) and anything else that fails
loudly share one formatter and one set of channels. Messages carry ids and the error's first lines,
never payloads, tokens or e-mails of customers.

Environment:
  ALLIANCE_SLACK_WEBHOOK_URL   Slack incoming-webhook URL
  ALLIANCE_SMTP_HOST, ALLIANCE_SMTP_PORT (25), ALLIANCE_SMTP_FROM, ALLIANCE_SMTP_TO (comma separated),
  ALLIANCE_SMTP_USER / ALLIANCE_SMTP_PASSWORD (optional), ALLIANCE_SMTP_STARTTLS (true/false)
"""

from __future__ import annotations

import logging
import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

import requests

log = logging.getLogger("alliance.failures")


@dataclass(frozen=True)
class Failure:
    dag_id: str
    task_id: str
    run_id: str
    error: str
    try_number: int | None = None
    log_url: str | None = None

    @property
    def kind(self) -> str:
        return "quality gate failed" if "quality gate failed" in self.error else "task failed"

    def subject(self) -> str:
        return f"[alliance] {self.kind}: {self.dag_id}.{self.task_id}"

    def text(self) -> str:
        lines = [f"{self.kind}: {self.dag_id}.{self.task_id} (run {self.run_id}"
                 + (f", try {self.try_number})" if self.try_number else ")")]
        lines += self.error.strip().splitlines()[:12]
        if self.log_url:
            lines.append(f"log: {self.log_url}")
        return "\n".join(lines)


def post_slack_text(url: str, text: str, timeout: float = 10.0) -> None:
    """One Slack incoming-webhook message; raises requests.RequestException on failure (callers retry or log)."""
    resp = requests.post(url, json={"text": text}, timeout=timeout)
    resp.raise_for_status()


def send_slack(url: str, failure: Failure, timeout: float = 10.0) -> None:
    post_slack_text(url, failure.text(), timeout)


def send_email_text(subject: str, text: str, env: dict[str, str], to: str | None = None, timeout: float = 15) -> None:
    """One plain-text e-mail through the ALLIANCE_SMTP_* server; `to` overrides ALLIANCE_SMTP_TO."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = env.get("ALLIANCE_SMTP_FROM", "alliance@localhost")
    msg["To"] = to or env["ALLIANCE_SMTP_TO"]
    msg.set_content(text)
    with smtplib.SMTP(env["ALLIANCE_SMTP_HOST"], int(env.get("ALLIANCE_SMTP_PORT", "25")), timeout=timeout) as smtp:
        if env.get("ALLIANCE_SMTP_STARTTLS", "").lower() == "true":
            smtp.starttls()
        if env.get("ALLIANCE_SMTP_USER"):
            smtp.login(env["ALLIANCE_SMTP_USER"], env.get("ALLIANCE_SMTP_PASSWORD", ""))
        smtp.send_message(msg)


def send_email(failure: Failure, env: dict[str, str] | None = None) -> None:
    send_email_text(failure.subject(), failure.text(), env if env is not None else dict(os.environ))


def notify_failure(failure: Failure, env: dict[str, str] | None = None) -> list[str]:
    """Log always, then every configured channel; a broken channel is logged, never raised. Returns channels used."""
    env = env if env is not None else dict(os.environ)
    log.error("%s", failure.text())
    used = ["log"]
    if env.get("ALLIANCE_SLACK_WEBHOOK_URL"):
        try:
            send_slack(env["ALLIANCE_SLACK_WEBHOOK_URL"], failure)
            used.append("slack")
        except requests.RequestException as exc:
            log.warning("Slack notification failed: %s", type(exc).__name__)
    if env.get("ALLIANCE_SMTP_HOST") and env.get("ALLIANCE_SMTP_TO"):
        try:
            send_email(failure, env)
            used.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("e-mail notification failed: %s", type(exc).__name__)
    return used
