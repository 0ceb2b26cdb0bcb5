"""Alert delivery over real loopback servers: an HTTP receiver (webhook, HMAC checked) and aiosmtpd (e-mail).

Proves: delivered once, not again on the next run, again after the KPI recovers and breaches anew; a dead
channel is retried, recorded as failed, and stops neither the others nor the evaluation. Also trailing-average
and objective-pace rules on published data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from support.build_schema import judge_alert_rules, make_build_schema

from alliance.alerts import AlertsFile, evaluate, load_alerts_file
from alliance.alerts.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER
from alliance.publish import publish
from alliance.warehouse import connect
from devstack.freshness import free_port

SECRET = "s3cret-for-tests"


@pytest.fixture()
def receiver():
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stamp = self.headers[TIMESTAMP_HEADER]
            expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(expected, self.headers[SIGNATURE_HEADER])
            if ok:
                posts.append(json.loads(body))
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", posts
    server.shutdown()


@pytest.fixture()
def smtp():
    mails = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            mails.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mails
    controller.stop()


RULES = """
channels:
  hook: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, retries: 1, backoff_seconds: 0.05}
  mail: {type: email, to_env: MAIL_TO, retries: 1, backoff_seconds: 0.05}
  dead: {type: webhook, url_env: DEAD_URL, secret_env: HOOK_SECRET, retries: 2, backoff_seconds: 0.05,
         timeout_seconds: 2}
  unset: {type: slack, url_env: NOT_SET_ANYWHERE}
rules:
  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical, channels: [dead, hook, mail, unset]}
  - {id: big_commission_day, kpi: commission_owed_rc, above: 500, severity: info}
"""


def _events(post: dict) -> list[str]:
    """The events one webhook call carried (one call per channel per run)."""
    return [a["event"] for a in post["alerts"]]


def _publish(url: str, run_id: str, lumen_refund_rate: str, spec: AlertsFile) -> None:
    make_build_schema(url)
    with connect(url) as conn:
        conn.execute("update alliance_build.partner_kpis_daily set refund_rate = %s "
                     "where partner_id = 'lumen' and kpi_date = '2026-10-01'", (Decimal(lumen_refund_rate),))
    judge_alert_rules(url, spec.rules)
    publish(url, run_id=run_id)


def test_delivered_once_again_after_recovery_and_dead_channel_stops_nothing(warehouse, tmp_path, receiver, smtp):
    hook_url, posts = receiver
    port, mails = smtp
    env = {"HOOK_URL": hook_url, "HOOK_SECRET": SECRET, "DEAD_URL": f"http://127.0.0.1:{free_port()}/gone",
           "MAIL_TO": "managers@alliance.test", "ALLIANCE_SMTP_HOST": "127.0.0.1", "ALLIANCE_SMTP_PORT": str(port)}
    path = tmp_path / "alerts.yml"
    path.write_text(RULES)
    spec = load_alerts_file(path)

    _publish(warehouse, "r1", "0.30", spec)
    first = evaluate(warehouse, spec, "r1", env=env)
    assert [a.alert_id for a in first.fired] == ["high_refund_rate:lumen:2026-10-01:1",
                                                 "big_commission_day:northwind:2026-10-01:1"]
    assert [_events(p) for p in posts] == [["fired"]]
    assert posts[0]["alerts"][0]["alert"]["partner_id"] == "lumen" and posts[0]["alerts"][0]["alert"]["value"] == "0.30"
    assert len(mails) == 1 and mails[0].rcpt_tos == ["managers@alliance.test"]
    assert b"Subject: [alliance] critical alerts: 1 firing for lumen" in mails[0].content
    assert b"- CRITICAL high_refund_rate for lumen, refund_rate: 1 period (2026-10-01)" in mails[0].content
    outcome = {(d.channel, d.status, d.attempts) for d in first.deliveries}
    assert outcome == {("dead", "failed", 3), ("hook", "sent", 1), ("mail", "sent", 1), ("unset", "skipped", 1),
                       ("log", "sent", 1)}

    again = evaluate(warehouse, spec, "r1-rerun", env=env)  # same data: nothing new, nothing sent
    assert again.fired == [] and again.resolved == [] and again.deliveries == []
    assert len(posts) == 1 and len(mails) == 1

    _publish(warehouse, "r2", "0.10", spec)  # the KPI recovers
    recovered = evaluate(warehouse, spec, "r2", env=env)
    assert recovered.fired == [] and [a.alert_id for a in recovered.resolved] == ["high_refund_rate:lumen:2026-10-01:1"]
    assert [_events(p) for p in posts] == [["fired"], ["resolved"]]
    assert posts[1]["alerts"][0]["alert"]["resolved_value"] == "0.10" and len(mails) == 2

    _publish(warehouse, "r3", "0.40", spec)  # a new breach of the same period fires again
    rebreach = evaluate(warehouse, spec, "r3", env=env)
    assert [a.alert_id for a in rebreach.fired] == ["high_refund_rate:lumen:2026-10-01:2"]
    assert [_events(p) for p in posts] == [["fired"], ["resolved"], ["fired"]]
    assert len(mails) == 3

    with connect(warehouse) as conn:
        history = conn.execute(
            "select alert_id, state, resolved_at is not null, value, threshold, severity from analytics.kpi_alerts "
            "where rule_id = 'high_refund_rate' order by alert_id").fetchall()
        deliveries = conn.execute(
            "select channel, event, status, attempts, error from ops.alert_deliveries "
            "where alert_id = 'high_refund_rate:lumen:2026-10-01:1' order by channel, event").fetchall()
    assert history == [
        ("high_refund_rate:lumen:2026-10-01:1", "resolved", True, Decimal("0.30"), Decimal("0.25"), "critical"),
        ("high_refund_rate:lumen:2026-10-01:2", "firing", False, Decimal("0.40"), Decimal("0.25"), "critical"),
    ]
    dead = [d for d in deliveries if d[0] == "dead"]
    assert [(d[1], d[2], d[3]) for d in dead] == [("fired", "failed", 3), ("resolved", "failed", 3)]
    assert dead[0][4].startswith("ConnectionError") and "127.0.0.1" not in dead[0][4]
    assert ("unset", "fired", "skipped", 1, "environment variable NOT_SET_ANYWHERE is not set") in deliveries


TRAILING_AND_PACE = """
rules:
  - {id: conversion_halved, kpi: conversion_rate, trailing_days: 7, change_below: -0.5,
     min_volume: {kpi: clicks_sent, at_least: VOLUME}}
  - {id: behind_pace, kpi: referred_orders, pace_below: 0.8, min_elapsed_days: ELAPSED}
"""


@pytest.mark.parametrize(("volume", "elapsed", "expected"), [
    (50, 5, {("conversion_halved", "lumen", date(2026, 10, 8)), ("behind_pace", "northwind", date(2026, 10, 1))}),
    (500, 10, set()),  # too little volume over the window; too early in the month to project
])
def test_trailing_average_and_objective_pace(warehouse, tmp_path, volume, elapsed, expected):
    make_build_schema(warehouse)
    with connect(warehouse) as conn:
        conn.execute("delete from alliance_build.partner_kpis_daily")
        conn.execute("""insert into alliance_build.partner_kpis_daily (kpi_date, partner_id, clicks_sent,
                            referred_orders, conversion_rate)
                        select date '2026-10-01' + g, 'lumen', 10, 1, case when g = 7 then 0.04 else 0.10 end
                        from generate_series(0, 7) g""")
        # northwind's objective (objective_progress: 5 of 200 referred orders in October) as its KPI days hold it
        conn.execute("""insert into alliance_build.partner_kpis_daily (kpi_date, partner_id, referred_orders)
                        values (date '2026-10-02', 'northwind', 2), (date '2026-10-06', 'northwind', 3)""")
    path = tmp_path / "alerts.yml"
    path.write_text(TRAILING_AND_PACE.replace("VOLUME", str(volume)).replace("ELAPSED", str(elapsed)))
    spec = load_alerts_file(path)
    judge_alert_rules(warehouse, spec.rules)
    publish(warehouse, run_id="r1")
    fired = evaluate(warehouse, spec, "r1").fired
    assert {(a.rule_id, a.partner_id, a.period) for a in fired} == expected
    by_rule = {a.rule_id: a for a in fired}
    if "conversion_halved" in by_rule:
        alert = by_rule["conversion_halved"]
        assert (alert.value, alert.baseline, alert.threshold) == (Decimal("0.04"), Decimal("0.1"), Decimal("0.05"))
    if "behind_pace" in by_rule:  # 5 of 200 orders after 8 of 31 days: 5 * 31 / 8 / 200
        assert by_rule["behind_pace"].value == Decimal("0.0969") and by_rule["behind_pace"].kind == "pace"


OUTBOX_RULES = """
channels:
  hook: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, retries: 0, timeout_seconds: 60}
rules:
  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical, channels: [hook]}
"""
CRASHING_EVALUATION = """
import sys
from alliance.alerts import evaluate, load_alerts_file
evaluate(sys.argv[1], load_alerts_file(sys.argv[2]), "run-killed-while-sending")
"""


def test_alert_recorded_by_a_killed_run_is_delivered_by_the_next(warehouse, tmp_path):
    """The outbox: a run SIGKILLed while the webhook is being called loses no message; the next run sends it."""
    received: list[dict] = []
    first_request, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not release.is_set():  # the first call hangs: the sender is killed while waiting for it
                first_request.set()
                release.wait(30)
                return
            received.append(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"HOOK_URL": f"http://127.0.0.1:{server.server_port}/hook", "HOOK_SECRET": SECRET}
    rules = tmp_path / "alerts.yml"
    rules.write_text(OUTBOX_RULES)
    try:
        _publish(warehouse, "r-outbox", "0.30", load_alerts_file(rules))
        child = subprocess.Popen([sys.executable, "-c", CRASHING_EVALUATION, warehouse, str(rules)],
                                 env={**os.environ, **env}, start_new_session=True)
        try:
            assert first_request.wait(60), "the evaluation never called the webhook"
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        with connect(warehouse) as conn:
            queued = conn.execute("select alert_id, event, channel, status from ops.alert_deliveries").fetchall()
        assert queued == [("high_refund_rate:lumen:2026-10-01:1", "fired", "hook", "pending")]

        release.set()
        nxt = evaluate(warehouse, load_alerts_file(rules), "next-run", env=env)
        assert nxt.fired == []  # recorded once, by the killed run
        assert [(d.alert_id, d.event, d.channel, d.status) for d in nxt.deliveries] == [
            ("high_refund_rate:lumen:2026-10-01:1", "fired", "hook", "sent")]
        assert [(_events(p), p["alerts"][0]["alert"]["run_id"]) for p in received] == [
            (["fired"], "run-killed-while-sending")]
        again = evaluate(warehouse, load_alerts_file(rules), "third-run", env=env)
        assert again.deliveries == [] and len(received) == 1
        with connect(warehouse) as conn:
            assert conn.execute("select status, run_id from ops.alert_deliveries").fetchall() == [
                ("sent", "next-run")]
    finally:
        release.set()
        server.shutdown()


GROUPED_RULES = """
channels:
  hook: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET, retries: 0}
default_channels: [hook]
rules:
  - {id: refunds_high, kpi: refund_rate, above: 0.25, severity: critical, detection_days: 7}
  - {id: bills_big, kpi: commission_owed_rc, above: 500, severity: info, delivery: digest, detection_days: 7}
"""


def _publish_days(url: str, run_id: str, rows: list[tuple], spec: AlertsFile) -> None:
    """Publish partner_kpis_daily = rows of (day, partner, refund_rate, commission_owed_rc)."""
    make_build_schema(url)
    with connect(url) as conn:
        conn.execute("delete from alliance_build.partner_kpis_daily")
        with conn.cursor() as cur:
            cur.executemany("insert into alliance_build.partner_kpis_daily (kpi_date, partner_id, refund_rate, "
                            "commission_owed_rc) values (%s, %s, %s, %s)", rows)
    judge_alert_rules(url, spec.rules)
    publish(url, run_id=run_id)


def test_one_grouped_message_per_channel_per_run_and_a_daily_digest(warehouse, tmp_path, receiver):
    """Four breached days of refunds reach the channel as one call with one line per (partner, rule): count, worst
    value, periods. A digest rule's events ride along with the first delivery of a day, then wait for the next."""
    hook_url, posts = receiver
    env = {"HOOK_URL": hook_url, "HOOK_SECRET": SECRET}
    path = tmp_path / "alerts.yml"
    path.write_text(GROUPED_RULES)
    spec = load_alerts_file(path)
    days = [(date(2026, 10, d), p, Decimal(rate), Decimal(owed)) for d, p, rate, owed in [
        (1, "lumen", "0.30", "0"), (2, "lumen", "0.50", "0"), (3, "lumen", "0.40", "0"),
        (1, "northwind", "0.10", "0"), (2, "northwind", "0.10", "600"), (3, "northwind", "0.35", "0")]]
    _publish_days(warehouse, "r1", days, spec)

    first = evaluate(warehouse, spec, "r1", env=env, now=datetime(2026, 10, 4, 7, 0, tzinfo=UTC))
    assert len(first.fired) == 5 and len(posts) == 1  # one call for five episodes
    assert posts[0]["event"] == "alerts.digest" and posts[0]["run_id"] == "r1"
    groups = [(g["rule_id"], g["partner_id"], g["count"], g["worst_value"], g["periods"]) for g in posts[0]["groups"]]
    assert groups == [
        ("refunds_high", "lumen", 3, "0.50", ["2026-10-01", "2026-10-02", "2026-10-03"]),
        ("refunds_high", "northwind", 1, "0.35", ["2026-10-03"]),
        ("bills_big", "northwind", 1, "600", ["2026-10-02"]),
    ]
    assert {(d.alert_id, d.status) for d in first.deliveries} == {(a.alert_id, "sent") for a in first.fired}

    # Later the same day: the immediate rule's new breach goes out at once; the digest rule's waits.
    _publish_days(warehouse, "r2", [*days, (date(2026, 10, 4), "lumen", Decimal("0.60"), Decimal("0")),
                                    (date(2026, 10, 4), "northwind", Decimal("0.10"), Decimal("700"))], spec)
    second = evaluate(warehouse, spec, "r2", env=env, now=datetime(2026, 10, 4, 12, 0, tzinfo=UTC))
    assert sorted(a.alert_id for a in second.fired) == ["bills_big:northwind:2026-10-04:1",
                                                        "refunds_high:lumen:2026-10-04:1"]
    assert len(posts) == 2 and posts[1]["event"] == "alerts"
    assert [(g["rule_id"], g["partner_id"], g["count"]) for g in posts[1]["groups"]] == [("refunds_high", "lumen", 1)]
    with connect(warehouse) as conn:
        waiting = conn.execute("select alert_id from ops.alert_deliveries where status = 'pending'").fetchall()
    assert waiting == [("bills_big:northwind:2026-10-04:1",)]

    # The next day's first delivery is the digest, sent once.
    third = evaluate(warehouse, spec, "r3", env=env, now=datetime(2026, 10, 5, 6, 0, tzinfo=UTC))
    assert third.fired == [] and len(posts) == 3 and posts[2]["event"] == "alerts.digest"
    assert [(a["event"], a["alert"]["alert_id"]) for a in posts[2]["alerts"]] == [
        ("fired", "bills_big:northwind:2026-10-04:1")]
    assert evaluate(warehouse, spec, "r4", env=env, now=datetime(2026, 10, 5, 9, 0, tzinfo=UTC)).deliveries == []
    assert len(posts) == 3
    with connect(warehouse) as conn:
        digests = conn.execute("select channel, digest_day, run_id, events from ops.alert_digests order by 2")
        digests = digests.fetchall()
    assert digests == [("hook", date(2026, 10, 4), "r1", 1), ("hook", date(2026, 10, 5), "r3", 1)]
