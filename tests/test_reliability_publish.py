"""Publish under load (short form): BI readers during publishes and gate-failed rollbacks see no partial data."""

from __future__ import annotations

from reliability.publish_load import publish_under_load


def test_bi_readers_never_see_partial_or_rejected_data(warehouse):
    report = publish_under_load(warehouse, cycles=10, readers=3, seed=11)
    assert report.publishes >= 3 and report.rollbacks >= 2, report
    assert report.reads > 50, report  # readers really overlapped the swaps
    assert report.inconsistent == 0, report.examples
