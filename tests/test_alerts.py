"""KPI alerts: rule validation, firing once per (rule, partner, day) on published data, history across publishes."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from support.build_schema import judge_alert_rules, make_build_schema

from alliance.alerts import (
    AlertRulesError,
    Channel,
    LogChannel,
    evaluate,
    evaluate_alerts,
    load_alerts_file,
    load_rules,
)
from alliance.alerts.evaluate import AlertError
from alliance.alerts.store import ALERT_COLUMNS
from alliance.publish import publish
from alliance.warehouse import PROJECT_ROOT, connect

RULES_FILE = PROJECT_ROOT / "config" / "alerts.yml"


def test_load_rules_reads_the_shipped_file():
    spec = load_alerts_file(RULES_FILE)
    rules = {r.id: r for r in spec.rules}
    assert set(rules) == {"refund_rate_jump", "conversion_drop", "large_commission_bill", "objective_behind_pace",
                          "many_orders_held"}
    assert {r: rules[r].kind for r in rules} == {
        "refund_rate_jump": "trailing", "conversion_drop": "trailing", "large_commission_bill": "threshold",
        "objective_behind_pace": "pace", "many_orders_held": "held_share"}
    jump = rules["refund_rate_jump"]
    assert (jump.method, jump.comparison, jump.threshold, jump.trailing_days, jump.training_days_needed) == (
        "zscore", "above", Decimal("3"), 28, 10)
    assert jump.min_day_volume is not None and jump.min_day_volume.kpi == "referred_orders"
    assert {r.id: r.detection_days for r in spec.rules} == dict.fromkeys(rules, 2)
    assert {r.id for r in spec.rules if r.delivery == "digest"} == {"large_commission_bill", "many_orders_held"}
    held = rules["many_orders_held"]
    assert (held.comparison, held.threshold, held.min_orders) == ("above", Decimal("0.2"), 10)
    assert rules["refund_rate_jump"].severity == "critical"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("rules:\n  - {id: a, kpi: conversion, below: 1}", "rule `a`: kpi: unknown KPI `conversion`; use one of"),
        ("rules:\n  - {id: a, kpi: refund_rate, below: 1, above: 2}", "rule `a`: above/below: give exactly one"),
        ("rules:\n  - {id: a, kpi: refund_rate}", "rule `a`: above/below: give exactly one"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: lots}", "rule `a`: key `above`: must be a number"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: 1, severity: loud}", "rule `a`: key `severity`"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: 1, channel: slack}", "unknown key `channel`"),
        ("rules:\n  - {kpi: refund_rate, above: 1}", "rule #1: missing key `id`"),
        ("rules:\n  - {id: a, kpi: aov_rc, above: 1}\n  - {id: a, kpi: aov_rc, below: 1}", "duplicate rule id"),
        ("alerts: []", "unknown top-level key"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7}", "give exactly one relative change"),
        ("rules:\n  - {id: a, kpi: refund_rate, change_below: -0.5}", "a trailing rule needs `trailing_days"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7, change_below: -2}", "key `change_below`"),
        ("rules:\n  - {id: a, kpi: aov_rc, trailing_days: 7, change_above: 1, min_volume: {kpi: aov_rc, at_least: 5}}",
         "min_volume.kpi: `aov_rc` is not a volume"),
        ("rules:\n  - {id: a, kpi: aov_rc, trailing_days: 7, below: 1}", "a trailing rule compares a relative change"),
        ("rules:\n  - {id: a, pace_below: 0.8, above: 3}", "a pace rule takes only"),
        ("rules:\n  - {id: a, held_share_above: 0.2, kpi: refund_rate}", "a held-share rule takes only"),
        ("rules:\n  - {id: a, held_share_above: 1.5}", "key `held_share_above`"),
        ("rules:\n  - {id: a, held_share_above: 0.2, min_orders: 0}", "key `min_orders`"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: 1, min_orders: 5}", "only a held-share rule takes it"),
        ("rules:\n  - {id: a, kpi: aov_rc, above: 1, channels: [pager]}", "unknown channel `pager`"),
        ("channels:\n  x: {type: webhook, url_env: https://hooks.example/abc, secret_env: S}\nrules: []",
         "channel `x`: url_env: `https://hooks.example/abc` must be an environment variable NAME"),
        ("channels:\n  x: {type: webhook, url_env: URL}\nrules: []", "channel `x`: secret_env: a webhook channel"),
        ("channels:\n  x: {type: pager}\nrules: []", "channel `x`: key `type`"),
        ("rules: [", "not valid YAML"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7, sensitivity: 3}", "a z-score rule needs both"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7, sensitivity: 3, direction: up}", "key `direction`"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7, sensitivity: 0, direction: above}",
         "key `sensitivity`"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 7, sensitivity: 3, direction: above, change_above: 1}",
         "drop `change_below`/`change_above`"),
        ("rules:\n  - {id: a, kpi: refund_rate, trailing_days: 5, sensitivity: 3, direction: above, "
         "min_training_days: 6}", "min_training_days: 6 is more than the 5 trailing_days"),
        ("rules:\n  - {id: a, kpi: refund_rate, sensitivity: 3, direction: above}", "needs `trailing_days"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: 1, detection_days: 0}", "key `detection_days`"),
        ("rules:\n  - {id: a, kpi: refund_rate, above: 1, delivery: weekly}", "key `delivery`"),
        ("rules:\n  - {id: a, kpi: conversion_rate, below: 1, min_day_volume: {kpi: conversion_rate, at_least: 3}}",
         "min_day_volume.kpi: `conversion_rate` is not a volume"),
        ("rules:\n  - {id: a, pace_below: 0.8, min_day_volume: {kpi: clicks_sent, at_least: 3}}",
         "a pace rule takes only"),
    ],
)
def test_bad_rules_name_file_rule_and_key(tmp_path: Path, body: str, expected: str):
    path = tmp_path / "alerts.yml"
    path.write_text(body)
    with pytest.raises(AlertRulesError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_alerts_need_published_data(warehouse):
    make_build_schema(warehouse)  # built but not published: alerts must not read it
    with pytest.raises(AlertError, match="published data only"):
        evaluate_alerts(warehouse, load_rules(RULES_FILE), run_id="r1")


TEST_RULES = """
rules:
  - {id: low_conversion, kpi: conversion_rate, below: 0.02, severity: warning}
  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical}
  - {id: big_commission_day, kpi: commission_owed_rc, above: 500, severity: info}
"""


@pytest.fixture()
def test_rules(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(TEST_RULES)
    return load_rules(path)


def test_alerts_fire_once_and_survive_the_next_publish(warehouse, caplog, test_rules):
    rules = test_rules
    make_build_schema(warehouse, rules=rules)
    publish(warehouse, run_id="r1")

    with caplog.at_level(logging.INFO, logger="alliance.alerts"):
        fired = evaluate_alerts(warehouse, rules, run_id="r1")
    assert {a.state for a in fired} == {"firing"}
    got = {(a.rule_id, a.partner_id, a.period, a.value) for a in fired}
    assert got == {
        ("low_conversion", "lumen", date(2026, 10, 1), Decimal("0.01")),
        ("high_refund_rate", "lumen", date(2026, 10, 1), Decimal("0.30")),
        ("big_commission_day", "northwind", date(2026, 10, 1), Decimal("600.00")),
    }
    records = [r for r in caplog.records if r.name == "alliance.alerts"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR  # one message per channel, most severe level
    lines = records[0].getMessage().splitlines()
    assert lines[0] == "[alliance] critical alerts: 3 firing for lumen, northwind (run r1)"
    assert lines[1] == ("- CRITICAL high_refund_rate for lumen, refund_rate: 1 period (2026-10-01), "
                        "worst 0.30 above limit 0.25")
    assert len(lines) == 4

    caplog.clear()
    assert evaluate_alerts(warehouse, rules, run_id="r1-rerun") == []
    assert not [r for r in caplog.records if r.name == "alliance.alerts"]

    make_build_schema(warehouse, rows=7, rules=rules)
    publish(warehouse, run_id="r2")
    assert evaluate_alerts(warehouse, rules, run_id="r2") == []
    with connect(warehouse) as conn:
        rows = conn.execute(
            "select rule_id, partner_id, period, run_id from analytics.kpi_alerts order by 1"
        ).fetchall()
        assert conn.execute("select count(*) from ops.kpi_alerts").fetchone()[0] == 3
    assert [(r[0], r[3]) for r in rows] == [
        ("big_commission_day", "r1"), ("high_refund_rate", "r1"), ("low_conversion", "r1"),
    ]


def test_as_of_limits_periods_and_custom_channels_receive_alerts(warehouse, test_rules):
    class Collect:
        name = "collect"

        def __init__(self) -> None:
            self.sent: list = []

        def send(self, alert) -> None:
            self.sent.append(alert)

    collector = Collect()
    assert isinstance(collector, Channel) and isinstance(LogChannel(), Channel)
    rules = test_rules
    make_build_schema(warehouse, rules=rules)
    publish(warehouse, run_id="r1")
    assert evaluate_alerts(warehouse, rules, run_id="r1", as_of=date(2026, 9, 30), channels=[collector]) == []
    fired = evaluate_alerts(warehouse, rules, run_id="r1", as_of=date(2026, 10, 1), channels=[collector])
    assert len(fired) == 3 and len(collector.sent) == 1 and collector.sent[0].alerts == fired
    with connect(warehouse) as conn:
        assert conn.execute("select count(*) from analytics.kpi_alerts").fetchone()[0] == 3


LOCK_RULES = """
rules:
  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical}
  - {id: low_refund_rate, kpi: refund_rate, below: 0.15, severity: info}
  - {id: big_commission_day, kpi: commission_owed_rc, above: 500, severity: info}
"""


def _publish_lumen_refund_rate(url: str, run_id: str, rate: str, rules) -> None:
    make_build_schema(url)
    with connect(url) as conn:
        conn.execute("update alliance_build.partner_kpis_daily set refund_rate = %s "
                     "where partner_id = 'lumen' and kpi_date = '2026-10-01'", (Decimal(rate),))
    judge_alert_rules(url, rules)
    publish(url, run_id=run_id)


def _alert_rows(conn: psycopg.Connection, table: str) -> list[tuple]:
    return conn.execute(f"select {', '.join(ALERT_COLUMNS)} from {table} order by alert_id").fetchall()


def test_alert_evaluation_never_waits_for_a_bi_reader_nor_makes_one_wait(warehouse, tmp_path):
    """§5's one exception: recording alerts in the live analytics.kpi_alerts takes no lock a reader conflicts with.

    A BI session reads the table inside a transaction and stays idle in it (holding ACCESS SHARE). Any ACCESS
    EXCLUSIVE request (an ALTER TABLE, even a no-op one) would wait behind it, and every later reader behind that:
    the evaluation's session runs with lock_timeout 2 s, so such a regression fails here instead of hanging."""
    path = tmp_path / "rules.yml"
    path.write_text(LOCK_RULES)
    rules = load_rules(path)
    _publish_lumen_refund_rate(warehouse, "r1", "0.30", rules)
    assert len(evaluate_alerts(warehouse, rules, run_id="r1")) == 5
    _publish_lumen_refund_rate(warehouse, "r2", "0.10", rules)  # lumen recovers, and falls under the low bound
    with connect(warehouse) as conn:
        written_by_publish = dict(conn.execute("select alert_id, xmin::text from analytics.kpi_alerts").fetchall())

    bounded = warehouse + "?options=" + quote("-c lock_timeout=2s")
    with psycopg.connect(warehouse) as reader, psycopg.connect(warehouse, autocommit=True) as monitor:
        assert reader.execute("select count(*) from analytics.kpi_alerts").fetchone()[0] == 5  # now idle in txn
        outcome = evaluate(bounded, rules, "r2")
        assert [a.alert_id for a in outcome.resolved] == ["high_refund_rate:lumen:2026-10-01:1"]
        assert [a.alert_id for a in outcome.fired] == ["low_refund_rate:lumen:2026-10-01:1"]
        held = monitor.execute(
            "select granted from pg_locks where pid = %s and relation = 'analytics.kpi_alerts'::regclass "
            "and mode = 'AccessShareLock'", (reader.info.backend_pid,)).fetchall()
        assert held == [(True,)] and reader.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with psycopg.connect(bounded) as second_reader:  # a later reader does not queue either
            assert second_reader.execute("select count(*) from analytics.kpi_alerts").fetchone()[0] == 6
        reader.rollback()

    with connect(warehouse) as conn:
        assert _alert_rows(conn, "analytics.kpi_alerts") == _alert_rows(conn, "ops.kpi_alerts")  # an exact copy
        after = dict(conn.execute("select alert_id, xmin::text from analytics.kpi_alerts").fetchall())
    changed = {"high_refund_rate:lumen:2026-10-01:1", "low_refund_rate:lumen:2026-10-01:1"}
    assert {a for a in after if after[a] != written_by_publish.get(a)} == changed  # the others were not rewritten
