"""The short form of `make reliability`: two randomized fault-campaign runs (kills, a PostgreSQL crash restart).

The long form (RELIABILITY_RUNS=N, default 200) runs the same code; docs/reliability.md holds its last report.
"""

from __future__ import annotations

from reliability.campaign import campaign


def test_short_fault_campaign_loses_and_doubles_nothing():
    lines: list[str] = []
    # seed 20261124 draws a PostgreSQL crash restart and ingest SIGKILLs; 20261123 transport and data faults
    # its own mkdtemp, not tmp_path: parallel pytest sessions prune /tmp/pytest-of-* under a running server
    reports = campaign(2, base_seed=20261123, quick=True, out=lines.append)
    report = "\n".join(lines)
    assert all(r.ok for r in reports), report
    assert sum(r.orders_truth for r in reports) == 720, report
    assert sum(r.orders_lost for r in reports) == 0 and sum(r.orders_doubled + r.raw_doubled for r in reports) == 0
    injected = sum((r.faults for r in reports), start=reports[0].faults.__class__())
    assert injected["postgres_restart"] >= 1 and injected["sigkill_ingest"] >= 1, report
    assert sum(v for k, v in injected.items() if k.startswith("sandbox_")) > 10, report
    assert "orders lost: 0" in report and "orders doubled: 0" in report
