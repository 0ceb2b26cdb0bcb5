"""Partner statements (§9.1) on the oracle world (tests/data/oracle_alliance.yml: every §8 term, holds, reviews,
clawbacks, adjustments), ingested from the sandbox and transformed in-process with a pinned as-of date.

- analytics.partner_statement_lines matches the independent oracle cell by cell, and its in-total lines add up to
  partner_balances to the cent for every partner, month, direction and counterparty;
- the transform issues a month's statements on the first run after its lock date and not before, leaves them alone
  when nothing changed, and rewrites them with `revised` set when a later run changes the month;
- `alliance statements` writes CSV + HTML and refuses a bad month or an unknown partner with a clear message;
- the HTML renders in a real browser (Chromium through Playwright), loads nothing but itself, and shows the CSV's
  totals.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from oracle_compare import compare_published, summarize
from support.browser import open_html
from test_end_to_end import WORLD_CONFIG, ingest_and_transform, oracle_truth, sandbox_for

from alliance.config import load_config

ALLIANCE = str(Path(sys.executable).with_name("alliance"))
AS_OF = date(2026, 12, 5)  # October (lock 11-30) and the months before locked; November (12-30) still pending
LATER = date(2026, 12, 31)  # the next run: November has locked too
EXTRA_ADJUSTMENT = "2026-10,lumen,northwind,12.34,late correction of October\n"


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def csv_totals(path: Path) -> dict[str, Decimal]:
    """`earned` / `owed` and `earned:<counterparty>` ... from the CSV's total rows."""
    totals = {}
    for row in read_csv(path):
        if row["row_type"] == "direction_total":
            totals[row["direction"]] = Decimal(row["amount_rc"])
        elif row["row_type"] == "counterparty_total":
            totals[f"{row['direction']}:{row['counterparty_partner_id']}"] = Decimal(row["amount_rc"])
    return totals


@pytest.fixture(scope="module")
def world(fresh_database_factory, tmp_path_factory):
    """The oracle world ingested and transformed once at AS_OF; statements go to a folder of this module."""
    home = tmp_path_factory.mktemp("statements_home")
    mp = pytest.MonkeyPatch()
    url = fresh_database_factory("stmt")
    mp.setenv("ALLIANCE_WAREHOUSE_URL", url)
    mp.setenv("ALLIANCE_HOME", str(home / "home"))
    mp.setenv("ALLIANCE_STATEMENTS_DIR", str(home / "statements"))
    with sandbox_for(WORLD_CONFIG, mp) as sandbox:
        outcome, landed = ingest_and_transform(WORLD_CONFIG, url, AS_OF)
        truth = oracle_truth(WORLD_CONFIG, sandbox, AS_OF, landed_at=landed)
        yield {"url": url, "out": home / "statements", "truth": truth, "outcome": outcome, "home": home, "mp": mp}
    mp.undo()


def test_statement_lines_match_the_oracle_and_total_to_partner_balances(world):
    url = world["url"]
    diffs = compare_published(url, world["truth"], os.environ["ALLIANCE_PII_SALT"],
                              tables=("partner_statement_lines",))
    assert not diffs, summarize(diffs)
    kinds = {k for (k,) in rows(url, "select distinct line_kind from analytics.partner_statement_lines")}
    assert kinds == {"order", "clawback", "manual", "approval", "held", "rejected"}, "the world has every kind"
    assert rows(url, "select bool_or(is_capped) from analytics.partner_statement_lines") == [(True,)]

    sums: dict[tuple, Decimal] = defaultdict(Decimal)
    for partner, month, direction, other, amount in rows(url, """
            select partner_id, month, direction, counterparty_partner_id, amount_rc
            from analytics.partner_statement_lines where in_totals"""):
        sums[(partner, month, direction, other)] += amount
    balances = {}
    for referrer, destination, month, balance in rows(url, """
            select referrer_partner_id, destination_partner_id, month, balance_rc from analytics.partner_balances"""):
        balances[(referrer, month, "earned", destination)] = balance
        balances[(destination, month, "owed", referrer)] = balance
    assert len(balances) >= 20
    for key, balance in balances.items():
        assert sums.get(key, Decimal("0")) == balance, key
    assert set(sums) <= set(balances), "no in-total line outside a balance row"
    # never netted: a pair's lines sit in both partners' statements, once per direction
    assert rows(url, """select count(*) from analytics.partner_statement_lines e
                        join analytics.partner_statement_lines o using (line_key, referrer_partner_id,
                                                                        destination_partner_id)
                        where e.direction = 'earned' and o.direction = 'owed'""") == rows(
        url, "select count(*) / 2 from analytics.partner_statement_lines")


def test_first_run_after_the_lock_date_issues_locked_months_only(world):
    url, out = world["url"], world["out"]
    issued = world["outcome"].statements
    locked = {m for (m,) in rows(url, "select distinct month from analytics.partner_balances where state = 'locked'")}
    assert date(2026, 10, 1) in locked and max(locked) == date(2026, 10, 1), "October locked on AS_OF, not November"
    expected = set(rows(url, "select distinct month, partner_id from analytics.partner_statement_lines"
                             " where month = any(%s)", (list(locked),)))
    assert set(issued.first) == expected and not issued.revised
    recorded = rows(url, "select month, partner_id, revision, revised_at from ops.statement_issues")
    assert {(m, p) for m, p, _, _ in recorded} == expected
    assert all(revision == 0 and revised_at is None for _, _, revision, revised_at in recorded)
    assert not (out / "2026-11").exists(), "November is still pending on AS_OF: no statement yet"
    for month, partner in expected:
        path = out / f"{month:%Y-%m}" / f"{partner}.csv"
        body = read_csv(path)
        assert {(r["revision"], r["revised"]) for r in body} == {("0", "false")}
        totals = csv_totals(path)
        for direction, side in (("earned", "referrer_partner_id"), ("owed", "destination_partner_id")):
            [(balance,)] = rows(url, f"select coalesce(sum(balance_rc), 0) from analytics.partner_balances"
                                     f" where month = %s and {side} = %s", (month, partner))
            assert totals[direction] == balance, (month, partner, direction)
        assert (out / f"{month:%Y-%m}" / f"{partner}.html").stat().st_size > 1000


def test_a_run_that_changes_nothing_rewrites_nothing(world):
    from alliance.statements import issue_statements

    before = {p: p.stat().st_mtime_ns for p in world["out"].rglob("*.*")}
    again = issue_statements(world["url"], out_dir=world["out"])
    assert not again.written and again.unchanged == len(world["outcome"].statements.first)
    assert {p: p.stat().st_mtime_ns for p in world["out"].rglob("*.*")} == before


def test_a_run_reads_only_the_statements_whose_sources_moved(world, monkeypatch):
    """Each issued statement keeps a fingerprint of its lines and balances; a run reads, renders and hashes only the
    statements whose fingerprint moved (at 1M orders, reading every locked month took 40 s a run). A lost
    fingerprint costs one read and no revision; a changed source row is read again."""
    from alliance.statements import issue as issuing
    from alliance.statements import issue_statements

    url, out = world["url"], world["out"]
    recorded = rows(url, "select month, partner_id, source_fingerprint from ops.statement_issues")
    assert recorded and all(fingerprint for _, _, fingerprint in recorded)
    read: list[tuple] = []
    real_read = issuing.read_statements
    monkeypatch.setattr(issuing, "read_statements",
                        lambda conn, **kw: read.append(tuple(kw.get("months") or ())) or real_read(conn, **kw))

    assert not issue_statements(url, out_dir=out).written and read == [], "nothing moved: no statement read"

    month, partner = recorded[0][0], recorded[0][1]
    with psycopg.connect(url) as conn:  # the fingerprint is lost (e.g. issued before migration 0020)
        conn.execute("update ops.statement_issues set source_fingerprint = null where month = %s and partner_id = %s",
                     (month, partner))
    again = issue_statements(url, out_dir=out)
    assert not again.written and read == [(month,)], "read once, same content: not revised"
    assert again.unchanged == len(recorded)
    assert rows(url, "select source_fingerprint from ops.statement_issues where month = %s and partner_id = %s",
                (month, partner)) == [(recorded[0][2],)]

    read.clear()
    # a source row moves without changing what the statements say (a balance column they do not show): the month's
    # statements are read again, and none is revised
    bump = "update analytics.partner_balances set attributed_orders = attributed_orders + %s where month = %s"
    with psycopg.connect(url) as conn:
        conn.execute(bump, (1, month))
    try:
        moved = issue_statements(url, out_dir=out)
        assert read == [(month,)] and not moved.written
    finally:
        with psycopg.connect(url) as conn:
            conn.execute(bump, (-1, month))
    issue_statements(url, out_dir=out)


def test_cli_writes_a_partner_month_and_refuses_bad_input(world, tmp_path):
    env = {**os.environ, "COLUMNS": "200", "ALLIANCE_WAREHOUSE_URL": world["url"]}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ALLIANCE, "statements", "--config", str(WORLD_CONFIG), *args], capture_output=True,
                              text=True, env=env, timeout=300)

    done = cli("--month", "2026-11", "--partner", "lumen", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "2026-11").iterdir()) == ["lumen.csv", "lumen.html"]
    html = (tmp_path / "2026-11" / "lumen.html").read_text()
    assert "draft, not issued" in html and "Lumen Home" in html, "November is not issued yet"

    bad_month = cli("--month", "2026-13", "--out", str(tmp_path))
    assert bad_month.returncode == 2 and "--month: `2026-13` is not a month; use YYYY-MM" in bad_month.stderr
    unknown = cli("--month", "2026-10", "--partner", "nobody", "--out", str(tmp_path))
    assert unknown.returncode == 2 and "no partner `nobody`" in unknown.stderr and "northwind" in unknown.stderr
    empty = cli("--month", "2025-01", "--out", str(tmp_path))
    assert empty.returncode == 1 and "no statement lines published for 2025-01" in empty.stderr
    assert not (tmp_path / "2025-01").exists() and not (tmp_path / "2026-13").exists()


def test_statement_renders_in_chromium_with_the_csv_totals(world):
    folder = world["out"] / "2026-10"
    totals = csv_totals(folder / "northwind.csv")
    with open_html(folder / "northwind.html", width=1280, height=900) as opened:
        page = opened.page
        assert opened.console_errors == [] and opened.page_errors == []
        assert opened.requests == [(folder / "northwind.html").resolve().as_uri()], "loads nothing but itself"
        assert page.title() == "Statement 2026-10 - Northwind Outfitters"
        shown = {}
        for cell in page.locator("[data-total]").all():
            shown[cell.get_attribute("data-total")] = cell
        for cell in page.locator("[data-subtotal]").all():
            shown[cell.get_attribute("data-subtotal")] = cell
        assert set(shown) == set(totals)
        for key, cell in shown.items():
            assert cell.is_visible(), key
            assert Decimal(cell.inner_text().replace(",", "")) == totals[key], key
        assert page.locator("h2").all_inner_texts()[0].startswith("Earned as referrer: ")
        assert page.locator("tr[data-apart]").count() > 0, "held or rejected rows listed apart"
        assert page.locator("[data-revision='0']").is_visible()
        shot = opened.screenshot("statement.png")
    assert shot.stat().st_size > 20_000


def test_a_later_run_revises_a_changed_month_and_issues_the_newly_locked_one(world, tmp_path):
    """October gets a new manual line (adjustments file edited) and the run's date moves past November's lock."""
    from alliance.run import transform

    url, out = world["url"], world["out"]
    adjustments = tmp_path / "adjustments.csv"
    adjustments.write_text((WORLD_CONFIG.parent / "oracle_adjustments.csv").read_text() + EXTRA_ADJUSTMENT)
    text = WORLD_CONFIG.read_text()
    for name in ("oracle_reviews.csv", "../../config/demo_fx_rates.csv", "../../config/alerts.yml"):
        text = text.replace(f": {name}", f": {(WORLD_CONFIG.parent / name).resolve()}")
    config = tmp_path / "alliance.yml"
    config.write_text(text.replace("adjustments: oracle_adjustments.csv", f"adjustments: {adjustments}"))
    before = {p: p.read_bytes() for p in (out / "2026-09").iterdir()}

    outcome = transform(load_config(config), url, as_of=LATER)
    assert outcome.published, outcome.failures
    issued = outcome.statements
    assert set(issued.revised) == {(date(2026, 10, 1), "lumen"), (date(2026, 10, 1), "northwind")}
    assert {m for m, _ in issued.first} == {date(2026, 11, 1)}
    assert {p: p.read_bytes() for p in (out / "2026-09").iterdir()} == before, "September unchanged, not rewritten"

    for partner, direction, other in (("lumen", "earned", "northwind"), ("northwind", "owed", "lumen")):
        body = read_csv(out / "2026-10" / f"{partner}.csv")
        assert {(r["revision"], r["revised"]) for r in body} == {("1", "true")}
        assert [r for r in body if r["line_kind"] == "manual" and r["amount_rc"] == "12.34"
                and r["direction"] == direction and r["reason"] == "late correction of October"]
        [(balance,)] = rows(url, "select balance_rc from analytics.partner_balances where month = '2026-10-01'"
                                 " and referrer_partner_id = 'lumen' and destination_partner_id = 'northwind'")
        assert csv_totals(out / "2026-10" / f"{partner}.csv")[f"{direction}:{other}"] == balance
        assert "revised (revision 1)" in (out / "2026-10" / f"{partner}.html").read_text()
    assert rows(url, "select revision, revised_at is not null from ops.statement_issues"
                     " where month = '2026-10-01' and partner_id = 'lumen'") == [(1, True)]
    assert (out / "2026-11").is_dir()
