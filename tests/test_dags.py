"""The DAGs import cleanly and are wired by assets: ingest outlets feed the transform's schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from alliance.assets import statements_dir, statements_uri

DAGS = Path(__file__).parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("airflow_home")
    mp.setenv("AIRFLOW_HOME", str(home))
    mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    mp.setenv("ALLIANCE_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:6543/alliance")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    yield bag
    mp.undo()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"alliance_ingest", "alliance_transform"} <= set(dagbag.dag_ids)


def _uris(assets) -> set[str]:
    return {a.uri for a in assets}


def test_ingest_outlets_are_raw_assets(dagbag):
    dag = dagbag.dags["alliance_ingest"]
    orders = dag.get_task("ingest_orders")
    clicks = dag.get_task("ingest_clicks")
    assert _uris(orders.outlets) == {"postgres://127.0.0.1:6543/alliance/raw/orders"}
    assert _uris(clicks.outlets) == {"postgres://127.0.0.1:6543/alliance/raw/clicks"}
    assert orders.retries >= 1


def test_transform_is_scheduled_on_raw_assets_and_publishes_analytics(dagbag):
    dag = dagbag.dags["alliance_transform"]
    scheduled = {asset.uri for asset in dag.timetable.asset_condition.objects}
    assert scheduled == {
        "postgres://127.0.0.1:6543/alliance/raw/orders",
        "postgres://127.0.0.1:6543/alliance/raw/clicks",
    }
    published = _uris(dag.get_task("publish").outlets)
    assert "postgres://127.0.0.1:6543/alliance/analytics/fct_order_attribution" in published
    upstream = dag.get_task("publish").upstream_task_ids
    assert upstream == {"quality_gate"}
    assert dag.get_task("quality_gate").upstream_task_ids == {"dbt_build", "prepare"}
    assert dag.get_task("alerts").upstream_task_ids == {"publish"}
    statements = dag.get_task("statements")
    assert statements.upstream_task_ids == {"publish"}
    assert _uris(statements.outlets) == {statements_uri()}, "the asset downstream senders watch"
    assert statements_uri() == statements_dir().as_uri() and statements_uri().startswith("file:///")


def test_dag_files_only_wire(dagbag):
    """Logic lives in packages: DAG files stay short and call into alliance/connectors."""
    for path in DAGS.glob("*.py"):
        text = path.read_text()
        assert "select " not in text.lower() and "psycopg" not in text and "requests" not in text


def test_failures_notify_retries_back_off_and_backfill_param(dagbag):
    from alliance.airflow_support import AllianceFailureNotifier

    ingest = dagbag.dags["alliance_ingest"]
    transform = dagbag.dags["alliance_transform"]
    for dag in (ingest, transform):
        for task in dag.tasks:
            assert any(isinstance(cb, AllianceFailureNotifier) for cb in task.on_failure_callback or []), task
    orders = ingest.get_task("ingest_orders")
    assert orders.retry_exponential_backoff and orders.retries >= 2
    assert transform.get_task("quality_gate").retries == 0, "a failed gate notifies at once"
    assert "since" in ingest.params and ingest.params["since"] is None


def test_partner_pools_follow_the_mapped_order():
    from types import SimpleNamespace

    from alliance.airflow_policy import pool_spec, source_for
    from alliance.config import load_config
    from devstack.sandbox.env import load_sandbox_env

    load_sandbox_env()
    cfg = load_config(Path(__file__).parents[1] / "config" / "demo.yml")
    pools = {p["name"]: p for p in pool_spec(cfg)}
    assert set(pools) == {"alliance_northwind", "alliance_lumen", "alliance_tidewater", "alliance_alliance_network"}
    assert all(p["slots"] == 1 for p in pools.values())
    assert "requests/s" in pools["alliance_northwind"]["description"]
    assert source_for("ingest_orders", 1, cfg) == "lumen"
    assert source_for("ingest_clicks", 0, cfg) == "alliance_network"
    assert source_for("ingest_orders", -1, cfg) is None and source_for("prepare", 0, cfg) is None
    from alliance.ingest_task import backfill_start

    assert str(backfill_start({"since": "2026-10-01"})) == "2026-10-01"
    backfill = SimpleNamespace(run_type="backfill")
    from datetime import UTC, datetime

    assert str(backfill_start({}, backfill, datetime(2026, 9, 3, 5, tzinfo=UTC))) == "2026-09-03"
    assert backfill_start({}, SimpleNamespace(run_type="scheduled"), datetime(2026, 9, 3, tzinfo=UTC)) is None


def test_transform_today_is_pinned_by_alliance_as_of(monkeypatch):
    """The DAG's "today" (lock dates, alert periods) can be pinned, as `alliance transform --as-of` pins the CLI's:
    the live tests run the DAGs at a fixed date, so their outcome does not depend on the day they run."""
    from datetime import date

    from alliance.airflow_support import dag_as_of

    monkeypatch.delenv("ALLIANCE_AS_OF", raising=False)
    assert dag_as_of() is None
    monkeypatch.setenv("ALLIANCE_AS_OF", "2026-12-05")
    assert dag_as_of() == date(2026, 12, 5)
    monkeypatch.setenv("ALLIANCE_AS_OF", "5 Dec 2026")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        dag_as_of()
