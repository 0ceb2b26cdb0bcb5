"""Compare the published warehouse with tests/oracle.py: every column of every row of every published table.

Why: a check that reads only some columns lets the others drift. Here a published column the oracle has no value
for, a missing row and an extra row are all differences, reported per (table, column) with a few sample keys (keys
and amounts only: customer keys are hashes, never e-mails).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from oracle import OracleResult

TABLE_KEYS = {
    "fct_orders": ("partner_id", "order_id"),
    "fct_referrals": ("network_id", "click_id"),
    "fct_order_attribution": ("partner_id", "order_id", "attribution_model", "referrer_partner_id"),
    "partner_kpis_daily": ("kpi_date", "partner_id"),
    "partner_kpis_monthly": ("partner_id", "month"),
    "partner_balances": ("referrer_partner_id", "destination_partner_id", "month"),
    "objective_progress": ("partner_id", "month", "metric"),
    "commission_adjustments": ("destination_partner_id", "referrer_partner_id", "line_key"),
    "partner_statement_lines": ("partner_id", "direction", "counterparty_partner_id", "line_key"),
    "kpi_alerts": ("alert_id",),
    "kpi_alert_observations": ("rule_id", "partner_id", "kpi", "period"),
    "partner_claims": ("claim_id",),
}
# Run metadata, not numbers: when and by which run an alert fired.
NOT_COMPUTED = {"kpi_alerts": {"fired_at", "run_id", "resolved_at", "resolved_run_id", "resolved_value"}}


@dataclass(frozen=True)
class Difference:
    table: str
    column: str  # '<row>' for a missing or extra row, '<column>' for an uncovered column
    key: tuple
    published: Any
    expected: Any

    def __str__(self) -> str:
        return f"{self.table}.{self.column} {self.key}: published {self.published!r}, oracle {self.expected!r}"


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return Decimal(a) == Decimal(b)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    if isinstance(a, date) and isinstance(b, date):
        return a == b
    return a == b


def published_rows(conn: psycopg.Connection, table: str) -> tuple[list[str], list[tuple]]:
    cur = conn.execute(f"select * from analytics.{table}")  # noqa: S608 - fixed table names
    return [d.name for d in cur.description], cur.fetchall()


def compare_published(url: str, truth: OracleResult, salt: str, tables: tuple[str, ...] | None = None
                      ) -> list[Difference]:
    """Every difference between analytics.* and the oracle (empty when they agree on every cell)."""
    expected = truth.tables(salt)
    diffs: list[Difference] = []
    with psycopg.connect(url) as conn:
        for table in tables or tuple(TABLE_KEYS):
            keys = TABLE_KEYS[table]
            columns, rows = published_rows(conn, table)
            want = expected[table]
            ignored = NOT_COMPUTED.get(table, set())
            known = set(next(iter(want.values())).keys()) if want else set()
            for column in columns:
                if want and column not in known and column not in ignored:
                    diffs.append(Difference(table, "<column>", (column,), "published", "no oracle value"))
            got: dict[tuple, dict[str, Any]] = {}
            for row in rows:
                record = dict(zip(columns, row, strict=True))
                key = tuple(record[k] for k in keys)
                if key in got:
                    diffs.append(Difference(table, "<row>", key, "published twice", "once"))
                got[key] = record
            for key in got.keys() - want.keys():
                diffs.append(Difference(table, "<row>", key, "extra row", None))
            for key in want.keys() - got.keys():
                diffs.append(Difference(table, "<row>", key, None, "missing row"))
            for key in want.keys() & got.keys():
                for column, value in want[key].items():
                    if column not in got[key]:
                        diffs.append(Difference(table, "<column>", (column,), "not published", "expected"))
                        continue
                    if not _same(got[key][column], value):
                        diffs.append(Difference(table, column, key, got[key][column], value))
    # one "<column>" line per column, not per row
    unique: dict[tuple, Difference] = {}
    for d in diffs:
        unique.setdefault((d.table, d.column, d.key, str(d.published)), d)
    return list(unique.values())


def summarize(diffs: list[Difference], samples: int = 3) -> str:
    """Counts per (table, column) with a few samples each: readable in an assertion message."""
    grouped: dict[tuple[str, str], list[Difference]] = defaultdict(list)
    for d in diffs:
        grouped[(d.table, d.column)].append(d)
    lines = [f"{len(diffs)} differences from the oracle:"]
    for (table, column), items in sorted(grouped.items()):
        lines.append(f"  {table}.{column}: {len(items)}")
        lines.extend(f"    {d}" for d in items[:samples])
    return "\n".join(lines)
