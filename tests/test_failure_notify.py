"""Failure notifications through the Airflow notifier: a real local HTTP server stands in for Slack,
aiosmtpd for the mail server; the log channel is always used."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from alliance.failure_notify import Failure, notify_failure
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
