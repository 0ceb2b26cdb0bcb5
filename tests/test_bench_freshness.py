"""bench/freshness.py's set-up: the synthetic data it preloads passes the gate, and the warehouse it times is in
production's steady state (the build schema a recycled snapshot), not a first build."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from alliance.config import load_config
from bench import freshness


def test_bench_config_prices_every_generated_day(tmp_path) -> None:
    now = datetime(2031, 3, 15, 12, tzinfo=UTC)  # any day: the FX file follows the generated dates, not the demo's
    config = load_config(freshness.bench_config(tmp_path, now), require_secrets=False)
    days = [line.split(",")[0] for line in config.fx_rates.read_text().splitlines()[1:]]
    assert days[0] <= (now - freshness.BASE_AGE).date().isoformat() and days[-1] > now.date().isoformat()
    assert len(days) == len(set(days)) == (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days + 1
    assert config.alerts is not None and config.alerts.is_file() and [p.id for p in config.partners] == [
        p.id for p in load_config(freshness.CONFIG, require_secrets=False).partners]


def test_preload_publishes_a_full_and_two_incremental_transforms(warehouse, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ALLIANCE_STATEMENTS_DIR", str(tmp_path / "statements"))
    config = load_config(freshness.bench_config(tmp_path, datetime.now(UTC)), require_secrets=False)
    facts = freshness.preload(warehouse, 300, config)
    assert (facts["orders"], facts["clicks"], len(facts["warmup_transform_s"])) == (300, 1500, 3)
    assert facts["build_schema_recycled"], "the next run must start from a recycled snapshot"
    with psycopg.connect(warehouse) as conn:
        published = conn.execute("select count(*) from ops.runs where kind = 'transform' and published").fetchone()[0]
        raw = conn.execute("select count(*) from raw.orders").fetchone()[0]
        missing = conn.execute(  # test orders never reach analytics; every other landed order is published
            "select count(*) from raw.orders r where not (r.payload->>'test')::boolean and not exists"
            " (select 1 from analytics.fct_orders f where (f.partner_id, f.order_id) = (r.partner_id, r.order_id))"
        ).fetchone()[0]
    assert published == 3 and raw == 300 + 2 * 3 and missing == 0  # the base and two 1% deltas
