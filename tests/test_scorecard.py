"""The scorecard in a real browser (Playwright driving Debian's Chromium, tests/support/browser.py).

The published schema is the hand-made one of support/build_schema plus a November, with partner_kpis_monthly and
objective_pace_daily built by the real dbt models over it, and alerts evaluated by the real evaluator. The page must
load with no console or page error and no request but its own file, draw its charts (SVG points), stay under 2 MB,
not scroll sideways on a 375 px phone, and show the marts' own numbers. Screenshots: test-artifacts/scorecard.png
and scorecard-phone.png. Every date is pinned (the as-of date), so nothing here reads the clock.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from support.browser import ARTIFACTS, open_html, scrolls_sideways
from support.build_schema import judge_alert_rules, make_build_schema

from alliance.alerts import evaluate_alerts, load_rules
from alliance.dbt_runner import run_dbt
from alliance.migrate import migrate
from alliance.publish import publish
from alliance.scorecard import build_scorecard, write_scorecard
from alliance.scorecard.format import attainment, money, rate

AS_OF = date(2026, 11, 20)
# detection_days covers the two months: the scorecard groups a history of alerts, not just the last two days'
RULES = """rules:
  - {id: high_refund_rate, kpi: refund_rate, above: 0.25, severity: critical, detection_days: 90}
  - {id: low_conversion, kpi: conversion_rate, below: 0.05, severity: warning, detection_days: 90}
"""
NOVEMBER = """
insert into alliance_build.partner_kpis_daily
select d::date, 'lumen', 40 + extract(day from d)::int, 2 + extract(day from d)::int % 3, null,
       100.00 * (1 + extract(day from d)::int % 4), 95.00 * (1 + extract(day from d)::int % 4), null, 0.05, 0.5,
       null, 12.50 * (1 + extract(day from d)::int % 2), 0
from generate_series(date '2026-11-01', date '2026-11-20', interval '1 day') d;
insert into alliance_build.partner_kpis_daily
select d::date, 'northwind', 100, 3, 0.03, 150.00, 150.00, 50.00, 0, 0, 0.10, 0,
       12.50 * (1 + extract(day from d)::int % 2)
from generate_series(date '2026-11-03', date '2026-11-12', interval '1 day') d;
update alliance_build.partner_kpis_daily set conversion_rate = round(referred_orders::numeric / clicks_sent, 4)
where partner_id = 'lumen' and kpi_date >= '2026-11-01';
insert into alliance_build.partner_balances (referrer_partner_id, destination_partner_id, month, commission_earned_rc,
    commission_owed_rc, state, commissioned_orders, held_orders, commission_rc, clawback_rc, adjustments_rc,
    held_rc, balance_rc)
values ('lumen', 'northwind', '2026-11-01', 362.50, 362.50, 'pending', 52, 2, 362.50, -20.00, 0, 25.00, 342.50),
       ('northwind', 'lumen', '2026-11-01', 0, 0, 'pending', 0, 0, 0, 0, 7.50, 0, 7.50);
insert into alliance_build.objective_progress values
    ('lumen', '2026-11-01', 'referred_orders', 100, 59, 0.5900),
    ('northwind', '2026-11-01', 'attributed_revenue_rc', 1000, 1500.00, 1.5000);
"""
PARTNERS = ("insert into raw.cfg_partners (partner_id, platform, currency) values"
            " ('lumen', 'shopify', 'USD'), ('northwind', 'shopify', 'USD'), ('tidewater', 'shopify', 'USD')")


@pytest.fixture(scope="module")
def published(fresh_database_factory, tmp_path_factory) -> str:
    """A published analytics schema for two months (October, November 2026) with alerts fired on it."""
    url = fresh_database_factory("scorecard")
    rules_file = tmp_path_factory.mktemp("rules") / "alerts.yml"
    rules_file.write_text(RULES)
    rules = load_rules(rules_file)
    make_build_schema(url)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute(NOVEMBER)
        conn.execute(PARTNERS)
    outcome = run_dbt(["run", "--select", "stg_cfg__partners partner_kpis_monthly objective_pace_daily"], url,
                      "alliance_build", {"as_of_date": AS_OF.isoformat()})
    assert outcome.success, outcome.failures
    judge_alert_rules(url, rules, as_of=AS_OF)
    publish(url, run_id="r1")
    evaluate_alerts(url, rules, run_id="r1", as_of=AS_OF)
    return url


def _one(url: str, query: str, *params: object) -> tuple:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row


def test_scorecard_leads_with_the_alliance_in_a_real_browser(published, tmp_path):
    out = write_scorecard(published, tmp_path / "scorecard.html", AS_OF)
    html = out.read_text()
    assert len(html.encode()) < 2_000_000
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    order = [html.index(f'<section id="{s}">') for s in ("alliance", "objectives", "trends", "alerts", "balances")]
    assert order == sorted(order), "this month vs last, then objectives and pace, then trends, then alerts"

    with open_html(out) as opened:
        page = opened.page
        assert opened.console_errors == [] and opened.page_errors == []
        assert opened.requests == [out.resolve().as_uri()], "a self-contained page requests nothing but itself"
        assert page.locator("h2").first.inner_text() == "The alliance: November 2026 vs October 2026"

        # month on month, read back from partner_kpis_monthly
        lumen = page.locator('article.partner[data-partner="lumen"]')
        for column, month, fmt in (
            ("referred_orders", "2026-11-01", str), ("attributed_revenue_rc", "2026-11-01", money),
            ("conversion_rate", "2026-11-01", rate), ("commission_earned_rc", "2026-10-01", money),
            ("clawback_rc", "2026-11-01", money), ("held_rc", "2026-11-01", money),
            ("adjustments_rc", "2026-10-01", money), ("net_balance_rc", "2026-11-01", money),
        ):
            (value,) = _one(published, f"select {column} from analytics.partner_kpis_monthly"  # noqa: S608
                            " where partner_id = 'lumen' and month = %s", date.fromisoformat(month))
            which = "this" if month == "2026-11-01" else "last"
            cell = lumen.locator(f'td[data-column="{column}"][data-month="{which}"]').inner_text()
            assert cell.split()[0] == fmt(value).split()[0], (column, cell, value)
        assert lumen.locator('td[data-column="net_balance_rc"][data-month="this"]').inner_text().startswith("335.00")
        northwind = page.locator('article.partner[data-partner="northwind"]')
        assert northwind.locator('td[data-column="commission_owed_rc"][data-month="last"]').inner_text() == "610.00"

        # objectives with pace, at the as-of date
        objective = page.locator('article.objective[data-partner="lumen"][data-metric="referred_orders"]')
        attained, projected, on_pace = _one(
            published, "select attainment_to_date, projected_attainment, on_pace from analytics.objective_pace_daily"
                       " where partner_id = 'lumen' and metric = 'referred_orders' and day = %s", AS_OF)
        assert objective.locator('[data-column="attainment_to_date"]').inner_text() == attainment(attained)
        assert objective.locator('[data-column="projected_attainment"]').inner_text() == attainment(projected)
        assert (attained, projected, on_pace) == (Decimal("0.6100"), Decimal("0.9150"), False)
        assert objective.locator(".badge").inner_text() == "behind pace"
        ahead = page.locator('article.objective[data-partner="northwind"][data-month="2026-11-01"]')
        assert ahead.locator(".badge").inner_text() == "on pace"

        # charts: every series drawn with a point per value
        (lumen_days,) = _one(published, "select count(*) from analytics.partner_kpis_daily where partner_id = 'lumen'"
                                        " and kpi_date <= %s", AS_OF)
        lumen_orders = page.locator('article.trend[data-partner="lumen"] figure').first
        assert lumen_orders.locator("circle.point").count() == lumen_days == 22
        assert page.locator("svg polyline").count() >= 2 * 2 + 2 * 4
        box = lumen_orders.locator("svg").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30, "the chart is drawn, not collapsed"
        objective_points = objective.locator("circle.point.actual").count()
        assert objective_points == AS_OF.day, "one attainment point per day of the month up to the as-of date"

        # alerts grouped by partner and rule, open ones first
        groups = page.locator("article.alert")
        (fired, worst) = _one(published, "select count(*), min(value) from analytics.kpi_alerts"
                                         " where rule_id = 'low_conversion' and partner_id = 'northwind'")
        assert fired == 10
        northwind_low = page.locator('article.alert[data-partner="northwind"][data-rule="low_conversion"]')
        assert northwind_low.locator('[data-column="alerts"]').inner_text() == "10"
        assert northwind_low.locator('[data-column="open_alerts"]').inner_text() == "10"
        assert northwind_low.locator('[data-column="worst_value"]').inner_text() == rate(worst)
        assert "(10 periods)" in northwind_low.locator(".periods").inner_text()
        assert groups.count() == int(_one(published, "select count(distinct (partner_id, rule_id))"
                                                    " from analytics.kpi_alerts")[0])
        assert page.locator('article.alert[data-rule="high_refund_rate"]').count() == 1

        # who owes whom this month
        assert "342.50" in page.locator("#balances").inner_text()
        opened.screenshot("scorecard.png")
        (ARTIFACTS / "scorecard.html").write_text(html, encoding="utf-8")

    with open_html(out, width=375, height=812) as phone:
        assert phone.console_errors == [] and phone.page_errors == []
        assert not scrolls_sideways(phone.page), "on a 375 px phone the page must not scroll sideways"
        shot = phone.screenshot("scorecard-phone.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_resolved_alerts_follow_the_open_ones(published):
    with psycopg.connect(published, autocommit=True) as conn:
        conn.execute("update analytics.kpi_alerts set state = 'resolved', resolved_at = fired_at"
                     " where rule_id = 'high_refund_rate'")
    try:
        html = build_scorecard(published, AS_OF)
    finally:
        with psycopg.connect(published, autocommit=True) as conn:
            conn.execute("update analytics.kpi_alerts set state = 'firing', resolved_at = null"
                         " where rule_id = 'high_refund_rate'")
    groups = re.findall(r'<article class="card alert (open|resolved)" data-partner="[^"]+" data-rule="([^"]+)"', html)
    assert groups[-1] == ("resolved", "high_refund_rate") and all(state == "open" for state, _ in groups[:-1])


def test_a_month_without_data_says_so(published):
    html = build_scorecard(published, date(2027, 3, 5))
    assert "No partner activity in February 2027 or March 2027." in html
    assert "No objectives for February 2027 or March 2027." in html
    assert "<circle" not in html and "No alerts up to 2027-03-05." not in html  # the alerts are still listed


def test_cli_writes_the_scorecard_for_its_as_of_date(published, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alliance.cli import app

    monkeypatch.setenv("ALLIANCE_WAREHOUSE_URL", published)
    out = tmp_path / "card.html"
    result = CliRunner().invoke(app, ["scorecard", "--as-of", "2026-10-31", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "The alliance: October 2026 vs September 2026" in out.read_text()
    bad = CliRunner().invoke(app, ["scorecard", "--as-of", "31/10/2026", "--out", str(out)])
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_cli_names_what_is_missing_before_anything_was_published(warehouse, tmp_path):
    from typer.testing import CliRunner

    from alliance.cli import app

    out = tmp_path / "card.html"
    result = CliRunner().invoke(app, ["scorecard", "--as-of", "2026-10-31", "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
    assert "no published analytics table" in result.output and "alliance run" in result.output
