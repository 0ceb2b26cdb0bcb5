"""Alerts worth reading (issue 23): the detection window, z-score trailing rules with a training set and a volume
floor for the day, on published data judged by the real dbt model. Every date is pinned (data and `now`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from support.build_schema import judge_alert_rules, make_build_schema

from alliance.alerts import evaluate, load_alerts_file
from alliance.publish import publish
from alliance.warehouse import connect

NOW = datetime(2026, 10, 21, 8, 0, tzinfo=UTC)  # the delivery clock: no digest rule here, so it decides nothing


def _publish_history(url: str, run_id: str, rows: list[tuple], spec) -> None:
    """Publish partner_kpis_daily = rows of (day, partner, referred_orders, clicks, refund_rate, conversion)."""
    make_build_schema(url)
    with connect(url) as conn:
        conn.execute("delete from alliance_build.partner_kpis_daily")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into alliance_build.partner_kpis_daily (kpi_date, partner_id, referred_orders, clicks_sent, "
                "refund_rate, conversion_rate) values (%s, %s, %s, %s, %s, %s)", rows)
    judge_alert_rules(url, spec.rules)
    publish(url, run_id=run_id)


def _days(first: date, last: date) -> list[date]:
    return [date.fromordinal(d) for d in range(first.toordinal(), last.toordinal() + 1)]


def _history(last: date, breached: dict[date, str], partner: str = "lumen") -> list[tuple]:
    """A quiet refund rate (0.05) every day from 1 September to `last`, with the given breached days."""
    return [(d, partner, 5, 50, Decimal(breached.get(d, "0.05")), Decimal("0.10"))
            for d in _days(date(2026, 9, 1), last)]


WINDOW_RULES = """
rules:
  - {id: refunds_high, kpi: refund_rate, above: 0.25, severity: critical}
  - {id: refunds_high_month, kpi: refund_rate, above: 0.25, detection_days: 45}
"""


def test_first_run_on_a_history_fires_only_inside_the_detection_window(warehouse, tmp_path: Path):
    """Breaches on 5 Sept, 9 and 10 Oct: the default 2-day window (counted back from the latest published day,
    10 Oct) opens 9 and 10 Oct only; a 45-day window reaches back to 5 Sept; an explicit as-of moves the window."""
    path = tmp_path / "alerts.yml"
    path.write_text(WINDOW_RULES)
    spec = load_alerts_file(path)
    breaches = {date(2026, 9, 5): "0.40", date(2026, 10, 9): "0.50", date(2026, 10, 10): "0.30"}
    _publish_history(warehouse, "r1", _history(date(2026, 10, 10), breaches), spec)

    fired = evaluate(warehouse, spec, "r1", now=NOW).fired
    assert {(a.rule_id, a.period) for a in fired} == {
        ("refunds_high", date(2026, 10, 9)), ("refunds_high", date(2026, 10, 10)),
        ("refunds_high_month", date(2026, 9, 5)), ("refunds_high_month", date(2026, 10, 9)),
        ("refunds_high_month", date(2026, 10, 10)),
    }
    early = evaluate(warehouse, spec, "r2", as_of=date(2026, 9, 6), now=NOW)  # a run whose as-of is 6 September
    assert [(a.rule_id, a.period) for a in early.fired] == [("refunds_high", date(2026, 9, 5))]
    assert early.resolved == []  # the October episodes are not judged by a run as of September: they stay


def test_an_episode_resolves_on_its_data_not_when_its_period_leaves_the_window(warehouse, tmp_path: Path):
    path = tmp_path / "alerts.yml"
    path.write_text("rules:\n  - {id: refunds_high, kpi: refund_rate, above: 0.25}\n")
    spec = load_alerts_file(path)
    _publish_history(warehouse, "r1", _history(date(2026, 10, 10), {date(2026, 10, 10): "0.40"}), spec)
    assert [a.alert_id for a in evaluate(warehouse, spec, "r1", now=NOW).fired] == ["refunds_high:lumen:2026-10-10:1"]

    # Ten days later 10 Oct is far outside the window and still breached: the episode stays firing, nothing is
    # sent about it; the new breach of 20 Oct opens its own.
    later = _history(date(2026, 10, 20), {date(2026, 10, 10): "0.40", date(2026, 10, 20): "0.35"})
    _publish_history(warehouse, "r2", later, spec)
    outcome = evaluate(warehouse, spec, "r2", now=NOW)
    assert [a.alert_id for a in outcome.fired] == ["refunds_high:lumen:2026-10-20:1"] and outcome.resolved == []

    # The late refunds of 10 Oct are reversed: its KPI is back within bounds, so it resolves (once), window or not.
    _publish_history(warehouse, "r3", _history(date(2026, 10, 20), {date(2026, 10, 20): "0.35"}), spec)
    outcome = evaluate(warehouse, spec, "r3", now=NOW)
    assert outcome.fired == [] and [(a.alert_id, a.resolved_value) for a in outcome.resolved] == [
        ("refunds_high:lumen:2026-10-10:1", Decimal("0.05"))]
    assert [(d.event, d.status) for d in outcome.deliveries] == [("resolved", "sent")]
    again = evaluate(warehouse, spec, "r4", now=NOW)
    assert again.fired == [] and again.resolved == [] and again.deliveries == []
    with connect(warehouse) as conn:
        states = conn.execute("select alert_id, state from analytics.kpi_alerts order by 1").fetchall()
    assert states == [("refunds_high:lumen:2026-10-10:1", "resolved"), ("refunds_high:lumen:2026-10-20:1", "firing")]


ZSCORE_RULES = """
rules:
  - id: refund_rate_jump
    kpi: refund_rate
    trailing_days: 14
    sensitivity: 3
    direction: above
    min_training_days: 7
    min_day_volume: {kpi: referred_orders, at_least: 3}
  - id: conversion_drop
    kpi: conversion_rate
    trailing_days: 14
    sensitivity: 3
    direction: below
    min_day_volume: {kpi: clicks_sent, at_least: 30}
"""


def _wobbly(partner: str, last: date, orders_last_day: int, refund_last_day: str, clicks_last_day: int,
            conversion_last_day: str) -> list[tuple]:
    """Refund rate 0.02/0.06 and conversion 0.10/0.12 alternating, 5 orders and 50 clicks a day; then the last day."""
    days = _days(date(2026, 10, 1), last)
    rows = [(d, partner, 5, 50, Decimal("0.02" if i % 2 else "0.06"), Decimal("0.10" if i % 2 else "0.12"))
            for i, d in enumerate(days[:-1])]
    return rows + [(last, partner, orders_last_day, clicks_last_day, Decimal(refund_last_day),
                    Decimal(conversion_last_day))]


def test_zscore_rules_judge_against_variability_with_a_training_set_and_a_day_volume(warehouse, tmp_path: Path):
    """lumen's refund rate jumps to 0.30 on a day of 6 orders (mean 0.04, sd ~0.021: far beyond 3 sd) and fires;
    northwind's jumps as far on a day of 2 orders, tidewater's on a day with 3 clicks its conversion is 0: neither
    day reaches its volume floor, so neither is judged; brightpath has 5 days of history, under the 7 needed."""
    path = tmp_path / "alerts.yml"
    path.write_text(ZSCORE_RULES)
    spec = load_alerts_file(path)
    last = date(2026, 10, 16)
    rows = (_wobbly("lumen", last, 6, "0.30", 50, "0.11") + _wobbly("northwind", last, 2, "0.50", 50, "0.11")
            + _wobbly("tidewater", last, 5, "0.04", 3, "0") + _wobbly("brightpath", last, 5, "0.04", 50, "0.11")[-6:])
    brightpath_jump = list(rows[-1])
    brightpath_jump[4] = Decimal("0.60")
    rows[-1] = tuple(brightpath_jump)
    _publish_history(warehouse, "r1", rows, spec)

    fired = evaluate(warehouse, spec, "r1", now=NOW).fired
    assert [(a.rule_id, a.partner_id, a.period, a.kind) for a in fired] == [
        ("refund_rate_jump", "lumen", last, "trailing")]
    assert fired[0].value == Decimal("0.30") and fired[0].baseline == Decimal("0.04")
    assert Decimal("0.09") < fired[0].threshold < Decimal("0.11")  # 0.04 + 3 x sample sd of 14 alternating days
    with connect(warehouse) as conn:
        judged = conn.execute(
            "select rule_id, partner_id from analytics.kpi_alert_observations where period = %s order by 1, 2",
            (last,)).fetchall()
    assert judged == [("conversion_drop", "lumen"), ("conversion_drop", "northwind"), ("refund_rate_jump", "lumen"),
                      ("refund_rate_jump", "tidewater")]
