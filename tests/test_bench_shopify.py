"""bench/shopify_backfill.py at a tiny size: both contenders land every order, the run is kept with its rounds, the
ratio and peak memory, and bench/report.py renders it. The 200k-order run is `make bench-shopify`."""

from __future__ import annotations

import json

from conftest import _server_url

from bench import report
from bench.shopify_backfill import measure


def test_backfill_bench_runs_both_contenders_and_keeps_every_round(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLIANCE_BENCH_SERVER_URL", _server_url())
    run = measure(200, 1, tmp_path)
    (kept,) = json.loads((tmp_path / "shopify_backfill.json").read_text())
    assert kept["orders"] == 200 and kept["commit"] and len(kept["loadavg_at_end"]) == 3
    for mode in ("rest", "bulk"):
        (only,) = kept["rounds"][mode]
        assert only["landed"] == 200 and only["seconds"] > 0 and only["peak_rss_mb"] > 0
        assert kept["summary"][mode]["seconds"]["rounds"] == 1
    ratio = kept["rounds"]["rest"][0]["seconds"] / kept["rounds"]["bulk"][0]["seconds"]
    assert kept["summary"]["rest_over_bulk"]["median"] == round(ratio, 3)
    assert run["summary"] == kept["summary"]
    block = report.render("shopify_backfill", tmp_path)
    assert "200 orders" in block and "REST / bulk" in block and "one bulk operation" in block
