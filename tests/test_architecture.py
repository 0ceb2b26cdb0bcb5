"""The shape of the code (docs/architecture.md): each fact once, imports that point one way, a wheel of the product.

The import contracts themselves are pyproject.toml's [tool.importlinter], run by `lint-imports` in `make lint` and
`make test`; this file checks what they cannot say: that the contracts' module lists stay whole, that no circle runs
across the packages (import-linter looks for circles between siblings only), and that the published-table list
read from the dbt exposure is the one the quality gate and the oracle cover.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import grimp
import pytest
from oracle_compare import TABLE_KEYS

from alliance.schemas import EXPOSURES_FILE, PUBLISHED_TABLES, published_tables

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONTRACTS = {c["id"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
# what connectors may import of alliance (ARCHITECTURE.md): config, the warehouse connection, and the migration
# runner that creates the raw tables they land into, with the lock registry it takes its key from
FOUNDATION = {"alliance.config", "alliance.warehouse", "alliance.migrate", "alliance.locks"}


def _children(package: str) -> set[str]:
    folder = ROOT / package.replace(".", "/")
    return {f"{package}.{p.stem if p.is_file() else p.name}" for p in folder.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}


def test_every_alliance_module_has_a_layer_and_connectors_see_only_the_foundation():
    children = _children("alliance")
    layered = {f"alliance.{m.strip()}" for layer in CONTRACTS["alliance-layers"]["layers"]
               for m in layer.replace(":", "|").split("|")}
    assert layered == children, "place every alliance module in a layer of [tool.importlinter] alliance-layers"
    forbidden = set(CONTRACTS["connectors-foundation"]["forbidden_modules"])
    assert forbidden | FOUNDATION == children and not forbidden & FOUNDATION, (
        "connectors-foundation must forbid every alliance module but the foundation")


def test_no_import_circle_across_the_packages():
    graph = grimp.build_graph("alliance", "connectors", "devstack", cache_dir=None)
    circles = [chain for module in sorted(graph.modules)
               for imported in sorted(graph.find_modules_directly_imported_by(module))
               if (chain := graph.find_shortest_chain(importer=imported, imported=module))]
    assert not circles, f"import circles (module ... back to it): {circles[:5]}"


def test_published_tables_are_read_from_the_exposure_and_covered_by_gate_and_oracle():
    assert PUBLISHED_TABLES == published_tables(EXPOSURES_FILE)
    assert len(set(PUBLISHED_TABLES)) == len(PUBLISHED_TABLES) >= 6
    checkpoint = json.loads((ROOT / "expectations" / "checkpoints" / "alliance_gate.json").read_text())
    suites = {d["name"] for d in checkpoint["validation_definitions"]} - {"raw_orders", "raw_clicks"}
    assert suites == set(PUBLISHED_TABLES), "every published table has a GX suite in the gate, and only those"
    alerting = {"kpi_alerts", "kpi_alert_observations"}  # analytics tables outside the BI exposure, compared too
    assert set(TABLE_KEYS) - alerting == set(PUBLISHED_TABLES), "the oracle compares every published table"


@pytest.mark.parametrize("text", [
    "exposures: []\n",
    "exposures:\n  - name: alliance_bi\n    depends_on: []\n",
    "exposures:\n  - name: alliance_bi\n    depends_on: [\"source('raw', 'orders')\"]\n",
])
def test_an_exposure_that_names_no_model_is_refused(tmp_path, text):
    path = tmp_path / "_exposures.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match="exposure|depends"):
        published_tables(path)


def test_the_wheel_ships_the_product_only():
    assert PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["alliance", "connectors"]
    for moved in ("sandbox", "demo.py", "airflow_local.py", "freshness.py"):
        assert not (ROOT / "alliance" / moved).exists(), f"alliance/{moved} belongs in devstack/"
