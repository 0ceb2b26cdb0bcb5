"""`make docs` builds offline, and the docs carry what BI users read: contracts, descriptions, the exposure."""

from __future__ import annotations

import json
from pathlib import Path

from alliance.config import load_config
from alliance.docs import build_docs
from alliance.schemas import PUBLISHED_TABLES

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = set(PUBLISHED_TABLES)  # read from the exposure by alliance/schemas.py; dbt's own parse must agree below


def test_docs_build_offline_with_contracts_descriptions_and_exposure() -> None:
    html = build_docs(load_config(ROOT / "config" / "demo.yml", require_secrets=False))
    assert html.stat().st_size > 100_000
    manifest = json.loads((html.parent / "manifest.json").read_text())  # beside it, in dbt's target directory
    marts = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"
             and n["name"] in PUBLISHED}
    assert set(marts) == PUBLISHED
    for name, node in marts.items():
        assert node["contract"]["enforced"], name
        assert node["config"]["persist_docs"] == {"relation": True, "columns": True}, name
        assert node["description"], name
        for column in node["columns"].values():
            assert column["data_type"] and column["description"], (name, column["name"])
    exposure = manifest["exposures"]["exposure.alliance.alliance_bi"]
    assert {dep.split(".")[-1] for dep in exposure["depends_on"]["nodes"]} == PUBLISHED
    assert "alliance_bi" in html.read_text()
