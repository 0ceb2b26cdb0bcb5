"""Shared fixtures: every test talks to a real PostgreSQL.

By default that is the embedded server under .alliance/ (started on demand); set
ALLIANCE_TEST_SERVER_URL to use another server. Each test session gets its own fresh
database, dropped at the end, so parallel sessions never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from alliance.assets import STATEMENTS_DIR_VARIABLE
from alliance.dbt_runner import ARTIFACTS_VARIABLE
from alliance.roles import ROLES_DIR_VARIABLE
from alliance.warehouse import parse_url, warehouse_url


def _server_url() -> str:
    return os.environ.get("ALLIANCE_TEST_SERVER_URL") or warehouse_url()


def _with_database(url: str, dbname: str) -> str:
    parts = parse_url(url)
    auth = parts.user + (f":{parts.password}" if parts.password else "")
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{dbname}"


@pytest.fixture(scope="session")
def fresh_database_factory() -> Iterator:
    """Make empty databases on the test server; all are dropped when the session ends."""
    server = _server_url()
    admin = _with_database(server, "postgres")
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"alliance_{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        created.append(name)
        return _with_database(server, name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in created:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture()
def warehouse(fresh_database_factory, monkeypatch) -> str:
    """A fresh, empty warehouse database; ALLIANCE_WAREHOUSE_URL points at it for the test."""
    url = fresh_database_factory()
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_URL", url)
    return url


def shared_fixtures_dir() -> Path:
    """The platforms' published payloads: `shared/fixtures` beside the checkout (as CI lays it out)."""
    root = Path(__file__).resolve().parents[1]
    for candidate in (root.parent / "shared" / "fixtures", Path("/work/shared/fixtures")):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shared/fixtures not found beside {root}")


@pytest.fixture()
def sandbox_url(monkeypatch) -> Iterator[str]:
    """The sandbox partner APIs for config/demo.yml (seed 7) on a free loopback port, with its credentials set."""
    from alliance.config import load_config
    from devstack.sandbox.env import load_sandbox_env
    from devstack.sandbox.server import start_sandbox
    from devstack.sandbox.world import build_world

    load_sandbox_env()
    demo = Path(__file__).resolve().parents[1] / "config" / "demo.yml"
    handle = start_sandbox(build_world(load_config(demo, require_secrets=False), seed=7))
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    yield handle.url
    handle.stop()


# Tests whose outcome could depend on the date or the wall clock (today, now() in SQL, pending/locked, lock dates,
# alert periods, cursors capped at "now", received/landed times): `make test` runs them again with the clock moved
# (scripts/test_clocks.sh, docs/testing.md). A whole module (path) or one test (path::name). Add new ones here.
DATE_TOUCHING = (
    "tests/test_cli.py::test_demo_in_process_prints_where_and_what",
    "tests/test_cli.py::test_run_then_status",
    "tests/test_dbt_build.py",
    "tests/test_oracle.py",
    "tests/test_alerts.py",
    "tests/test_alert_channels.py",
    "tests/test_gate.py",
    "tests/test_backfill.py",
    "tests/test_connectors.py",
    "tests/test_ingest_rules.py::test_cursor_never_passes_sync_start_minus_skew_and_next_run_overlaps",
    "tests/test_sandbox.py::test_update_order_bumps_updated_at_past_everything",
    "tests/test_webhooks.py",
    "tests/test_locks.py",
    "tests/test_future_dated.py",  # "the future" is the warehouse clock's now() at landing
    "tests/test_deletions.py",
    "tests/test_privacy.py::test_forget_erases_a_customer_everywhere_and_changes_no_money",
    "tests/test_shopify_graphql.py",  # bulk or paged decides on how far back `since` is from now
    "tests/test_alert_demo.py",  # lands the demo world (future check at the warehouse clock); alerts pinned as-of
)
# Of those, the expensive ones whose dates are pinned (as_of_date, fixed data): `make test-clocks` runs them at every
# shifted date; the one shifted run inside `make test` leaves them out (-m "dates and not dates_pinned") to stay short.
DATES_PINNED = (
    "tests/test_cli.py::test_run_then_status",
    "tests/test_dbt_build.py",
    "tests/test_deletions.py",
    "tests/test_privacy.py::test_forget_erases_a_customer_everywhere_and_changes_no_money",
    "tests/test_shopify_graphql.py::test_switching_from_rest_to_graphql_reloads_and_duplicates_nothing",
    "tests/test_alert_demo.py",
)


# Modules that run a live Airflow (its metadata database and AIRFLOW_HOME are per checkout) or time crashes and
# restarts (the fault campaign): under pytest-xdist (`make test` runs two workers) they share one worker, one at a
# time, so no two of them overlap; everything else spreads over the workers.
SERIAL_GROUP = "live_stack"
SERIAL_MODULES = (
    "tests/test_airflow_live.py",
    "tests/test_airflow_auth.py",
    "tests/test_celery_live.py",
    "tests/test_end_to_end.py",
    "tests/test_reliability_campaign.py",
    # tests that set a component role's password (roles are cluster-wide): never while a live stack logs in with it
    "tests/test_roles.py",
    "tests/test_claims_landing.py::test_the_transformer_lands_claims_as_the_transform_does",
    "tests/test_deploy.py::test_warehouse_migrate_applies_roles_then_components_log_in",
)


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest's hook
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get(ARTIFACTS_VARIABLE):
        # each worker's dbt (and the CLI, Airflow tasks it starts) gets its own target/ and logs/
        os.environ[ARTIFACTS_VARIABLE] = str(Path(__file__).resolve().parents[1] / "dbt_project" / "target" /
                                             f"xdist-{worker}")
    if not os.environ.get(ROLES_DIR_VARIABLE):
        # roles are cluster-wide: every test, worker and subprocess logging in to the test server shares one set of
        # passwords, whatever ALLIANCE_HOME a test chooses (alliance/roles.py roles_dir)
        os.environ[ROLES_DIR_VARIABLE] = str(Path(__file__).resolve().parents[1] / ".alliance" / "test-roles")
    if not os.environ.get(STATEMENTS_DIR_VARIABLE):
        # a transform issues partner statements (§9.1): tests that do not choose a folder write to a temporary one,
        # never into the checkout's .alliance/
        os.environ[STATEMENTS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="alliance_test_statements_")
    config.addinivalue_line("markers", "dates: the outcome could depend on the date; also run under shifted clocks")
    config.addinivalue_line("markers", "dates_pinned: a costly dates test with pinned dates (make test-clocks only)")


def pytest_collection_modifyitems(items) -> None:  # noqa: ANN001 - pytest's hook
    for item in items:
        node = item.nodeid.split("[")[0]
        for names, marker in ((DATE_TOUCHING, pytest.mark.dates), (DATES_PINNED, pytest.mark.dates_pinned)):
            if node.split("::")[0] in names or node in names:
                item.add_marker(marker)
        if node.split("::")[0] in SERIAL_MODULES or node in SERIAL_MODULES:
            item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))
