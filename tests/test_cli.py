"""The CLI a data engineer types: clear one-line errors for bad input, other partners still load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import yaml

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "config" / "demo.yml"
ALLIANCE = str(Path(sys.executable).with_name("alliance"))


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ALLIANCE, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=300,
    )


def test_wrong_token_names_partner_and_fix_and_others_load(warehouse, sandbox_url):
    result = cli("ingest", "--config", str(DEMO), env={"LUMEN_TOKEN": "wrong-token"})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "lumen" in line]
    assert lines and "401" in lines[0] and "LUMEN_TOKEN" in lines[0], result.stderr
    assert "wrong-token" not in result.stdout + result.stderr, "a token never reaches the output"
    with psycopg.connect(warehouse) as conn:
        loaded = dict(conn.execute("select partner_id, count(*) from raw.orders group by 1").fetchall())
    assert loaded.get("northwind", 0) > 0 and loaded.get("tidewater", 0) > 0 and "lumen" not in loaded


def test_unreachable_partner_is_one_clear_line(warehouse, sandbox_url, tmp_path):
    data = yaml.safe_load(DEMO.read_text())
    data["partners"][2]["base_url"] = "http://127.0.0.1:9/tidewater"  # nothing listens on port 9
    data["fx_rates"] = str(ROOT / "config" / "demo_fx_rates.csv")
    data["claims"] = str(ROOT / "config" / "demo_claims.csv")
    data["alerts"] = str(ROOT / "config" / "alerts.yml")
    config = tmp_path / "alliance.yml"
    config.write_text(yaml.safe_dump(data))
    result = cli("ingest", "--config", str(config))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("tidewater")]
    assert lines, result.stderr
    assert "127.0.0.1:9" in lines[0] and "Traceback" not in result.stderr


def test_unknown_platform_fails_before_touching_the_warehouse(tmp_path):
    data = yaml.safe_load(DEMO.read_text())
    data["partners"][0]["platform"] = "magento"
    data["fx_rates"] = str(ROOT / "config" / "demo_fx_rates.csv")
    data["claims"] = str(ROOT / "config" / "demo_claims.csv")
    config = tmp_path / "alliance.yml"
    config.write_text(yaml.safe_dump(data))
    result = cli("ingest", "--config", str(config), env={"ALLIANCE_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:9/x"})
    assert result.returncode == 2
    assert "partners[0] (id: northwind).platform" in result.stderr and "magento" in result.stderr
    assert "warehouse" not in result.stderr.lower()


def test_run_then_status(warehouse, sandbox_url):
    result = cli("run", "--config", str(DEMO))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published analytics" in result.stdout
    status = cli("status", "--config", str(DEMO))
    assert status.returncode == 0
    assert "analytics.fct_order_attribution" in status.stdout and "succeeded" in status.stdout


def test_demo_in_process_prints_where_and_what(warehouse, tmp_path):
    """What `make demo` prints after the pipeline: top partners, ledger, commissions, tables, scorecard.

    The demo world's orders lie in 2026-09..11 (lock dates 2026-10-30..2026-12-30): pinned to 2026-12-15, September
    and October are locked and November is pending whatever today's date is."""
    result = cli("demo", "--config", str(DEMO), "--in-process", "--as-of", "2026-12-15",
                 env={"ALLIANCE_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Top partners" in out and "Who owes whom" in out and "analytics.fct_order_attribution" in out
    assert "locked:" in out and "pending:" in out
    assert "Partner claims (analytics.partner_claims): " in out and "credited_to_other: " in out  # demo_claims.csv
    assert "scorecard" in out.lower() and (tmp_path / "home" / "scorecard.html").is_file()
    # the world's orders end in November: its scorecard compares November with October, not an empty December
    assert "The alliance: November 2026 vs October 2026" in (tmp_path / "home" / "scorecard.html").read_text()
