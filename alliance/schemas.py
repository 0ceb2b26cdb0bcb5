"""Where things live in the warehouse, named once: the schemas and the published tables.

Why a leaf: the publish, the gate, the alerts, the DAG assets, `alliance status`, the demo and the tests all need
these names; each used to keep its own copy. This module imports nothing of alliance, so anything may import it.

The published tables are not listed here: they are read from the dbt exposure
(`dbt_project/models/marts/_exposures.yml`, `depends_on: ref('...')`), the one place that says what BI reads.
Adding a mart to the exposure publishes it everywhere (tests check the GX checkpoint and the oracle follow).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

RAW_SCHEMA = "raw"  # landed partner data and its bookkeeping (connectors/)
OPS_SCHEMA = "ops"  # operational state: run log, alerts, deliveries
PUBLISHED_SCHEMA = "analytics"  # what BI reads: the gate-checked snapshot, swapped in whole
PREVIOUS_SCHEMA = "analytics_prev"  # the snapshot before, kept for `alliance rollback`
SWAP_SCHEMA = "analytics_swap"  # transient name during a swap
BUILD_SCHEMA = "alliance_build"  # where a transform run builds before the gate
RESERVED_SCHEMAS = (PUBLISHED_SCHEMA, PREVIOUS_SCHEMA, SWAP_SCHEMA, RAW_SCHEMA, OPS_SCHEMA, "public")

EXPOSURES_FILE = Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "marts" / "_exposures.yml"
PUBLISHED_EXPOSURE = "alliance_bi"
_REF = re.compile(r"""^\s*ref\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\)\s*$""")


def published_tables(path: Path = EXPOSURES_FILE, exposure: str = PUBLISHED_EXPOSURE) -> tuple[str, ...]:
    """The models the BI exposure depends on, in the file's order: the tables publish swaps into `analytics`."""
    exposures = (yaml.safe_load(path.read_text()) or {}).get("exposures") or []
    found = next((e for e in exposures if e.get("name") == exposure), None)
    if found is None:
        raise ValueError(f"{path}: no exposure named {exposure!r}")
    tables = []
    for dependency in found.get("depends_on") or []:
        match = _REF.match(str(dependency))
        if match is None:
            raise ValueError(f"{path}: {exposure} depends_on {dependency!r} is not ref('model')")
        tables.append(match.group(1))
    if not tables:
        raise ValueError(f"{path}: exposure {exposure!r} depends on nothing")
    return tuple(tables)


PUBLISHED_TABLES: tuple[str, ...] = published_tables()
