"""The `alliance` command: every step a data engineer runs by hand, the same calls the DAGs make."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from alliance.config import AllianceConfig, ConfigError, load_config
from alliance.warehouse import WarehouseError, redact, warehouse_url

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
    try:
        return load_config(path, require_secrets=require_secrets)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]--as-of: `{value}` is not a date; use YYYY-MM-DD[/]")
        raise typer.Exit(2) from None


def _url() -> str:
    try:
        return warehouse_url()
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
) -> None:
    """Serve the deterministic sandbox partner APIs (Shopify and referral-network styles)."""
    from alliance.sandbox.server import run_sandbox

    cfg_path = str(config) if config else None
    _config(config, require_secrets=False)
    run_sandbox(cfg_path, host, port, seed)


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
    return ok


@app.command()
def ingest(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="only these partner/network ids")] = None,
) -> None:
    """Pull new and changed orders and clicks from every partner API into raw.*."""
    from connectors.ingest import ingest_all, ingest_source

    cfg = _config(config)
    url = _url()
    if source:
        unknown = set(source) - set(cfg.source_ids())
        if unknown:
            known = ", ".join(cfg.source_ids())
            err.print(f"[red]--source: unknown id(s) {', '.join(sorted(unknown))}; known: {known}[/]")
            raise typer.Exit(2)
        results = [ingest_source(cfg, s, url) for s in source]
    else:
        results = ingest_all(cfg, url)
    if not _print_ingest(results):
        raise typer.Exit(1)


def _transform(cfg: AllianceConfig, as_of: date | None) -> None:
    from alliance.run import transform as run_transform

    result = run_transform(cfg, _url(), as_of)
    if not result.published:
        err.print(f"[bold red]run {result.run_id}: quality gate failed; analytics unchanged[/]")
        for line in result.failures:
            err.print(f"  [red]{line.strip()}[/]", highlight=False)
        raise typer.Exit(1)
    console.print(f"run {result.run_id}: published analytics, {result.alerts_fired} new alert(s)")


@app.command()
def transform(config: ConfigOption = None, as_of: AsOfOption = None) -> None:
    """dbt build → quality gate → atomic publish → alerts, once."""
    _transform(_config(config), _as_of(as_of))


@app.command()
def run(config: ConfigOption = None, as_of: AsOfOption = None) -> None:
    """Ingest, then transform, in-process (no scheduler needed)."""
    from connectors.ingest import ingest_all

    cfg = _config(config)
    ok = _print_ingest(ingest_all(cfg, _url()))
    _transform(cfg, _as_of(as_of))
    if not ok:
        err.print("[yellow]some sources failed to ingest; published data covers the others[/]")
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Last runs, row counts and where the warehouse is."""
    from alliance.status import print_status

    print_status(console, _url())


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
) -> None:
    """The end-to-end demo: sandbox APIs → Airflow DAGs → published analytics → summary."""
    from alliance.demo import run_demo

    sys.exit(run_demo(config or Path("config/demo.yml"), seed=seed, use_airflow=not in_process, console=console))


@app.command("warehouse")
def warehouse_cmd(action: Annotated[str, typer.Argument(help="url | stop")] = "url") -> None:
    """Print the warehouse URL (starting the embedded server if needed), or stop the embedded server."""
    from alliance.warehouse import EmbeddedPostgres, state_dir

    if action == "url":
        console.print(redact(_url()))
    elif action == "stop":
        EmbeddedPostgres(state_dir()).stop()
        console.print("embedded warehouse stopped")
    else:
        err.print(f"[red]unknown action `{action}`; use url or stop[/]")
        raise typer.Exit(2)


if __name__ == "__main__":
    app()
