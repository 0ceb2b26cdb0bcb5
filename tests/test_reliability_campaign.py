"""The short form of `make reliability`: two randomized fault-campaign runs (kills, a PostgreSQL crash restart).

The long form (RELIABILITY_RUNS=N, default 200) runs the same code; docs/reliability.md holds its last report.
The second run's published data is then damaged on purpose: the comparison must report it (a self-test).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import psycopg
from reliability.campaign import campaign


def _damage(url: str) -> None:
    """Lose one published order, double another, shift a commission by a cent: what the campaign must catch."""
    with psycopg.connect(url) as conn:
        conn.execute("delete from analytics.fct_orders where (partner_id, order_id) = "
                     "(select partner_id, order_id from analytics.fct_orders order by 1, 2 limit 1)")
        # fct_orders' unique index refuses a doubled order: drop it, as a damaged table would have lost it
        for (index,) in conn.execute("select indexname from pg_indexes where schemaname = 'analytics'"
                                     " and tablename = 'fct_orders'").fetchall():
            conn.execute(f'drop index analytics."{index}"')
        conn.execute("insert into analytics.fct_orders select * from analytics.fct_orders order by partner_id desc, "
                     "order_id desc limit 1")
        conn.execute("update analytics.fct_order_attribution set commission_rc = commission_rc + 0.01 "
                     "where ctid = (select ctid from analytics.fct_order_attribution where commission_rc > 0 limit 1)")


def test_short_fault_campaign_loses_and_doubles_nothing():
    lines: list[str] = []
    # its own temp dir, not tmp_path: parallel pytest sessions prune /tmp/pytest-of-* under a running server
    workdir = Path(tempfile.mkdtemp(prefix="alliance-reliability-test-"))
    try:
        # seed 20261124 draws a PostgreSQL crash restart and ingest SIGKILLs; 20261123 transport and data faults
        clean, damaged = campaign(2, base_seed=20261123, quick=True, out=lines.append, workdir=workdir,
                                  sabotage={1: _damage})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = "\n".join(lines)
    assert clean.ok and (clean.orders_truth, clean.orders_lost, clean.orders_doubled, clean.raw_doubled) == (
        360, 0, 0, 0), report
    injected = clean.faults + damaged.faults
    assert injected["postgres_restart"] >= 1 and injected["sigkill_ingest"] >= 1, report
    assert sum(v for k, v in injected.items() if k.startswith("sandbox_")) > 10, report
    # the damaged run converged (no error) and the comparison saw exactly the damage
    assert damaged.error is None and damaged.orders_truth == 360, report
    assert (damaged.orders_lost, damaged.orders_doubled, damaged.raw_doubled) == (1, 1, 0), report
    assert damaged.mismatched_rows >= 1 and not damaged.ok, report
    assert isinstance(injected, Counter)
