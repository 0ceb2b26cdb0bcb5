"""`make demo`: the whole pipeline on embedded defaults, run by the real DAGs through Airflow.

The sandbox partner APIs run in this process (a background thread); Airflow runs the
DAGs in a subprocess that reaches them over loopback HTTP, exactly as it would reach a
partner's storefront.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from alliance.config import ConfigError, load_config
from alliance.run import transform
from alliance.schemas import PUBLISHED_TABLES
from alliance.scorecard import write_scorecard
from alliance.warehouse import PASSWORD_FILE, connect, parse_url, redact, state_dir, warehouse_url
from connectors.ingest import ingest_all
from devstack.airflow_local import airflow_env, dags_test, ensure_metadata_db
from devstack.sandbox.env import load_sandbox_env
from devstack.sandbox.server import start_sandbox
from devstack.sandbox.world import WINDOW_END, build_world


def run_demo(config_path: Path, *, seed: int, use_airflow: bool, console: Console, as_of: date | None = None) -> int:
    load_sandbox_env()
    started = time.monotonic()
    try:
        world = build_world(load_config(config_path, require_secrets=False), seed=seed)
    except ConfigError as exc:
        console.print(f"[bold red]config error:[/] {exc}")
        return 2
    sandbox = start_sandbox(world)
    os.environ["ALLIANCE_SANDBOX_URL"] = sandbox.url
    console.print(f"[bold]1/4[/] sandbox partner APIs serving at {sandbox.url}")
    try:
        cfg = load_config(config_path)
        url = warehouse_url()
        console.print(f"[bold]2/4[/] warehouse at {redact(url)}")
        if use_airflow:
            code = _run_with_airflow(url, config_path, console)
        else:
            code = _run_in_process(cfg, url, console, as_of)
        if code != 0:
            return code
        console.print(f"[bold]4/4[/] done in {time.monotonic() - started:.0f}s\n")
        print_summary(console, url)
        # the world has no orders after WINDOW_END: its scorecard compares the world's last month with the one before
        print_scorecard(console, url, min(as_of or datetime.now(UTC).date(), WINDOW_END.date()))
        return 0
    finally:
        sandbox.stop()


def _run_with_airflow(url: str, config_path: Path, console: Console) -> int:
    env = airflow_env(url, config_path)
    ensure_metadata_db(env)
    log_file = state_dir() / "demo-airflow.log"
    log_file.write_text("")
    for dag_id in ("alliance_ingest", "alliance_transform"):
        console.print(f"[bold]3/4[/] airflow dags test {dag_id} (log: {log_file})")
        code = dags_test(dag_id, env, log_file)
        if code != 0:
            console.print(f"[bold red]{dag_id} failed[/]; the last lines of {log_file}:")
            console.print("\n".join(log_file.read_text().splitlines()[-30:]), highlight=False, markup=False)
            return code
    return 0


def _run_in_process(cfg, url: str, console: Console, as_of: date | None = None) -> int:
    """Ingest and transform in this process; `as_of` pins the date that decides pending/locked (None: today)."""
    console.print("[bold]3/4[/] ingest + transform in-process")
    failed = [r for r in ingest_all(cfg, url) if r.status != "succeeded"]
    for r in failed:
        console.print(f"[red]{r.error}[/]")
    result = transform(cfg, url, as_of)
    if not result.published:
        console.print("[bold red]quality gate failed[/]\n  " + "\n  ".join(result.failures))
        return 1
    return 1 if failed else 0


def print_scorecard(console: Console, url: str, as_of: date) -> Path:
    """Write the HTML scorecard for the months of `as_of` next to the warehouse state and print where it is."""
    path = write_scorecard(url, state_dir() / "scorecard.html", as_of)
    console.print(f"Scorecard (open in a browser, works offline): {path}")
    return path


def print_summary(console: Console, url: str) -> None:
    with connect(url) as conn:
        rows = conn.execute(
            """
            select partner_id, sum(referred_orders), sum(attributed_revenue_rc), sum(commission_earned_rc),
                   sum(commission_owed_rc)
            from analytics.partner_kpis_daily group by partner_id
            order by sum(attributed_revenue_rc) desc nulls last
            """
        ).fetchall()
        counts = {
            table: conn.execute(f"select count(*) from analytics.{table}").fetchone()[0]
            for table in (*PUBLISHED_TABLES, "kpi_alerts")
        }
        ledger_rows = conn.execute(
            """
            select destination_partner_id, referrer_partner_id, sum(commission_owed_rc),
                   sum(commission_locked_rc), sum(commission_pending_rc)
            from analytics.partner_balances group by 1, 2 order by 3 desc limit 6
            """
        ).fetchall()
        alerts = conn.execute(
            "select severity, rule_id, partner_id, period, value, threshold from analytics.kpi_alerts"
            " where state = 'firing' order by period desc, rule_id limit 5"
        ).fetchall()
        state = conn.execute(
            "select commission_state, count(*), sum(commission_rc) from analytics.fct_order_attribution"
            " where referrer_partner_id is not null and is_commission_model group by 1 order by 1"
        ).fetchall()
        claims = conn.execute(
            "select status, count(*) from analytics.partner_claims group by 1 order by 2 desc, 1"
        ).fetchall()
    table = Table(title="Top partners as referrers (published analytics.partner_kpis_daily)")
    for column in ("partner", "referred orders", "attributed revenue", "commission earned", "commission owed"):
        table.add_column(column, justify="right" if column != "partner" else "left")
    for partner, orders, revenue, earned, owed in rows:
        table.add_row(partner, str(orders), f"{revenue:,.2f}", f"{earned:,.2f}", f"{owed:,.2f}")
    console.print(table)
    ledger = Table(title="Who owes whom (analytics.partner_balances, all months)")
    for column in ("destination pays", "referrer", "owed", "locked", "pending"):
        ledger.add_column(column, justify="right" if column in ("owed", "locked", "pending") else "left")
    for destination, referrer, total, locked, pending in ledger_rows:
        ledger.add_row(destination, referrer, f"{total:,.2f}", f"{locked:,.2f}", f"{pending:,.2f}")
    console.print(ledger)
    if alerts:
        console.print("Latest active alerts (analytics.kpi_alerts):")
        for severity, rule, partner, period, value, threshold in alerts:
            console.print(f"  [{severity}] {rule}: {partner} on {period}: {value} vs {threshold}", markup=False)
    console.print(
        "Commissions: " + ", ".join(f"{s}: {n} orders, {total:,.2f}" for s, n, total in state)
        + " (reporting currency)"
    )
    if claims:  # §9.2: the claims file of the config, judged on this run's data
        console.print("Partner claims (analytics.partner_claims): " + ", ".join(f"{s}: {n}" for s, n in claims))
    console.print("Published tables: " + ", ".join(f"analytics.{t} ({n} rows)" for t, n in counts.items()))
    parts = parse_url(url)
    console.print(
        f"\nQuery them: psql '{redact(url)}'  (BI tools: `alliance bi-url`, read-only, schema analytics)\n"
        f"  host {parts.host} port {parts.port} database {parts.dbname}; `make status` shows runs and counts."
    )
    if not os.environ.get("ALLIANCE_WAREHOUSE_URL"):  # the embedded server: where its password is, never the password
        console.print(f"  the password (***) is in {state_dir() / PASSWORD_FILE} (mode 0600)")
