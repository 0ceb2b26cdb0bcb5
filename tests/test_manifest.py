"""The run log's rows per partner: counted while a raw table is small, estimated from the planner's statistics when
it is large (a count would read the whole table on every run of the event path), and the log says which."""

from __future__ import annotations

import uuid

import psycopg

from alliance.manifest import partners_loaded
from alliance.migrate import migrate


def _land(conn: psycopg.Connection) -> None:
    load = uuid.uuid4()
    conn.execute(
        "insert into raw.orders (partner_id, order_id, platform, updated_at, payload, load_id)"
        " select case when i %% 3 = 0 then 'lumen' else 'northwind' end, i::text, 'shopify', now(), '{}', %s"
        " from generate_series(1, 300) i", (load,))
    conn.execute(
        "insert into raw.clicks (network_id, click_id, clicked_at, payload, load_id)"
        " select 'alliance_network', i::text, now(), '{}', %s from generate_series(1, 40) i", (load,))


def test_rows_per_partner_are_counted_below_the_threshold_and_estimated_above(warehouse) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        migrate(conn)
        _land(conn)
        counted = partners_loaded(conn)
        assert counted["orders"] == {"lumen": 100, "northwind": 200}
        assert counted["clicks"] == {"alliance_network": 40}
        assert counted["counted"] == {"orders": "exact", "clicks": "exact"}

        conn.execute("analyze raw.orders")
        conn.execute("analyze raw.clicks")
        estimated = partners_loaded(conn, exact_up_to=100)  # orders above the threshold, clicks below
        assert estimated["counted"] == {"orders": "estimated", "clicks": "exact"}
        # ANALYZE read every row of so small a table: the estimate is the count
        assert estimated["orders"] == {"lumen": 100, "northwind": 200}

        conn.execute("insert into raw.orders (partner_id, order_id, platform, updated_at, payload, load_id)"
                     " values ('tidewater', 't1', 'shopify', now(), '{}', %s)", (uuid.uuid4(),))
        # statistics lag until the next ANALYZE; the log says the figures are estimates, not counts
        assert partners_loaded(conn, exact_up_to=100)["orders"] == {"lumen": 100, "northwind": 200}
        assert partners_loaded(conn)["orders"] == {"lumen": 100, "northwind": 200, "tidewater": 1}


def test_a_passed_gate_leaves_its_own_row_counts_for_its_publish_and_only_its_own(warehouse) -> None:
    """The publish keeps the counts the run's gate took on the stamped build; a gate run again (a rebuilt schema,
    checked whole, so nothing counted) must not leave the earlier gate's counts behind, nor a failed gate any."""
    from alliance.gate import GateResult
    from alliance.manifest import gate_row_counts, record_checks

    record_checks(warehouse, "run-counted", GateResult(passed=True, row_counts={"fct_orders": 12}))
    assert gate_row_counts(warehouse, "run-counted") == {"fct_orders": 12}
    record_checks(warehouse, "run-counted", GateResult(passed=True))
    assert gate_row_counts(warehouse, "run-counted") == {}
    record_checks(warehouse, "run-failed", GateResult(passed=False, failures=["x"], row_counts={"fct_orders": 3}))
    assert gate_row_counts(warehouse, "run-failed") == {}
