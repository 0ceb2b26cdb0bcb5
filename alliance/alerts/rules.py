"""Alert rules file (config/alerts.yml): parsed and validated once, with messages naming file, rule, key and fix."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

# Numeric columns of analytics.partner_kpis_daily a rule may watch (PRODUCT.md section 5).
KPI_COLUMNS = (
    "clicks_sent",
    "referred_orders",
    "conversion_rate",
    "attributed_revenue_rc",
    "net_attributed_revenue_rc",
    "aov_rc",
    "refund_rate",
    "new_customer_rate",
    "epc_rc",
    "commission_earned_rc",
    "commission_owed_rc",
)
RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class AlertRulesError(ValueError):
    """The alert rules file is unusable; the message names the file, the rule, the key and the fix."""


class AlertRule(BaseModel):
    """One absolute-threshold rule: fire when `kpi` is above (or below) the threshold on a partner's day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kpi: str
    above: Decimal | None = None
    below: Decimal | None = None
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _check(self) -> AlertRule:
        if not RULE_ID.match(self.id):
            raise ValueError(f"id: `{self.id}` must be a lower-case slug ([a-z][a-z0-9_]*)")
        if self.kpi not in KPI_COLUMNS:
            raise ValueError(f"kpi: unknown KPI `{self.kpi}`; use one of {', '.join(KPI_COLUMNS)}")
        if (self.above is None) == (self.below is None):
            raise ValueError("above/below: give exactly one of `above: <number>` or `below: <number>`")
        return self

    @property
    def comparison(self) -> Literal["above", "below"]:
        return "above" if self.above is not None else "below"

    @property
    def threshold(self) -> Decimal:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "rule"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key `{key}`; allowed keys: id, kpi, above, below, severity"
        elif item["type"] == "literal_error":
            message = f"key `{key}`: {message}"
        elif item["type"] in ("decimal_parsing", "decimal_type"):
            message = f"key `{key}`: must be a number, got {item.get('input')!r}"
        elif item["type"] == "missing":
            message = f"missing key `{key}`"
        parts.append(message)
    return "; ".join(parts)


def load_rules(path: str | Path) -> list[AlertRule]:
    """Read and validate the rules file; raise AlertRulesError with file, rule id, key and fix."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise AlertRulesError(f"{path}: alert rules file not found; create it or fix `alerts:` in the config") from exc
    except yaml.YAMLError as exc:
        raise AlertRulesError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("rules", []), list):
        raise AlertRulesError(f"{path}: expected a mapping with a `rules:` list at the top level")
    extra = set(document) - {"rules"}
    if extra:
        raise AlertRulesError(f"{path}: unknown top-level key(s) {sorted(extra)}; only `rules:` is allowed")
    rules: list[AlertRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("rules") or []):
        label = f"rule `{raw.get('id')}`" if isinstance(raw, dict) and raw.get("id") else f"rule #{index + 1}"
        if not isinstance(raw, dict):
            raise AlertRulesError(f"{path}: {label}: expected a mapping with id, kpi, above|below, severity")
        try:
            rule = AlertRule.model_validate(raw)
        except ValidationError as exc:
            raise AlertRulesError(f"{path}: {label}: {_explain(exc)}") from None
        if rule.id in seen:
            raise AlertRulesError(f"{path}: {label}: key `id`: duplicate rule id; give every rule a unique id")
        seen.add(rule.id)
        rules.append(rule)
    return rules
