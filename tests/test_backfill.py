"""Backfill of a date range: `alliance ingest --since` re-pulls from that date and duplicates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"
ALLIANCE = str(Path(sys.executable).with_name("alliance"))


def ingest(*args: str) -> None:
    result = subprocess.run([ALLIANCE, "ingest", "--config", str(DEMO), "-s", "northwind", *args],
                            capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stderr


def test_since_repulls_from_the_date_without_duplicates(warehouse, sandbox_url):
    ingest()
    with psycopg.connect(warehouse) as conn:
        before = conn.execute("select count(*), max(updated_at) from raw.orders").fetchone()
        cursor = conn.execute("select cursor_value from raw.cursors where source_id = 'northwind'").fetchone()[0]
    ingest()  # incremental: starts near the cursor
    ingest("--since", "2026-01-01")
    with psycopg.connect(warehouse) as conn:
        loads = conn.execute("select cursor_from from raw.loads where source_id = 'northwind' and entity = 'orders' "
                             "order by started_at").fetchall()
        after = conn.execute("select count(*), max(updated_at) from raw.orders").fetchone()
        new_cursor = conn.execute("select cursor_value from raw.cursors where source_id = 'northwind'").fetchone()[0]
    assert loads[0][0] is None and loads[1][0] > loads[2][0]
    assert loads[2][0].isoformat().startswith("2026-01-01T00:00:00"), "the re-pull starts exactly at --since"
    assert after == before, "a re-pull lands the same orders once"
    assert new_cursor == cursor, "after the re-pull the cursor is back where it was"
