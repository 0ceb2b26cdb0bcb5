"""The quality gate with real GX on real PostgreSQL: passes on good tables, names table and expectation on bad."""

from __future__ import annotations

import hashlib

import pytest
from test_gate_support import make_build_schema, table_counts

from alliance.gate import GX_PROJECT_DIR, run_gate
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
    assert (
        "fct_order_attribution: expect_compound_columns_to_be_unique("
        "(partner_id, order_id, attribution_model, referrer_partner_id)) failed: 2 of " in text
    )
    assert "fct_orders: expect_compound_columns_to_be_unique((partner_id, order_id)) failed: 2 of 5 rows" in text
    assert "fct_order_attribution: expect_column_values_to_be_in_set(commission_state, [pending, locked])" in text
    # the extra last-click row breaks both reconciliations: models disagree, commissions no longer add up
    assert "fct_order_attribution: unexpected_rows_expectation(reconciliation) failed: 2 unreconciled total(s)" in text
    assert any(line.startswith("partner_balances: unexpected_rows_expectation(reconciliation) failed: 1 ")
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
