"""Jinja2 filters that format the marts' numbers for people; they round for display and compute nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

DASH = "\u2014"


def money(value: Decimal | None) -> str:
    """1,234.56 in the reporting currency; a dash for no value."""
    return DASH if value is None else f"{value:,.2f}"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def rate(value: Decimal | None) -> str:
    """A share (0.1234) as a percentage (12.34 %)."""
    return DASH if value is None else f"{value:.2%}".replace("%", "\u202f%")


def attainment(value: Decimal | None) -> str:
    """An attainment (0.8765) as a whole-ish percentage (87.7 %)."""
    return DASH if value is None else f"{value:.1%}".replace("%", "\u202f%")


def month(value: date) -> str:
    return f"{value:%B %Y}"


def short_month(value: date) -> str:
    return f"{value:%b %Y}"


def day(value: date) -> str:
    return value.isoformat()


def number(value: Any, kind: str) -> str:
    """Format with the filter named `kind` (the charts and alert groups carry the kind of their values)."""
    return FILTERS[kind](value)


FILTERS: dict[str, Callable[..., str]] = {
    "money": money, "count": count, "rate": rate, "attainment": attainment, "month": month,
    "short_month": short_month, "day": day, "number": number,
}


def kpi_kind(kpi: str | None) -> str:
    """Which filter shows a KPI's values: money for `_rc` columns, count for clicks and orders, a share otherwise
    (rates, pace and held-share values)."""
    if kpi and kpi.endswith("_rc"):
        return "money"
    return "count" if kpi in ("clicks_sent", "referred_orders") else "rate"


FILTERS["kpi_kind"] = kpi_kind
