"""The partner scorecard: one self-contained HTML file (no script, no network) from the published marts.

It leads with the alliance: per partner, this month against last (partner_kpis_monthly: referred orders, attributed
revenue, conversion, commission earned and owed, balance, clawbacks, adjustments and held amounts), then each
objective's attainment with its pace (objective_pace_daily), then daily trends (partner_kpis_daily), then the
alerts grouped by partner and rule, open ones first, and who owes whom this month (partner_balances).

Why a Jinja2 template and server-drawn SVG (charts.py): every number on the page is a mart's, formatted, never
recomputed here; the file stays a few hundred kilobytes instead of plotly's 4.8 MB and renders with no JavaScript,
so nothing can fail in the reader's browser. The months are those of the as-of date the caller gives (the CLI's
`--as-of`), never the clock's inside this module.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from alliance.scorecard.charts import Chart, line_chart
from alliance.scorecard.format import FILTERS
from alliance.scorecard.queries import TREND_DAYS, ScorecardData, ScorecardError, read_scorecard
from alliance.warehouse import connect

__all__ = ["ScorecardError", "build_scorecard", "write_scorecard"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
MONTH_ROWS = (  # partner_kpis_monthly column, label, filter, row style
    ("referred_orders", "Referred orders", "count", ""),
    ("clicks_sent", "Clicks sent", "count", ""),
    ("conversion_rate", "Conversion", "rate", ""),
    ("attributed_revenue_rc", "Attributed revenue", "money", ""),
    ("commission_earned_rc", "Commission earned (referrer)", "money", ""),
    ("clawback_rc", "Clawbacks", "money", "sub"),
    ("adjustments_rc", "Adjustments", "money", "sub"),
    ("balance_earned_rc", "Balance earned", "money", ""),
    ("held_rc", "Held, not in balance", "money", "sub"),
    ("held_orders", "Held orders", "count", "sub"),
    ("commission_owed_rc", "Commission owed (destination)", "money", ""),
    ("balance_owed_rc", "Balance owed", "money", ""),
    ("net_balance_rc", "Net balance (earned - owed)", "money", "total"),
)
TRENDS = (  # partner_kpis_daily column, label, filter
    ("referred_orders", "Referred orders", "count"),
    ("attributed_revenue_rc", "Attributed revenue", "money"),
    ("conversion_rate", "Conversion", "rate"),
    ("commission_earned_rc", "Commission earned", "money"),
)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


def _months(data: ScorecardData) -> list[dict[str, Any]]:
    """One entry per partner with a row in either month: {partner, this, last} (None where it had none)."""
    partners: dict[str, dict[str, Any]] = {}
    for row in data.monthly:
        entry = partners.setdefault(row["partner_id"], {"partner": row["partner_id"], "this": None, "last": None})
        entry["this" if row["month"] == data.this_month else "last"] = row
    return list(partners.values())


def _objectives(data: ScorecardData) -> list[dict[str, Any]]:
    """Each objective's row at the as-of date with its chart: attainment to date against the even pace."""
    days: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in data.pace_days:
        days[(row["partner_id"], row["month"], row["metric"])].append(row)
    objectives = []
    for row in sorted(data.pace, key=lambda r: (r["month"] != data.this_month, r["partner_id"], r["metric"])):
        series = days[(row["partner_id"], row["month"], row["metric"])]
        chart = line_chart(
            [("attained", "actual", [(d["day"], d["attainment_to_date"]) for d in series]),
             ("even pace", "expected", [(d["day"], d["expected_attainment"]) for d in series])],
            first=row["month"], last=series[-1]["day"] if series else row["month"],
            references=[(Decimal(1), "target")])
        objectives.append({**row, "chart": chart})
    return objectives


def _trends(data: ScorecardData) -> list[dict[str, Any]]:
    """Per partner, one chart per trend KPI over the days up to the as-of date."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in data.trends:
        rows[row["partner_id"]].append(row)
    first = min((r["kpi_date"] for r in data.trends), default=data.as_of)
    trends = []
    for partner, days in rows.items():
        charts: list[tuple[str, str, Chart]] = [
            (label, fmt, line_chart([(label, "actual", [(d["kpi_date"], d[column]) for d in days])],
                                    first=first, last=data.as_of))
            for column, label, fmt in TRENDS
        ]
        trends.append({"partner": partner, "charts": charts, "days": len(days)})
    return trends


def build_scorecard(warehouse_url: str, as_of: date) -> str:
    """The scorecard HTML (a string) from the published analytics schema, for the months of `as_of`."""
    with connect(warehouse_url) as conn:
        data = read_scorecard(conn, as_of)
    return _environment().get_template("scorecard.html.j2").render(
        data=data, month_rows=MONTH_ROWS, partners=_months(data), objectives=_objectives(data), trends=_trends(data),
        trend_days=TREND_DAYS, alert_groups=data.alert_groups, pairs=data.pairs,
    )


def write_scorecard(warehouse_url: str, out: Path, as_of: date) -> Path:
    """Write the scorecard for `as_of` to `out` (parents created); returns the path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_scorecard(warehouse_url, as_of), encoding="utf-8")
    return out
