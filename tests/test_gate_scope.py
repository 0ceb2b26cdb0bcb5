"""The gate of an incremental build checks the rows it rewrote plus whole-table invariants; a full build, every row.

Real dbt, GX and PostgreSQL on a synthetic alliance (bench/transform/generate.py) run as in production: a full build
and two incremental ones, each published, then an incremental build whose gate is tested. Each bad row or total is
injected into the build schema, the gate run, and the injection undone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.gate import GateSettings, run_gate
from alliance.gate_scope import GateScope
from alliance.incremental import dbt_build
from alliance.migrate import migrate
from alliance.publish import publish

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.transform.generate import Generator  # noqa: E402

SCHEMA = "scope_build"
HISTORY_UNTIL = datetime(2026, 11, 30, 23, tzinfo=UTC)
AS_OF = datetime(2026, 12, 1, tzinfo=UTC).date()
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # "not in the future" bound (changes bump updated_at by 100 days); no wall clock
# no freshness bound (the synthetic history is old by design); row-count bounds apply from 100 published rows
SETTINGS = GateSettings(freshness_hours=None, row_count_floor=100)


@pytest.fixture(scope="module")
def world(fresh_database_factory) -> str:
    url = fresh_database_factory("scope")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=AS_OF)
    gen = Generator(config, seed=5)
    gen.write(url, 2000, history_until=HISTORY_UNTIL, step_seconds=60)
    full = dbt_build(url, SCHEMA, dbt_vars)
    assert full.full_refresh and full.outcome.success, full.outcome.failures
    with psycopg.connect(url) as conn:
        assert conn.execute("select full_refresh from ops.build_scopes where build_schema = %s",
                            (SCHEMA,)).fetchone() == (True,)
    whole = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    assert whole.passed, whole.failures
    assert whole.scope == "every row (full build)" and whole.results["fct_orders"]["rows"] == "all"
    publish(url, SCHEMA, run_id="r1")
    for run, day in (("r2", 3), ("r3", 4), ("r4", 5)):
        gen.write(url, 10, start=datetime(2026, 11, day, tzinfo=UTC), span_seconds=86400)
        assert gen.change(url, 5) == 5
        build = dbt_build(url, SCHEMA, dbt_vars)
        assert not build.full_refresh and build.outcome.success, build.outcome.failures
        if run != "r4":
            publish(url, SCHEMA, run_id=run)
    return url


def _scoped_orders(url: str) -> list[tuple[str, str]]:
    """Orders the last build rewrote (recomputed after the snapshot's state), as ops.build_scopes records it."""
    with psycopg.connect(url) as conn:
        after = conn.execute("select orders_after from ops.build_scopes where build_schema = %s",
                             (SCHEMA,)).fetchone()[0]
        return conn.execute(f"select partner_id, order_id from {SCHEMA}_work.int_orders__enriched"
                            " where _recomputed_at > %s order by 1, 2", (after,)).fetchall()


@contextmanager
def injected(url: str, do: str, undo: str, args: tuple = ()) -> Iterator[None]:
    with psycopg.connect(url) as conn:
        conn.execute(do, args)
    try:
        yield
    finally:
        with psycopg.connect(url) as conn:
            conn.execute(undo, args)


def test_incremental_gate_reads_the_rewritten_rows_and_passes(world) -> None:
    url = world
    result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    assert result.passed, result.failures
    assert result.scope.startswith("rows rewritten since the snapshot")
    with psycopg.connect(url) as conn:
        total = conn.execute(f"select count(*) from {SCHEMA}.fct_orders").fetchone()[0]
        gate_schema_left = conn.execute("select to_regnamespace(%s)", (f"{SCHEMA}_gate",)).fetchone()[0]
    rewritten = len(_scoped_orders(url))
    assert result.scope_keys["orders"] >= rewritten >= 40, "r2..r4's new and changed orders at least"
    assert result.scope_keys["orders"] < total * 0.2, "the gate reads the rewritten orders, not history"
    for table in ("fct_orders", "fct_order_attribution", "fct_referrals", "partner_statement_lines", "raw.orders",
                  "raw.clicks"):
        assert result.results[table]["rows"] == "rewritten", table
    for table in ("partner_balances", "partner_kpis_daily", "commission_adjustments", "partner_claims"):
        assert result.results[table]["rows"] == "all", table
    assert gate_schema_left is None, "the gate's scope views are dropped when it ends"
    assert result.results["scope copies"]["concurrent"], "copied beside the suites of the tables not copied"
    # the whole-table counts it took, exact, for its publish to keep instead of counting again
    with psycopg.connect(url) as conn:
        exact = {t: conn.execute(f"select count(*) from {SCHEMA}.{t}").fetchone()[0]
                 for t in ("fct_orders", "fct_order_attribution", "fct_referrals", "partner_statement_lines")}
    assert result.row_counts == exact and exact["fct_orders"] == total


def test_bad_rewritten_row_fails_the_incremental_gate(world) -> None:
    url = world
    partner_id, order_id = _scoped_orders(url)[0]
    with injected(url, f"update {SCHEMA}.fct_orders set commissionable_amount = -commissionable_amount - 1"
                       " where partner_id = %s and order_id = %s",
                  f"update {SCHEMA}.fct_orders set commissionable_amount = -commissionable_amount - 1"
                  " where partner_id = %s and order_id = %s", (partner_id, order_id)):
        result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    assert not result.passed
    assert any(line.startswith("fct_orders: expect_column_values_to_be_between(commissionable_amount, 0.0)")
               and "1 of " in line for line in result.failures), result.failures


def test_untouched_rows_are_left_to_full_builds(world) -> None:
    """A row no build rewrote passed the gate of the build that wrote it; only a whole gate reads it again."""
    url = world
    scoped = set(_scoped_orders(url))
    with psycopg.connect(url) as conn:
        partner_id, order_id = next(row for row in conn.execute(
            f"select partner_id, order_id from {SCHEMA}.fct_orders order by 1, 2") if tuple(row) not in scoped)
    swap = (f"update {SCHEMA}.fct_orders set commissionable_amount = -commissionable_amount - 1"
            " where partner_id = %s and order_id = %s")
    with injected(url, swap, swap, (partner_id, order_id)):
        scoped_gate = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
        whole_gate = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW, scope=GateScope())
    assert scoped_gate.passed, scoped_gate.failures
    assert not whole_gate.passed and whole_gate.scope == "every row (full build)"
    assert any(line.startswith("fct_orders: expect_column_values_to_be_between(commissionable_amount, 0.0)")
               for line in whole_gate.failures), whole_gate.failures


def test_bad_landed_click_and_bad_rewritten_referral_fail_the_incremental_gate(world) -> None:
    """The raw rows the build took in are read through a view on the loaded_at index, the rewritten clicks'
    referrals through int_network__clicks' `_dbt_run_at`: a bad row in either fails the gate; one landed before the
    snapshot is left to full builds."""
    url = world
    with psycopg.connect(url) as conn:
        raw_after, clicks_after = conn.execute("select raw_clicks_after, clicks_after from ops.build_scopes"
                                               " where build_schema = %s", (SCHEMA,)).fetchone()
        landed = conn.execute("select network_id, click_id from raw.clicks where loaded_at > %s order by 1, 2"
                              " limit 1", (raw_after,)).fetchone()
        old = conn.execute("select network_id, click_id from raw.clicks where loaded_at <= %s order by 1, 2"
                           " limit 1", (raw_after,)).fetchone()
        rewritten = conn.execute(f"select network_id, click_id from {SCHEMA}_work.int_network__clicks"
                                 " where _dbt_run_at > %s order by 1, 2 limit 1", (clicks_after,)).fetchone()
    assert landed and old and rewritten
    future = "clicked_at = clicked_at + interval '20 years'"
    past = "clicked_at = clicked_at - interval '20 years'"
    for table, key in (("raw.clicks", landed), (f"{SCHEMA}.fct_referrals", rewritten)):
        where = " where network_id = %s and click_id = %s"
        with injected(url, f"update {table} set {future}{where}", f"update {table} set {past}{where}", key):
            result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
        label = "raw.clicks" if table == "raw.clicks" else "fct_referrals"
        assert not result.passed and any(line.startswith(f"{label}: expect_column_values_to_be_between(clicked_at")
                                         for line in result.failures), (table, result.failures)
    with injected(url, f"update raw.clicks set {future} where network_id = %s and click_id = %s",
                  f"update raw.clicks set {past} where network_id = %s and click_id = %s", old):
        assert run_gate(url, SCHEMA, settings=SETTINGS, now=NOW).passed, "landed before the snapshot: not read"


def test_whole_table_row_count_is_checked_outside_the_rewritten_rows(world) -> None:
    url = world
    with psycopg.connect(url) as conn:
        conn.execute(f"create table {SCHEMA}_work.kept_referrals as select * from {SCHEMA}.fct_referrals")
    with injected(url, f"delete from {SCHEMA}.fct_referrals where click_id in (select click_id from "
                       f"{SCHEMA}.fct_referrals order by clicked_at limit (select count(*) * 0.6 from "
                       f"{SCHEMA}.fct_referrals)::bigint)",
                  f"insert into {SCHEMA}.fct_referrals select * from {SCHEMA}_work.kept_referrals k where not exists"
                  f" (select 1 from {SCHEMA}.fct_referrals r where r.network_id = k.network_id"
                  f" and r.click_id = k.click_id); drop table {SCHEMA}_work.kept_referrals"):
        result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    assert not result.passed
    lines = [line for line in result.failures if line.startswith("fct_referrals: expect_table_row_count")]
    assert len(lines) == 1 and "(whole table)" in lines[0] and "published snapshot has" in lines[0], result.failures


def test_money_reconciliation_uses_the_kept_totals(world) -> None:
    """KPIs and balances are checked against the partner totals the build keeps by difference, not a full scan."""
    url = world
    with psycopg.connect(url) as conn:
        day, partner = conn.execute(f"select kpi_date, partner_id from {SCHEMA}.partner_kpis_daily"
                                    " where commission_earned_rc > 0 order by 1, 2 limit 1").fetchone()
    bump = (f"update {SCHEMA}.partner_kpis_daily set commission_earned_rc = commission_earned_rc + %s"
            " where kpi_date = %s and partner_id = %s")
    with psycopg.connect(url) as conn:
        conn.execute(bump, (1, day, partner))
    try:
        result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    finally:
        with psycopg.connect(url) as conn:
            conn.execute(bump, (-1, day, partner))
    assert not result.passed
    assert any(line.startswith("partner_balances: expect_no_unexpected_rows(reconciliation)")
               for line in result.failures), result.failures
    assert run_gate(url, SCHEMA, settings=SETTINGS, now=NOW).passed, "the injection was undone"


def test_a_build_that_rewrote_nothing_is_judged_on_its_whole_tables(world) -> None:
    """Nothing landed since: the copies are empty, and "fct_orders has rows" is judged on the table, not the copy."""
    url = world
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    dbt_build(url, SCHEMA, dbt_vars_from_config(config, as_of_date=AS_OF))
    again = dbt_build(url, SCHEMA, dbt_vars_from_config(config, as_of_date=AS_OF))
    assert again.outcome.success and not again.full_refresh, again.outcome.failures
    result = run_gate(url, SCHEMA, settings=SETTINGS, now=NOW)
    assert result.scope_keys["orders"] == result.scope_keys["clicks"] == 0, result.scope_keys
    assert result.passed, result.failures


def test_large_tables_carry_the_partial_indexes_their_readers_need(world) -> None:
    """The lookups a one-order build makes by a rare condition (late events, approvals and clawbacks, a programme
    month, non-order statement lines) go through partial indexes the models' post-hooks keep, one per label."""
    with psycopg.connect(world) as conn:
        found = {(table, name.rsplit("_", 1)[1]): definition for table, name, definition in conn.execute(
            "select tablename, indexname, indexdef from pg_indexes where schemaname in (%s, %s)"
            " and indexdef like '%% WHERE %%'", (SCHEMA, f"{SCHEMA}_work"))}
    assert set(found) >= {("int_orders__enriched", "late"), ("int_order_attribution", "adjusted"),
                          ("int_order_attribution", "months"), ("partner_statement_lines", "other")}, found
    assert "WHERE is_commission_model" in found[("int_order_attribution", "months")]


def test_row_counts_are_kept_by_difference_through_builds_and_publishes(world) -> None:
    """The scoped tables' row counts (ops.table_row_counts, kept by the `keep_row_count` triggers) are exact in every
    schema holding them after a full build, incremental builds and publishes (the tables move between schemas by
    renames); a table whose triggers are disabled is counted, not trusted."""
    from alliance.gate_scope import row_counts, scoped_tables

    with psycopg.connect(world) as conn:
        kept = conn.execute("select n.nspname, c.relname, k.row_count from ops.table_row_counts k"
                            " join pg_class c on c.oid = k.table_oid"
                            " join pg_namespace n on n.oid = c.relnamespace").fetchall()
        by_schema: dict[str, set[str]] = {}
        for schema, table, count in kept:
            by_schema.setdefault(schema, set()).add(table)
            exact = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            assert count == exact, (schema, table, count, exact)
        assert by_schema[SCHEMA] == by_schema["analytics"] == set(scoped_tables()), by_schema
        exact_orders = conn.execute(f"select count(*) from {SCHEMA}.fct_orders").fetchone()[0]
        conn.execute(f"update ops.table_row_counts set row_count = row_count + 7"
                     f" where table_oid = '{SCHEMA}.fct_orders'::regclass")
        assert row_counts(conn, SCHEMA, ("fct_orders",)) == {"fct_orders": exact_orders + 7}, "the kept count is read"
        conn.execute(f"alter table {SCHEMA}.fct_orders disable trigger alliance_row_count_delete")
        assert row_counts(conn, SCHEMA, ("fct_orders",)) == {"fct_orders": exact_orders}, "disabled: counted"
        conn.rollback()


def test_statement_totals_are_kept_by_difference_and_reconcile_an_incremental_build(world) -> None:
    """partner_statement_lines' section totals (ops.statement_line_totals) equal the lines' sums after the builds and
    publishes; an incremental run's assert_statement_lines_match_balances reads them, so a line the balances do not
    have fails it, naming the section; a line's money cannot be updated in place (the totals would drift)."""
    from alliance.dbt_runner import run_dbt

    sums = ("select referrer_partner_id, destination_partner_id, month, direction, count(*),"
            " count(*) filter (where in_totals), coalesce(sum(amount_rc) filter (where in_totals), 0)"
            " from {}.partner_statement_lines group by 1, 2, 3, 4")
    kept = ("select referrer_partner_id, destination_partner_id, month, direction, line_count, in_totals_count,"
            " lines_rc from ops.statement_line_totals where table_oid = '{}.partner_statement_lines'::regclass")
    with psycopg.connect(world) as conn:
        for schema in (SCHEMA, "analytics"):
            expected = sorted(conn.execute(sums.format(schema)).fetchall())
            assert len(expected) > 4 and sorted(conn.execute(kept.format(schema)).fetchall()) == expected, schema
        line = conn.execute(f"select line_key, partner_id, direction, counterparty_partner_id"
                            f" from {SCHEMA}.partner_statement_lines where line_kind = 'order' and in_totals"
                            f" limit 1").fetchone()
        with pytest.raises(psycopg.errors.RaiseException, match="written once"):
            conn.execute(f"update {SCHEMA}.partner_statement_lines set amount_rc = amount_rc + 1"
                         " where line_key = %s and partner_id = %s and direction = %s"
                         " and counterparty_partner_id = %s", line)
        conn.rollback()
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    dbt_vars = dbt_vars_from_config(config, as_of_date=AS_OF)
    reconcile = ["test", "--select", "assert_statement_lines_match_balances"]
    with psycopg.connect(world) as conn:  # one more in-total line (another key) that partner_balances does not have
        conn.execute(f"create temp table injected as select * from {SCHEMA}.partner_statement_lines"
                     " where line_kind = 'order' and in_totals and amount_rc > 0 limit 1")
        conn.execute("update injected set line_key = line_key || ':injected'")
        conn.execute(f"insert into {SCHEMA}.partner_statement_lines select * from injected")
    try:
        outcome = run_dbt(reconcile, world, SCHEMA, vars=dbt_vars)
    finally:
        with psycopg.connect(world) as conn:
            conn.execute(f"delete from {SCHEMA}.partner_statement_lines where line_key like '%:injected'")
    assert not outcome.success and any("assert_statement_lines_match_balances" in f for f in outcome.failures), \
        outcome.failures
    again = run_dbt(reconcile, world, SCHEMA, vars=dbt_vars)
    assert again.success, again.failures


def test_a_copy_that_fails_stops_the_gate_and_leaves_no_gate_schema(world) -> None:
    """The rewritten rows are copied beside the other suites; a copy that fails ends the gate with its error (no
    verdict on rows it could not read), and the gate schema is dropped all the same."""
    work = f"{SCHEMA}_work"
    with injected(world, f"alter table {work}.int_orders__enriched rename to int_orders__enriched_away",
                  f"alter table {work}.int_orders__enriched_away rename to int_orders__enriched"):
        with pytest.raises(psycopg.errors.UndefinedTable, match="int_orders__enriched"):
            run_gate(world, SCHEMA, settings=SETTINGS, now=NOW)
        with psycopg.connect(world) as conn:
            assert conn.execute("select to_regnamespace(%s)", (f"{SCHEMA}_gate",)).fetchone()[0] is None
    assert run_gate(world, SCHEMA, settings=SETTINGS, now=NOW).passed


def test_a_scoped_gate_plans_gx_sessions_for_index_lookups(world) -> None:
    """GX's session on a scoped gate reads the rewritten rows by key, as the copiers do: the connection string it gets
    sets their random_page_cost (and the schemas and freshness bound); a whole gate's keeps the server default."""
    import sqlalchemy

    from alliance.gate import gx_connection_string
    from alliance.gate_scope import INDEX_LOOKUP_PAGE_COST

    for cost, expected in ((INDEX_LOOKUP_PAGE_COST, "1.1"), (None, None)):
        engine = sqlalchemy.create_engine(gx_connection_string(world, f"{SCHEMA}_gate,{SCHEMA}", 3600, cost))
        try:
            with engine.connect() as conn:
                shown = {name: conn.execute(sqlalchemy.text(f"show {name}")).scalar() for name in
                         ("random_page_cost", "search_path", "alliance.freshness_seconds")}
        finally:
            engine.dispose()
        with psycopg.connect(world) as plain:
            default = plain.execute("show random_page_cost").fetchone()[0]
        assert default != "1.1" and shown["random_page_cost"] == (expected or default), shown
        assert shown["search_path"] == f"{SCHEMA}_gate,{SCHEMA}" and shown["alliance.freshness_seconds"] == "3600"
