"""Failure notifications through the Airflow notifier: a real local HTTP server stands in for Slack,
aiosmtpd for the mail server; the log channel is always used."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from alliance.failure_notify import Failure, SmtpSecurityError, notify_failure, send_email_text
from alliance.run import StepFailed
from devstack.freshness import free_port


@pytest.fixture()
def slack():
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXX", received
    server.shutdown()
    server.server_close()


@pytest.fixture()
def smtp():
    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's API
            messages.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, messages
    controller.stop()


def gate_failure_context() -> dict:
    ti = SimpleNamespace(dag_id="alliance_transform", task_id="quality_gate", run_id="asset_triggered__x",
                         try_number=1, log_url="http://127.0.0.1:8080/dags/alliance_transform/runs/x")
    error = StepFailed("quality gate failed, analytics left unchanged:\n  fct_orders: net_amount_rc not null")
    return {"ti": ti, "exception": error, "run_id": "asset_triggered__x"}


def test_gate_failure_goes_to_log_slack_and_email(slack, smtp, monkeypatch, caplog):
    hook_url, posts = slack
    port, mails = smtp
    monkeypatch.setenv("ALLIANCE_SLACK_WEBHOOK_URL", hook_url)
    monkeypatch.setenv("ALLIANCE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALLIANCE_SMTP_PORT", str(port))
    monkeypatch.setenv("ALLIANCE_SMTP_TO", "ops@alliance.test")
    from alliance.airflow_support import AllianceFailureNotifier  # here: asset URIs are fixed at import

    # Importing Airflow may reconfigure logging (dropping caplog's root handler): listen on the logger itself.
    failures_log = logging.getLogger("alliance.failures")
    failures_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR, logger="alliance.failures"):
            AllianceFailureNotifier().notify(gate_failure_context())
    finally:
        failures_log.removeHandler(caplog.handler)
    assert "quality gate failed: alliance_transform.quality_gate" in caplog.text
    assert len(posts) == 1 and "net_amount_rc not null" in posts[0]["text"]
    assert len(mails) == 1 and mails[0].rcpt_tos == ["ops@alliance.test"]
    assert b"Subject: [alliance] quality gate failed: alliance_transform.quality_gate" in mails[0].content


def test_log_only_when_nothing_configured_and_broken_channels_do_not_raise(monkeypatch):
    failure = Failure("alliance_ingest", "ingest_orders", "r1", "IngestFailed: lumen: HTTP 503")
    assert notify_failure(failure, env={}) == ["log"]
    dead = {"ALLIANCE_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/x",
            "ALLIANCE_SMTP_HOST": "127.0.0.1", "ALLIANCE_SMTP_PORT": str(free_port()), "ALLIANCE_SMTP_TO": "a@b.c"}
    assert notify_failure(failure, env=dead) == ["log"]
    assert failure.kind == "task failed"


@pytest.fixture()
def loopback_cert(tmp_path):
    """A self-signed certificate for 127.0.0.1 (SAN included, as host name checks need) and its key."""
    key, cert = tmp_path / "smtp-key.pem", tmp_path / "smtp-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture()
def mail_server():
    """Start aiosmtpd servers on loopback that record every AUTH attempt and every mail; stopped at teardown."""
    started: list[Controller] = []

    def start(tls: ssl.SSLContext | None = None, auth_require_tls: bool = True) -> tuple[int, list, list]:
        mails: list = []
        auths: list[str] = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's API
                mails.append(envelope)
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
            auths.append(mechanism)
            return AuthResult(success=True)

        controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), tls_context=tls,
                                authenticator=authenticator, auth_require_tls=auth_require_tls)
        controller.start()
        started.append(controller)
        return controller.port, mails, auths

    yield start
    for controller in started:
        controller.stop()


def _mail_env(port: int, **extra: str) -> dict[str, str]:
    return {"ALLIANCE_SMTP_HOST": "127.0.0.1", "ALLIANCE_SMTP_PORT": str(port), "ALLIANCE_SMTP_TO": "ops@alliance.test",
            "ALLIANCE_SMTP_USER": "alliance", "ALLIANCE_SMTP_PASSWORD": "pw-never-in-clear", **extra}


def test_starttls_verifies_the_server_certificate_before_the_password(mail_server, loopback_cert):
    cert, key = loopback_cert
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    port, mails, auths = mail_server(tls=tls)
    env = _mail_env(port, ALLIANCE_SMTP_STARTTLS="true")

    with pytest.raises(SmtpSecurityError) as refused:
        send_email_text("s", "t", env)
    message = str(refused.value)
    assert f"SMTP server 127.0.0.1:{port}" in message and "certificate" in message
    assert "ALLIANCE_SMTP_CA_FILE" in message and "pw-never-in-clear" not in message
    assert auths == [] and mails == []  # the password never left: the handshake failed first

    send_email_text("s", "t", {**env, "ALLIANCE_SMTP_CA_FILE": str(cert)})  # the operator trusts this CA
    assert len(auths) == 1 and len(mails) == 1 and mails[0].rcpt_tos == ["ops@alliance.test"]


def test_no_password_in_clear_unless_opted_out_for_a_loopback_relay(mail_server, caplog):
    port, mails, auths = mail_server(auth_require_tls=False)  # a server that would take AUTH without TLS
    with pytest.raises(SmtpSecurityError, match=f"SMTP server 127.0.0.1:{port}: refusing to send the password"):
        send_email_text("s", "t", _mail_env(port))
    with pytest.raises(SmtpSecurityError, match="does not offer STARTTLS"):
        send_email_text("s", "t", _mail_env(port, ALLIANCE_SMTP_STARTTLS="true"))
    remote = {**_mail_env(port, ALLIANCE_SMTP_PLAINTEXT_LOOPBACK="true"), "ALLIANCE_SMTP_HOST": "smtp.example.com"}
    with pytest.raises(SmtpSecurityError, match="smtp.example.com"):  # the opt-out is for loopback only
        send_email_text("s", "t", remote)
    failures_log = logging.getLogger("alliance.failures")  # on the logger itself: Airflow may drop caplog's root one
    failures_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="alliance.failures"):
            assert notify_failure(Failure("d", "t", "r", "boom"), env=_mail_env(port)) == ["log"]
    finally:
        failures_log.removeHandler(caplog.handler)
    assert f"refused: SMTP server 127.0.0.1:{port}" in caplog.text and "pw-never-in-clear" not in caplog.text
    assert auths == [] and mails == []

    send_email_text("s", "t", _mail_env(port, ALLIANCE_SMTP_PLAINTEXT_LOOPBACK="true"))
    assert len(auths) == 1 and len(mails) == 1
