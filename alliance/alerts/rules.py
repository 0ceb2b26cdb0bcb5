"""Alert rules file (config/alerts.yml): rules and channels, parsed and validated once, with messages naming
file, rule or channel, key and fix.

Four kinds of rule, told apart by their keys:
  threshold  `kpi` + `above|below`                         the KPI on a partner's day vs a number
  trailing   `kpi` + `trailing_days` + `change_below|change_above` (+ `min_volume`)
                                                           the KPI on a day vs its average over the N days before
             `kpi` + `trailing_days` + `sensitivity` + `direction` (+ `min_training_days`)
                                                           z-score: the day vs the window's mean and its variability
  pace       `pace_below` (+ `kpi`: the objective metric)  projected month-end attainment of an objective
  held_share `held_share_above` (+ `min_orders`)           a referrer's share of held orders in a month (§8.5)

Every rule also takes `detection_days` (default 2: only periods ending within that many days of the run's as-of
date may open an alert, so a first run on a long history does not page about September), `delivery` (immediate,
or digest: collected and sent once a day per channel), `severity` and `channels`; threshold and trailing rules take
`min_day_volume` (the day itself must reach it: a day with 3 clicks never alerts on conversion).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
# Volume columns a trailing rule may require a minimum of (counts and money summed over the window).
VOLUME_COLUMNS = ("clicks_sent", "referred_orders", "attributed_revenue_rc", "commission_earned_rc")
RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
RULE_KEYS = ("id", "kpi", "above", "below", "trailing_days", "change_below", "change_above", "sensitivity",
             "direction", "min_training_days", "min_volume", "min_day_volume", "pace_below", "min_elapsed_days",
             "held_share_above", "min_orders", "detection_days", "delivery", "severity", "channels")
DEFAULT_DETECTION_DAYS = 2
CHANNEL_TYPES = ("log", "webhook", "slack", "email")


class AlertRulesError(ValueError):
    """The alert rules file is unusable; the message names the file, the rule, the key and the fix."""


class MinVolume(BaseModel):
    """A volume floor: `min_volume` sums `kpi` over the trailing window and the day, `min_day_volume` takes the day
    alone; below it the rule stays quiet (1 order out of 2 pages nobody)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kpi: str
    at_least: Decimal = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> MinVolume:
        if self.kpi not in VOLUME_COLUMNS:
            raise ValueError(f"kpi: `{self.kpi}` is not a volume; use one of {', '.join(VOLUME_COLUMNS)}")
        return self


class AlertRule(BaseModel):
    """One rule; `kind` says which comparison it makes (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kpi: str | None = None
    above: Decimal | None = None
    below: Decimal | None = None
    trailing_days: int | None = Field(default=None, ge=2, le=90)
    change_below: Decimal | None = Field(default=None, lt=0, ge=-1)
    change_above: Decimal | None = Field(default=None, gt=0)
    sensitivity: Decimal | None = Field(default=None, gt=0, le=10)
    direction: Literal["above", "below"] | None = None
    min_training_days: int | None = Field(default=None, ge=2, le=90)
    min_volume: MinVolume | None = None
    min_day_volume: MinVolume | None = None
    pace_below: Decimal | None = Field(default=None, gt=0)
    min_elapsed_days: int = Field(default=5, ge=1, le=31)
    held_share_above: Decimal | None = Field(default=None, gt=0, lt=1)
    min_orders: int | None = Field(default=None, ge=1)
    detection_days: int = Field(default=DEFAULT_DETECTION_DAYS, ge=1, le=366)
    delivery: Literal["immediate", "digest"] = "immediate"
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> AlertRule:
        if not RULE_ID.match(self.id):
            raise ValueError(f"id: `{self.id}` must be a lower-case slug ([a-z][a-z0-9_]*)")
        if self.kpi is not None and self.kpi not in KPI_COLUMNS:
            raise ValueError(f"kpi: unknown KPI `{self.kpi}`; use one of {', '.join(KPI_COLUMNS)}")
        trailing = (self.trailing_days, self.change_below, self.change_above, self.sensitivity, self.direction,
                    self.min_training_days, self.min_volume)
        if self.held_share_above is not None:
            if any(v is not None for v in (self.kpi, self.above, self.below, self.pace_below, self.min_day_volume,
                                           *trailing)):
                raise ValueError("held_share_above: a held-share rule takes only `held_share_above`, `min_orders`, "
                                 "`severity` and `channels` (it watches held orders, not a KPI column)")
            return self
        if self.min_orders is not None:
            raise ValueError("min_orders: only a held-share rule takes it; add `held_share_above: <0..1>`")
        if self.pace_below is not None:
            if any(v is not None for v in (self.above, self.below, self.min_day_volume, *trailing)):
                raise ValueError("pace_below: a pace rule takes only `kpi` (the objective metric, optional), "
                                 "`pace_below`, `min_elapsed_days`, `detection_days`, `delivery`, `severity` and "
                                 "`channels`")
            return self
        if self.kpi is None:
            raise ValueError("missing key `kpi`")
        if self.trailing_days is not None or any(v is not None for v in trailing[1:]):
            if self.above is not None or self.below is not None:
                raise ValueError("above/below: a trailing rule compares a relative change; use "
                                 "`change_below: -0.5` or `change_above: 0.5`, not above/below")
            if self.trailing_days is None:
                raise ValueError("trailing_days: a trailing rule needs `trailing_days: <2..90>`")
            if self.sensitivity is not None or self.direction is not None:
                return self._check_zscore()
            if (self.change_below is None) == (self.change_above is None):
                raise ValueError("change_below/change_above: give exactly one relative change, "
                                 "e.g. `change_below: -0.5` (halved) or `change_above: 1.0` (doubled), "
                                 "or a z-score with `sensitivity: 3` and `direction: above|below`")
            if self.min_training_days is not None and self.min_training_days > self.trailing_days:
                raise ValueError(f"min_training_days: {self.min_training_days} is more than the "
                                 f"{self.trailing_days} trailing_days the window holds")
            return self
        if (self.above is None) == (self.below is None):
            raise ValueError("above/below: give exactly one of `above: <number>` or `below: <number>`")
        return self

    def _check_zscore(self) -> AlertRule:
        if self.change_below is not None or self.change_above is not None:
            raise ValueError("sensitivity: a z-score rule compares with the window's variability; drop "
                             "`change_below`/`change_above` or drop `sensitivity`/`direction`")
        if self.sensitivity is None or self.direction is None:
            raise ValueError("sensitivity/direction: a z-score rule needs both, e.g. `sensitivity: 3` (standard "
                             "deviations from the trailing mean) and `direction: above` (or below)")
        assert self.trailing_days is not None
        if self.training_days_needed > self.trailing_days:
            raise ValueError(f"min_training_days: {self.training_days_needed} is more than the {self.trailing_days} "
                             "trailing_days the window holds; lower it or widen the window")
        return self

    @property
    def method(self) -> Literal["change", "zscore"] | None:
        """How a trailing rule judges the day: relative change of the mean, or z-score (None for other kinds)."""
        if self.trailing_days is None:
            return None
        return "zscore" if self.sensitivity is not None else "change"

    @property
    def training_days_needed(self) -> int:
        """Days with a value the trailing window must hold: a z-score needs a spread to learn from (default 7,
        or the whole window when shorter); a relative change one day."""
        if self.min_training_days is not None:
            return self.min_training_days
        if self.sensitivity is not None and self.trailing_days is not None:
            return min(7, self.trailing_days)
        return 1

    @property
    def kind(self) -> Literal["threshold", "trailing", "pace", "held_share"]:
        if self.held_share_above is not None:
            return "held_share"
        if self.pace_below is not None:
            return "pace"
        return "trailing" if self.trailing_days is not None else "threshold"

    @property
    def comparison(self) -> Literal["above", "below"]:
        if self.direction is not None:
            return self.direction
        above = (self.above, self.change_above, self.held_share_above)
        return "above" if any(v is not None for v in above) else "below"

    @property
    def threshold(self) -> Decimal:
        """The number the rule compares with: absolute value, relative change, z-score, or attainment share."""
        for value in (self.above, self.below, self.change_above, self.change_below, self.sensitivity,
                      self.pace_below, self.held_share_above):
            if value is not None:
                return value
        raise AssertionError("validated rule without a threshold")


class ChannelConfig(BaseModel):
    """A named destination. Secrets and addresses come from environment variables named here, never the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["log", "webhook", "slack", "email"]
    url_env: str | None = None
    secret_env: str | None = None
    to_env: str | None = None
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> ChannelConfig:
        for key in ("url_env", "secret_env", "to_env"):
            value = getattr(self, key)
            if value is not None and not ENV_NAME.match(value):
                raise ValueError(f"{key}: `{value}` must be an environment variable NAME (e.g. ALLIANCE_X_URL), "
                                 "not the secret itself")
        if self.type in ("webhook", "slack") and self.url_env is None:
            raise ValueError(f"url_env: a {self.type} channel needs `url_env: <ENV VAR holding the URL>`")
        if self.type == "webhook" and self.secret_env is None:
            raise ValueError("secret_env: a webhook channel signs its body; give `secret_env: <ENV VAR>`")
        return self


class AlertsFile(BaseModel):
    """The parsed file: rules plus channels (the `log` channel always exists)."""

    rules: list[AlertRule]
    channels: dict[str, ChannelConfig]
    default_channels: tuple[str, ...] = ("log",)

    def channels_for(self, rule: AlertRule) -> tuple[str, ...]:
        return rule.channels if rule.channels is not None else self.default_channels


def _explain(error: ValidationError, allowed: tuple[str, ...]) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "rule"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key `{key}`; allowed keys: {', '.join(allowed)}"
        elif item["type"] in ("literal_error", "greater_than", "less_than", "greater_than_equal",
                              "less_than_equal", "int_parsing", "int_type", "tuple_type"):
            message = f"key `{key}`: {message}"
        elif item["type"] in ("decimal_parsing", "decimal_type", "float_parsing"):
            message = f"key `{key}`: must be a number, got {item.get('input')!r}"
        elif item["type"] == "missing":
            message = f"missing key `{key}`"
        elif item["type"] == "value_error" and item["loc"]:  # a nested mapping's check (min_volume, min_day_volume)
            message = f"{key}.{message}"
        parts.append(message)
    return "; ".join(parts)


def load_alerts_file(path: str | Path) -> AlertsFile:
    """Read and validate rules and channels; raise AlertRulesError naming file, rule/channel, key and fix."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise AlertRulesError(f"{path}: alert rules file not found; create it or fix `alerts:` in the config") from exc
    except yaml.YAMLError as exc:
        raise AlertRulesError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        return AlertsFile(rules=[], channels={"log": ChannelConfig(type="log")})
    if not isinstance(document, dict) or not isinstance(document.get("rules", []), list):
        raise AlertRulesError(f"{path}: expected a mapping with a `rules:` list at the top level")
    extra = set(document) - {"rules", "channels", "default_channels"}
    if extra:
        raise AlertRulesError(
            f"{path}: unknown top-level key(s) {sorted(extra)}; allowed: rules, channels, default_channels"
        )
    channels: dict[str, ChannelConfig] = {"log": ChannelConfig(type="log")}
    raw_channels = document.get("channels") or {}
    if not isinstance(raw_channels, dict):
        raise AlertRulesError(f"{path}: `channels:` must be a mapping of name -> {{type: ..., ...}}")
    for name, raw in raw_channels.items():
        if not isinstance(name, str) or not RULE_ID.match(name):
            raise AlertRulesError(f"{path}: channel `{name}`: name must be a lower-case slug")
        try:
            channels[name] = ChannelConfig.model_validate(raw or {})
        except ValidationError as exc:
            allowed = tuple(ChannelConfig.model_fields)
            raise AlertRulesError(f"{path}: channel `{name}`: {_explain(exc, allowed)}") from None
    default_channels = document.get("default_channels", ["log"])
    if not isinstance(default_channels, list) or not all(isinstance(c, str) for c in default_channels):
        raise AlertRulesError(f"{path}: `default_channels:` must be a list of channel names")
    for name in default_channels:
        if name not in channels:
            raise AlertRulesError(f"{path}: default_channels: unknown channel `{name}`; "
                                  f"define it under `channels:` (known: {', '.join(channels)})")
    rules: list[AlertRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("rules") or []):
        label = f"rule `{raw.get('id')}`" if isinstance(raw, dict) and raw.get("id") else f"rule #{index + 1}"
        if not isinstance(raw, dict):
            raise AlertRulesError(f"{path}: {label}: expected a mapping with id, kpi, above|below, severity")
        try:
            rule = AlertRule.model_validate(raw)
        except ValidationError as exc:
            raise AlertRulesError(f"{path}: {label}: {_explain(exc, RULE_KEYS)}") from None
        if rule.id in seen:
            raise AlertRulesError(f"{path}: {label}: key `id`: duplicate rule id; give every rule a unique id")
        for name in rule.channels or ():
            if name not in channels:
                raise AlertRulesError(f"{path}: {label}: key `channels`: unknown channel `{name}`; "
                                      f"define it under `channels:` (known: {', '.join(channels)})")
        seen.add(rule.id)
        rules.append(rule)
    return AlertsFile(rules=rules, channels=channels, default_channels=tuple(default_channels))


def load_rules(path: str | Path) -> list[AlertRule]:
    """The rules of the file (validated together with its channels)."""
    return load_alerts_file(path).rules
