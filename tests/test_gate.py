"""The quality gate with real GX on real PostgreSQL: passes on good tables, names table and expectation on bad."""

from __future__ import annotations

import hashlib

import pytest
from support.build_schema import make_build_schema, table_counts

from alliance.gate import GX_PROJECT_DIR, GateSettings, run_gate
from alliance.migrate import migrate
from alliance.publish import gate_and_publish, publish
from alliance.warehouse import connect


def _project_fingerprint() -> dict[str, str]:
    return {
        str(p.relative_to(GX_PROJECT_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(GX_PROJECT_DIR.rglob("*"))
        if p.is_file()
    }


def test_gate_passes_on_good_tables_and_writes_nothing_to_the_project(warehouse):
    make_build_schema(warehouse)
    before = _project_fingerprint()
    result = run_gate(warehouse)
    assert result.passed, result.failures
    assert result.failures == []
    assert set(result.results) >= {"fct_orders", "fct_order_attribution", "partner_kpis_daily", "dbt"}
    assert result.results["fct_orders"]["statistics"]["unsuccessful_expectations"] == 0
    assert _project_fingerprint() == before  # results in memory, no data docs, no secrets written


def test_bad_table_fails_the_gate_and_analytics_stays_as_it_was(warehouse):
    make_build_schema(warehouse, schema="alliance_build", rows=3)
    publish(warehouse, run_id="good")
    published_before = table_counts(warehouse, "analytics")

    make_build_schema(warehouse, schema="alliance_build", rows=4)
    with connect(warehouse) as conn:
        conn.execute(
            "insert into alliance_build.fct_order_attribution values "
            "('northwind', 'o1', 'last_click', 'lumen', 'click', 1.5, 100, 10, 'pending')"
        )
        conn.execute(
            "insert into alliance_build.fct_orders select * from alliance_build.fct_orders where order_id = 'o2'"
        )
        conn.execute("update alliance_build.fct_order_attribution set commission_state = 'paid' where order_id = 'o3'")

    gate, published = gate_and_publish(warehouse, run_id="bad", dbt_failures=["unique_fct_orders_id: 1 failure"])

    assert not gate.passed and published is None
    text = "\n".join(gate.failures)
    assert "dbt: unique_fct_orders_id: 1 failure" in gate.failures
    assert "fct_order_attribution: expect_column_values_to_be_between(credit, 0.0, 1.0) failed: 1 of " in text
    # key uniqueness of the fct_* marts is dbt's unique_combination test (the dbt failure above), not repeated in GX
    assert not any("to_be_unique" in line for line in gate.failures)
    assert ("fct_order_attribution: expect_column_values_to_be_in_set(commission_state, [pending, locked, held, "
            "rejected, approved])") in text
    # the extra last-click row breaks both reconciliations: models disagree, commissions no longer add up
    assert "fct_order_attribution: expect_no_unexpected_rows(reconciliation) failed: 2 unreconciled total(s)" in text
    assert any(line.startswith("partner_balances: expect_no_unexpected_rows(reconciliation) failed: 1 ")
               and "attribution_commission_rc=620.00" in line for line in gate.failures), gate.failures
    assert not any(line.startswith(("fct_referrals", "partner_kpis_daily")) for line in gate.failures)
    assert table_counts(warehouse, "analytics") == published_before
    with connect(warehouse) as conn:
        status, step, message = conn.execute(
            "select status, step, message from ops.runs where run_id = 'bad'"
        ).fetchone()
        kept = conn.execute("select count(*) from alliance_build.fct_orders").fetchone()[0]
    assert kept == 5  # the failed build stays for inspection
    assert (status, step) == ("gate_failed", "gate")
    assert "credit" in message


def test_missing_table_and_missing_schema_are_named(warehouse):
    missing_schema = run_gate(warehouse, build_schema="alliance_build")
    assert not missing_schema.passed
    assert missing_schema.failures == ["build schema `alliance_build` does not exist: run `dbt build` before the gate"]

    make_build_schema(warehouse)
    with connect(warehouse) as conn:
        conn.execute("drop table alliance_build.partner_balances")
        conn.execute("alter table alliance_build.fct_referrals alter column clicked_at type timestamp")
    result = run_gate(warehouse)
    assert not result.passed
    assert "partner_balances: table missing from build schema `alliance_build` (did dbt build it?)" in result.failures
    assert any(
        f.startswith("fct_referrals: expect_column_values_to_be_in_type_list(clicked_at, [TIMESTAMP WITH TIME ZONE])")
        and "TIMESTAMP WITHOUT TIME ZONE" in f
        for f in result.failures
    ), result.failures


def test_gate_rejects_unsafe_schema_names(warehouse):
    with pytest.raises(Exception, match="not a plain lower-case SQL identifier"):
        run_gate(warehouse, build_schema="x; drop schema raw")


RAW_ORDER = ("insert into raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload, load_id, "
             "loaded_at) values ('northwind', '{id}', 'shopify', {updated}, 'k1', '{{}}', gen_random_uuid(), {loaded})")

# One injected fault per case: what it does to the build (or raw), and the line the gate must print.
INJECTIONS = {
    "duplicate-key": (
        ["insert into alliance_build.objective_progress select * from alliance_build.objective_progress"],
        "objective_progress: expect_compound_columns_to_be_unique((partner_id, month, metric)) failed: 2 of 2 rows, "
        "e.g. (northwind, 2026-10-01, referred_orders); (northwind, 2026-10-01, referred_orders) | sample: "
        "(partner_id=northwind, month=2026-10-01, metric=referred_orders)"),
    "negative-amount": (
        ["update alliance_build.fct_orders set refunded_amount_rc = -3.50 where order_id = 'o7'"],
        "fct_orders: expect_column_values_to_be_between(refunded_amount_rc, 0.0) failed: 1 of 200 rows, e.g. -3.50"
        " | sample: (partner_id=northwind, order_id=o7, refunded_amount_rc=-3.50)"),
    "future-date": (
        ["update alliance_build.fct_orders set ordered_at = now() + interval '3 days' where order_id = 'o9'"],
        "fct_orders: expect_column_values_to_be_between(ordered_at, "),
    "email-in-a-column": (
        ["update alliance_build.fct_referrals set referral_code = 'Jane.Doe@Example.co.uk' where click_id = 'c5'"],
        "fct_referrals: expect_no_unexpected_rows(no_email) failed: 1 row(s) with an e-mail address | sample: "
        "(column_with_email=referral_code, click_id=c5, referrer_partner_id=lumen, destination_partner_id=northwind,"
        " referral_code=<e-mail>)"),
    "row-count-collapse": (
        ["delete from alliance_build.fct_orders where order_id <> 'o1'"],
        "fct_orders: expect_table_row_count_to_be_between(row_count_change) failed: observed 1 rows, published "
        "snapshot has 200; allowed 100..any"),
    "raw-future-date": (
        [("raw", "o-late", "now() + interval '2 days'", "now()")],
        "raw.orders: expect_column_values_to_be_between(updated_at, "),
    "raw-stale-partner": (
        [("raw", "o-old", "now() - interval '9 days'", "now() - interval '3 days'")],
        "raw.orders: expect_no_unexpected_rows(freshness) failed: 1 stale partner(s) | sample: "
        "(partner_id=northwind"),
}


@pytest.fixture(scope="module")
def published_200(fresh_database_factory):
    """A warehouse with a published 200-row snapshot and raw tables (shared by the injection cases)."""
    url = fresh_database_factory("gate")
    make_build_schema(url, rows=200)
    publish(url, run_id="baseline")
    with connect(url) as conn:
        migrate(conn)
    return url


@pytest.mark.parametrize("case", list(INJECTIONS))
def test_injected_bad_data_blocks_publication_with_the_right_message(published_200, case, monkeypatch):
    url = published_200
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_URL", url)
    statements, expected = INJECTIONS[case]
    before = table_counts(url, "analytics")
    with connect(url) as conn:
        conn.execute("drop schema if exists alliance_build cascade")
        conn.execute("truncate raw.orders")
    make_build_schema(url, rows=200)
    with connect(url) as conn:
        for statement in statements:
            if isinstance(statement, tuple):
                _, order_id, updated, loaded = statement
                conn.execute(RAW_ORDER.format(id=order_id, updated=updated, loaded=loaded))
            else:
                conn.execute(statement)
    gate, result = gate_and_publish(url, run_id=f"bad-{case}", settings=GateSettings(row_count_floor=100))
    assert not gate.passed and result is None
    assert any(line.startswith(expected) for line in gate.failures), gate.failures
    assert len(gate.failures) == 1, gate.failures  # exactly this check, nothing else
    assert "@" not in "\n".join(gate.failures)  # an e-mail is never printed, even as a sample
    assert table_counts(url, "analytics") == before
    with connect(url) as conn:
        assert _live(conn) == "alliance published snapshot, run baseline"
        status, failures = conn.execute("select status, failures from ops.runs where run_id = %s",
                                        (f"bad-{case}",)).fetchone()
        kept = conn.execute("select to_regclass('alliance_build.fct_orders') is not null").fetchone()[0]
    assert status == "gate_failed" and failures[0]["expectation"] in gate.failures[0]
    assert failures[0]["table"] in gate.failures[0] and "@" not in str(failures)
    assert kept  # the failing build stays for inspection


def _live(conn) -> str:
    return conn.execute("select obj_description('analytics'::regnamespace, 'pg_namespace')").fetchone()[0]


def test_data_docs_are_built_under_alliance_home_on_failure(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    make_build_schema(warehouse)
    with connect(warehouse) as conn:
        conn.execute("update alliance_build.fct_orders set is_test = null where order_id = 'o1'")
    result = run_gate(warehouse, settings=GateSettings(data_docs="on_failure"))
    assert not result.passed
    assert result.data_docs == tmp_path / "gx_data_docs" / "index.html" and result.data_docs.is_file()
    pages = list((tmp_path / "gx_data_docs" / "validations").rglob("*.html"))
    assert any("fct_orders" in str(p) for p in pages), pages
    assert "is_test" in "".join(p.read_text() for p in pages if "fct_orders" in str(p))


def test_run_check_prints_and_stores_the_failure_report(warehouse, monkeypatch, tmp_path):
    from alliance.run import StepFailed, check

    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    make_build_schema(warehouse)
    with connect(warehouse) as conn:
        conn.execute("update alliance_build.fct_orders set customer_key = 'ann@shop.example' where order_id = 'o4'")
    with pytest.raises(StepFailed) as failed:
        check("run-x", ["not_null_fct_orders_currency: 2 failures"], warehouse)
    text = str(failed.value)
    assert text.startswith("quality gate failed, analytics left unchanged:")
    assert "dbt: not_null_fct_orders_currency: 2 failures" in text
    assert "fct_orders: expect_no_unexpected_rows(no_email) failed: 1 row(s) with an e-mail address" in text
    assert f"GX Data Docs: {tmp_path / 'gx_data_docs' / 'index.html'}" in text
    assert "failing build kept for inspection in schema alliance_build" in text and "ann@" not in text
    with connect(warehouse) as conn:
        row = conn.execute("select status, checks_failed, failures, data_docs from ops.runs"
                           " where run_id = 'run-x'").fetchone()
        run_log = conn.execute("select status, message from ops.runs where run_id = 'run-x'").fetchone()
    status, failed_checks, failures, docs = row
    assert (status, failed_checks) == ("gate_failed", 2) and docs.endswith("index.html")
    email = next(f for f in failures if f["table"] == "fct_orders")
    assert email["column"] == "customer_key" and email["sample_rows"][0]["order_id"] == "o4"
    assert email["sample_rows"][0]["customer_key"] == "<e-mail>"
    assert run_log[0] == "gate_failed" and "no_email" in run_log[1]
