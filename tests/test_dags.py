"""The DAGs import cleanly and are wired by assets: ingest outlets feed the transform's schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_dag_files_only_wire(dagbag):
    """Logic lives in packages: DAG files stay short and call into alliance/connectors."""
    for path in DAGS.glob("*.py"):
        text = path.read_text()
        assert "select " not in text.lower() and "psycopg" not in text and "requests" not in text
