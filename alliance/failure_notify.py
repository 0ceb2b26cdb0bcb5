"""Failure notifications: always logged; to Slack (incoming webhook) and e-mail (SMTP) when configured.

Why plain functions: the Airflow notifier (alliance/airflow_support.py) and anything else that fails
loudly share one formatter and one set of channels. Messages carry ids and the error's first lines,
never payloads, tokens or e-mails of customers.

Environment:
  ALLIANCE_SLACK_WEBHOOK_URL   Slack incoming-webhook URL
  ALLIANCE_SMTP_HOST, ALLIANCE_SMTP_PORT (25), ALLIANCE_SMTP_FROM, ALLIANCE_SMTP_TO (comma separated),
  ALLIANCE_SMTP_USER / ALLIANCE_SMTP_PASSWORD (optional), ALLIANCE_SMTP_STARTTLS (true/false),
  ALLIANCE_SMTP_CA_FILE (PEM bundle of a private CA that signed the server's certificate; default: the system's),
  ALLIANCE_SMTP_PLAINTEXT_LOOPBACK (true: log in without STARTTLS, only to a relay on 127.0.0.1/::1/localhost)

Why the checks: with STARTTLS the server's certificate and host name are verified before anything else is said,
and a password is sent only inside a verified TLS session. `smtplib.SMTP.starttls()` without a context does not
verify the certificate, so anybody on the path could pose as the server and collect the password.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import smtplib
import ssl
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


SMTP_CA_FILE_ENV = "ALLIANCE_SMTP_CA_FILE"
SMTP_PLAINTEXT_LOOPBACK_ENV = "ALLIANCE_SMTP_PLAINTEXT_LOOPBACK"


class SmtpSecurityError(smtplib.SMTPException):
    """The mail server could not be verified, or the password would travel in clear: nothing was sent. Final: a
    retry meets the same certificate. The message names the server (host:port) and the setting, never a secret."""


def _flag(env: dict[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_login_policy(host: str, port: int, env: dict[str, str]) -> None:
    """Refuse, before connecting, to send a password outside TLS, unless opted out for a relay on this machine."""
    if not env.get("ALLIANCE_SMTP_USER") or _flag(env, "ALLIANCE_SMTP_STARTTLS"):
        return
    if _flag(env, SMTP_PLAINTEXT_LOOPBACK_ENV) and _is_loopback(host):
        return
    raise SmtpSecurityError(
        f"SMTP server {host}:{port}: refusing to send the password without STARTTLS; set ALLIANCE_SMTP_STARTTLS=true"
        f" (for a relay on this machine only: {SMTP_PLAINTEXT_LOOPBACK_ENV}=true)")


def _tls_context(env: dict[str, str]) -> ssl.SSLContext:
    """Certificate chain and host name verified, against the system's CAs or ALLIANCE_SMTP_CA_FILE's."""
    return ssl.create_default_context(cafile=env.get(SMTP_CA_FILE_ENV) or None)


def _starttls(smtp: smtplib.SMTP, host: str, port: int, env: dict[str, str]) -> None:
    """Upgrade to a verified TLS session; on failure close the connection (no QUIT in clear) and say why."""
    try:
        smtp.starttls(context=_tls_context(env))
        return
    except ssl.SSLCertVerificationError as exc:
        reason = (f"its certificate failed verification ({exc.verify_message}); if a private CA signed it, set "
                  f"{SMTP_CA_FILE_ENV} to that CA's PEM file")
    except smtplib.SMTPNotSupportedError:
        reason = "it does not offer STARTTLS, which ALLIANCE_SMTP_STARTTLS=true requires"
    smtp.close()
    raise SmtpSecurityError(f"SMTP server {host}:{port}: {reason}; nothing was sent")


def send_email_text(subject: str, text: str, env: dict[str, str], to: str | None = None, timeout: float = 15) -> None:
    """One plain-text e-mail through the ALLIANCE_SMTP_* server; `to` overrides ALLIANCE_SMTP_TO.

    Raises SmtpSecurityError (before any password is sent) when STARTTLS cannot be verified or is off while a
    login is configured."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = env.get("ALLIANCE_SMTP_FROM", "alliance@localhost")
    msg["To"] = to or env["ALLIANCE_SMTP_TO"]
    msg.set_content(text)
    host, port = env["ALLIANCE_SMTP_HOST"], int(env.get("ALLIANCE_SMTP_PORT", "25"))
    _check_login_policy(host, port, env)
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        if _flag(env, "ALLIANCE_SMTP_STARTTLS"):
            _starttls(smtp, host, port, env)
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
        except SmtpSecurityError as exc:  # names the server and the setting to fix, no secret
            log.warning("e-mail notification refused: %s", exc)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("e-mail notification failed: %s", type(exc).__name__)
    return used
