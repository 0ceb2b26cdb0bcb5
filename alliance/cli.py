"""The `alliance` command: every step a data engineer runs by hand, the same calls the DAGs make.

Each command imports what it runs inside its body, so `alliance --help` or `alliance status` does not load the
gate, Jinja2 or uvicorn. `demo`, `sandbox` and `airflow` run the dev stack (`devstack/`, not in the wheel): the only
imports of devstack from the product (contract `product-without-devstack`, docs/architecture.md).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from alliance.config import AllianceConfig, ConfigError, load_config
from alliance.warehouse import WarehouseError, redact, warehouse_url

if TYPE_CHECKING:
    from connectors.ingest import IngestOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, help="alliance: e-commerce alliance data pipeline")
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="alliance YAML config (default: $ALLIANCE_CONFIG or config/alliance.yml)"),
]
AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="UTC date used for pending/locked commissions (default: today)")
]


def _setup_logging(verbose: bool = False) -> None:
    from alliance.logging_setup import quiet_noisy_loggers

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    quiet_noisy_loggers()


def _config(path: Path | None, *, require_secrets: bool = True) -> AllianceConfig:
    from alliance.airflow_credentials import require_connections

    try:
        cfg = load_config(path, require_secrets=require_secrets)
        return require_connections(cfg) if require_secrets else cfg
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _ingest_options() -> IngestOptions:
    """Production ingest knobs, with `credentials_conn` secrets read from Airflow's connections."""
    from alliance.airflow_credentials import airflow_connection
    from connectors.ingest import IngestOptions

    return IngestOptions(connections=airflow_connection)


def _as_of(value: str | None, option: str = "--as-of") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]{option}: `{value}` is not a date; use YYYY-MM-DD[/]", highlight=False)
        raise typer.Exit(2) from None


def _url(component: str | None = None) -> str:
    """The warehouse URL, or with `component` that component's own login (alliance/roles.py)."""
    try:
        if component is None:
            return warehouse_url()
        from alliance.roles import component_url

        return component_url(component)
    except WarehouseError as exc:
        err.print(f"[bold red]warehouse error:[/] {exc}")
        raise typer.Exit(3) from None


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def sandbox(
    config: ConfigOption = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 42,
    page_size: Annotated[int | None, typer.Option(help="cap every page at this many records")] = None,
    fault_seed: Annotated[int, typer.Option(help="seed of the random fault schedule")] = 0,
    error_rate: Annotated[float, typer.Option(help="share of requests answered 500/502/503")] = 0.0,
    burst_rate: Annotated[float, typer.Option(help="share of requests starting a burst of 429s")] = 0.0,
    burst_length: Annotated[int, typer.Option(help="429s per burst")] = 3,
    slow_rate: Annotated[float, typer.Option(help="share of requests answered slowly")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="delay of a slow answer")] = 0.5,
    drop_rate: Annotated[float, typer.Option(help="share of connections dropped without an answer")] = 0.0,
    malformed_rate: Annotated[float, typer.Option(help="share of pages with an extra malformed record")] = 0.0,
    change_rate: Annotated[float, typer.Option(help="share of pages after which an unread order changes")] = 0.0,
    late_update_rate: Annotated[float, typer.Option(help="share of pages after which a read order changes late")]
    = 0.0,
    late_by_seconds: Annotated[float, typer.Option(help="how far behind the newest change a late update is")]
    = 120.0,
) -> None:
    """Serve the deterministic sandbox partner APIs (Shopify, WooCommerce, referral network), faults optional."""
    from devstack.sandbox.server import SandboxOptions, run_sandbox

    if not all(0.0 <= r <= 1.0 for r in (error_rate, burst_rate, slow_rate, drop_rate, malformed_rate, change_rate,
                                          late_update_rate)):
        err.print("[red]every --*-rate must be between 0 and 1[/]")
        raise typer.Exit(2)
    options = SandboxOptions(page_size=page_size, seed=fault_seed, error_rate=error_rate, burst_rate=burst_rate,
                             burst_length=burst_length, slow_rate=slow_rate, slow_seconds=slow_seconds,
                             drop_rate=drop_rate, malformed_rate=malformed_rate, change_rate=change_rate,
                             late_update_rate=late_update_rate, late_by_seconds=late_by_seconds)
    cfg_path = str(config) if config else None
    _config(config, require_secrets=False)
    run_sandbox(cfg_path, host, port, seed, options)


def _print_ingest(results: list) -> bool:
    table = Table(title="ingest")
    for column in ("source", "entity", "status", "pages", "landed", "quarantined"):
        table.add_column(column)
    ok = True
    for r in results:
        ok = ok and r.status == "succeeded"
        style = "green" if r.status == "succeeded" else "red"
        table.add_row(r.source_id, r.entity, f"[{style}]{r.status}[/]", str(r.pages), str(r.landed), str(r.quarantined))
    console.print(table)
    for r in results:
        if r.status != "succeeded" and r.error:
            err.print(f"[red]{r.error}[/]", highlight=False)
        for warning in getattr(r, "warnings", ()):
            err.print(f"[yellow]{warning}[/]", highlight=False)
    return ok


@app.command()
def ingest(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="only these partner/network ids")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="re-pull from this UTC date (backfill), then continue incrementally")
    ] = None,
) -> None:
    """Pull new and changed orders and clicks from every partner API into raw.*."""
    from alliance.ingest_task import rewind
    from connectors.ingest import ingest_all, ingest_source

    cfg = _config(config)
    _salt()  # no default salt outside the demo: a real run without ALLIANCE_PII_SALT stops here
    if source:  # every argument is checked before anything touches the warehouse
        unknown = set(source) - set(cfg.source_ids())
        if unknown:
            known = ", ".join(cfg.source_ids())
            err.print(f"[red]--source: unknown id(s) {', '.join(sorted(unknown))}; known: {known}[/]", highlight=False)
            raise typer.Exit(2)
    start = _as_of(since, "--since") if since else None
    url = _url("loader")
    if since is not None:
        for source_id in source or cfg.source_ids():
            rewind(url, source_id, start)
    if source:
        results = [ingest_source(cfg, s, url, options=_ingest_options()) for s in source]
    else:
        results = ingest_all(cfg, url, options=_ingest_options())
    if not _print_ingest(results):
        raise typer.Exit(1)


WaitOption = Annotated[
    float, typer.Option("--wait", help="if another run is in progress, wait up to this many seconds (default: exit)")
]


def _transform(cfg: AllianceConfig, as_of: date | None, wait: float = 0) -> None:
    from alliance.run import transform as run_transform

    result = run_transform(cfg, _url("transformer"), as_of, wait_seconds=wait)
    if result.refused:
        err.print(f"[bold red]run {result.run_id} refused:[/] {result.failures[0]}", highlight=False)
        raise typer.Exit(4)
    if not result.published:
        err.print(f"[bold red]run {result.run_id}: quality gate failed; analytics unchanged[/]")
        for line in result.failures:
            err.print(f"  [red]{line.strip()}[/]", highlight=False)
        raise typer.Exit(1)
    console.print(f"run {result.run_id}: published analytics, {result.alerts_fired} new alert(s)")
    issued = result.statements
    if issued is not None and issued.written:
        console.print(f"statements: {len(issued.first)} issued, {len(issued.revised)} revised "
                      f"({len(issued.files)} files)", highlight=False)


@app.command()
def transform(config: ConfigOption = None, as_of: AsOfOption = None, wait: WaitOption = 0) -> None:
    """dbt build → quality gate → atomic publish → alerts, once (one run at a time per warehouse)."""
    _transform(_config(config), _as_of(as_of), wait)


@app.command()
def run(config: ConfigOption = None, as_of: AsOfOption = None, wait: WaitOption = 0) -> None:
    """Ingest, then transform, in-process (no scheduler needed)."""
    from connectors.ingest import ingest_all

    cfg = _config(config)
    day = _as_of(as_of)
    _salt()
    ok = _print_ingest(ingest_all(cfg, _url("loader"), options=_ingest_options()))
    _transform(cfg, day, wait)
    if not ok:
        err.print("[yellow]some sources failed to ingest; published data covers the others[/]")
        raise typer.Exit(1)


@app.command()
def rollback(config: ConfigOption = None) -> None:
    """Restore the previous published snapshot (analytics_prev) in one transaction; run again to roll forward."""
    from alliance.publish import PublishError
    from alliance.publish import rollback as swap_back

    timeout = _config(config, require_secrets=False).gate.lock_timeout_seconds if config else 60
    try:
        result = swap_back(_url("transformer"), lock_timeout_seconds=timeout)
    except PublishError as exc:
        err.print(f"[bold red]rollback refused:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"analytics is now: {result.restored}\nanalytics_prev is now: {result.replaced}", highlight=False)


@app.command("bi-url")
def bi_url() -> None:
    """Print a read-only connection URL for BI tools (role alliance_bi_reader: SELECT on analytics only).

    The password is $ALLIANCE_BI_PASSWORD, else one generated once into .alliance/bi_password (mode 0600).
    """
    from alliance.publish import bi_url as make_bi_url

    console.print(make_bi_url(_url()), highlight=False, soft_wrap=True)


@app.command("partner-access")
def partner_access(
    partner: Annotated[str, typer.Argument(help="partner id from the config's partners:")],
    config: ConfigOption = None,
) -> None:
    """Print a read-only connection URL for PARTNER: row-level security shows it only rows naming it (§9.3).

    Creates the login alliance_partner_<id> once; running it again prints the same URL and changes nothing.
    """
    from alliance.partner_access import PartnerAccessError
    from alliance.partner_access import partner_access as make_partner_login

    cfg = _config(config, require_secrets=False)
    try:
        login = make_partner_login(_url(), partner, cfg)
    except PartnerAccessError as exc:
        err.print(f"[bold red]partner-access refused:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(login.url, highlight=False, soft_wrap=True)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Last runs, row counts and where the warehouse is."""
    from alliance.status import print_status

    print_status(console, _url())


@app.command()
def scorecard(
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="HTML file (default: .alliance/scorecard.html)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="UTC date whose month is 'this month' (default: today)")
    ] = None,
) -> None:
    """One self-contained HTML scorecard: each partner this month vs last, objectives and pace, trends, alerts."""
    from alliance.scorecard import ScorecardError, write_scorecard
    from alliance.warehouse import state_dir

    day = _as_of(as_of) or datetime.now(UTC).date()
    try:
        path = write_scorecard(_url(), out or state_dir() / "scorecard.html", day)
    except ScorecardError as exc:
        err.print(f"[bold red]scorecard:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"scorecard: {path}")


@app.command()
def statements(
    month: Annotated[str, typer.Option("--month", help="the statement month, YYYY-MM")],
    partner: Annotated[str | None, typer.Option("--partner", help="one partner's statement (default: every partner)")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", help="folder (default: $ALLIANCE_STATEMENTS_DIR or "
                                                          ".alliance/statements)")] = None,
    config: ConfigOption = None,
) -> None:
    """Partner statements (§9.1): per partner a CSV and a self-contained HTML file in <out>/<YYYY-MM>/."""
    from alliance.statements import StatementError, parse_month, write_statements

    cfg = _config(config, require_secrets=False)
    try:
        first_day = parse_month(month)
    except StatementError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    known = {p.id: p.name or p.id for p in cfg.partners}
    if partner is not None and partner not in known:
        from alliance.config import resolve_config_path

        err.print(f"[red]--partner: no partner `{partner}` in {resolve_config_path(config)} (partners[].id); "
                  f"known: {', '.join(sorted(known))}[/]", highlight=False)
        raise typer.Exit(2)
    try:
        files = write_statements(_url(), first_day, out_dir=out, partner=partner, currency=cfg.reporting_currency,
                                 names=known)
    except StatementError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    for path in files:
        console.print(str(path), highlight=False)


@app.command()
def docs(config: ConfigOption = None) -> None:
    """Build the dbt docs (models, columns, contracts, exposure) as one offline HTML file."""
    from alliance.docs import build_docs

    console.print(f"dbt docs: {build_docs(_config(config, require_secrets=False))}")


@app.command()
def demo(
    config: ConfigOption = None,
    seed: int = 42,
    in_process: Annotated[bool, typer.Option(help="skip Airflow, call the steps directly")] = False,
    as_of: AsOfOption = None,
) -> None:
    """The end-to-end demo: sandbox APIs → Airflow DAGs → published analytics → summary."""
    from devstack.demo import run_demo

    day = _as_of(as_of)
    if day is not None and not in_process:
        err.print("[red]--as-of: the demo through Airflow uses today's date; add --in-process to pin a date[/]")
        raise typer.Exit(2)
    sys.exit(run_demo(config or Path("config/demo.yml"), seed=seed, use_airflow=not in_process, console=console,
                      as_of=day))


@app.command()
def webhooks(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="interface to listen on (0.0.0.0 in a container)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8780,
) -> None:
    """Receive partner webhooks (Shopify, WooCommerce, network clicks) on uvicorn: store each verified delivery in
    the inbox, answer at once, then land it in raw and tell Airflow.

    Airflow is told through its REST API when ALLIANCE_AIRFLOW_API_URL is set (optionally
    ALLIANCE_AIRFLOW_USERNAME / ALLIANCE_AIRFLOW_PASSWORD); otherwise events wait in the outbox.
    """
    import signal
    import threading

    from alliance.webhooks import AirflowClient, build_server
    from connectors.pii import PiiError

    _demo_env(config)  # the demo's documented salt and webhook secrets, for a demo config only
    cfg = _config(config, require_secrets=False)
    _salt()  # before the warehouse: a real receiver without ALLIANCE_PII_SALT stops here
    try:
        server = build_server(cfg, _url("loader"), host, port, AirflowClient.from_env(),
                              receiver_url=_url("webhook_receiver"))
    except PiiError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    sources = ", ".join(f"/webhooks/{p}/{i}" for p, i in sorted(server.sources))
    server.start()
    console.print(f"alliance webhooks listening on {server.url} ({sources or 'no source has a webhook secret set'})")
    # uvicorn runs in a thread; this one waits for SIGTERM / Ctrl-C, then stops it gracefully (exit 0; uvicorn in
    # the main thread would re-raise the signal). Unprocessed inbox rows wait for the next start.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()


@app.command()
def airflow(
    config: ConfigOption = None,
    port: Annotated[int, typer.Option(help="port of the Airflow UI and API")] = 8080,
    executor: Annotated[str, typer.Option(help="local (LocalExecutor) or celery (Redis, two workers)")] = "local",
) -> None:
    """Start a local Airflow (api-server, scheduler, dag-processor, triggerer) on the embedded warehouse."""
    from devstack.airflow_local import serve

    cfg_path = config or Path("config/demo.yml")
    _config(cfg_path, require_secrets=False)
    sys.exit(serve(_url(), cfg_path, port=port, executor=executor, console=console))


def _demo_env(config: Path | None) -> None:
    """Load config/sandbox.env (the demo's documented salt and secrets) when `config` is a demo config, else
    nothing: a real alliance never runs on the demo's public salt."""
    import os

    try:  # the dev stack lives in the repository, not in the wheel: without it no config is a demo config
        from devstack.sandbox.env import is_demo_config, load_sandbox_env
    except ModuleNotFoundError:
        return
    path = config or Path(os.environ.get("ALLIANCE_CONFIG") or "config/alliance.yml")
    if is_demo_config(path):
        load_sandbox_env()


def _salt() -> str:
    """ALLIANCE_PII_SALT, or exit 2 with the reason: outside the demo nothing loads a default salt."""
    from connectors.pii import PiiError, pii_salt

    try:
        return pii_salt()
    except PiiError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def forget(
    customer_email: Annotated[str | None, typer.Option("--customer-email", help="the customer's e-mail address")]
    = None,
    customer_key: Annotated[str | None, typer.Option("--customer-key", help="the customer's key (64 hex)")] = None,
    partner: Annotated[str | None, typer.Option("--partner", help="only at this storefront")] = None,
    config: ConfigOption = None,
) -> None:
    """Erase a customer (PRODUCT.md §4): their orders and clicks get one random surrogate key, no mapping kept.

    Amounts, attribution and commissions do not change. The key is renamed at once in raw and in the transform's
    and published tables; the next transform re-reads the changed payloads. The address is hashed here and never
    printed or logged; the log names the old key's first 8 characters only.
    """
    from connectors.erasure import ErasureError, erase_customer
    from connectors.landing import ensure_raw_schema
    from connectors.pii import customer_key as key_of

    if (customer_email is None) == (customer_key is None):
        err.print("[red]give exactly one of --customer-email ADDRESS or --customer-key KEY[/]")
        raise typer.Exit(2)
    if partner is not None:
        known = [p.id for p in _config(config, require_secrets=False).storefronts]
        if partner not in known:
            err.print(f"[red]--partner: `{partner}` is not a storefront of the config; known: {', '.join(known)}[/]",
                      highlight=False)
            raise typer.Exit(2)
    key = key_of(customer_email, _salt()) if customer_email is not None else (customer_key or "").strip().lower()
    if key is None:
        err.print("[red]--customer-email is blank[/]")
        raise typer.Exit(2)
    if not re.fullmatch(r"[0-9a-f]{64}", key):  # checked before anything touches the warehouse
        err.print("[red]--customer-key: a customer key is 64 hex characters (sha256 of the salted e-mail)[/]")
        raise typer.Exit(2)
    from alliance.warehouse import connect

    try:
        with connect(_url()) as conn:
            ensure_raw_schema(conn)
            with conn.transaction():
                result = erase_customer(conn, key, partner_id=partner)
    except ErasureError as exc:
        err.print(f"[red]--customer-key: {exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    where = f" at {partner}" if partner else ""
    if result.total == 0:
        console.print(f"no row holds customer {key[:8]}…{where}; nothing to erase", highlight=False)
        return
    console.print(f"erased customer {key[:8]}…{where}: {result.orders} order(s), {result.clicks} click(s), "
                  f"{result.other_rows} quarantine/inbox row(s); the next transform re-reads them", highlight=False)


@app.command("warehouse")
def warehouse_cmd(action: Annotated[str, typer.Argument(help="url | stop | migrate")] = "url") -> None:
    """Print the warehouse URL (starting the embedded server if needed), stop the embedded server, or apply the
    pending migrations (tables, component roles and their grants) as the warehouse owner: compose's one-shot
    `warehouse-migrate` service, before any component connects with its own, smaller role."""
    from alliance.migrate import migrate
    from alliance.warehouse import EmbeddedPostgres, connect, state_dir

    if action == "url":
        console.print(redact(_url()))
    elif action == "stop":
        EmbeddedPostgres(state_dir()).stop()
        console.print("embedded warehouse stopped")
    elif action == "migrate":
        with connect(_url(), autocommit=True) as conn:
            applied = migrate(conn)
        console.print(f"applied {', '.join(applied)}" if applied else "the warehouse is up to date", highlight=False)
    else:
        err.print(f"[red]unknown action `{action}`; use url, stop or migrate[/]")
        raise typer.Exit(2)


if __name__ == "__main__":
    app()
