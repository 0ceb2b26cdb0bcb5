"""The alliance configuration: parsed and validated once into one typed object.

Every step (CLI, DAGs, tests) receives an `AllianceConfig`; nothing re-reads the YAML.
Bad config fails fast with one message naming the file, the key and the fix.
"""

from __future__ import annotations

import csv
import ipaddress
import itertools
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path("config/alliance.yml")
SLUG = r"^[a-z][a-z0-9_]{0,62}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, phrased for the person who has to fix the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    """§8.1: from the (from_orders + 1)-th commissioned order of a programme month on, `rate` applies."""

    from_orders: int = Field(ge=1)
    rate: Decimal = Field(ge=0, le=1)


class Commission(_Strict):
    type: Literal["percent", "flat"]
    rate: Decimal | None = Field(default=None, ge=0, le=1)
    new_customer_rate: Decimal | None = Field(default=None, ge=0, le=1)
    amount: Decimal | None = Field(default=None, ge=0)
    # §8 programme terms (optional): volume tiers, caps in the reporting currency, clawback after the lock date
    tiers: list[Tier] = []
    cap_per_order: Decimal | None = Field(default=None, ge=0)
    cap_per_month: Decimal | None = Field(default=None, ge=0)
    clawback: bool = False

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend(cls, tiers: list[Tier]) -> list[Tier]:
        for before, after in itertools.pairwise(tiers):
            if after.from_orders <= before.from_orders or after.rate <= before.rate:
                raise ValueError(
                    "tiers must ascend in both `from_orders` and `rate` (tier "
                    f"{{from_orders: {after.from_orders}}} follows {{from_orders: {before.from_orders}}}); "
                    "list them lowest first, each with more orders and a higher rate than the one before"
                )
        return tiers

    @property
    def has_monthly_terms(self) -> bool:
        """Terms that make an order's commission depend on the other orders of its programme month."""
        return bool(self.tiers) or self.cap_per_month is not None

    @model_validator(mode="after")
    def _fields_match_type(self) -> Commission:
        if self.type == "flat" and self.tiers:
            raise ValueError("`tiers` apply to percent contracts only; remove them or use type: percent")
        if self.type == "percent" and self.rate is None:
            raise ValueError("a percent commission needs `rate` (e.g. rate: 0.10)")
        if self.type == "flat" and self.amount is None:
            raise ValueError("a flat commission needs `amount` (e.g. amount: 5.00)")
        if self.type == "flat" and (self.rate is not None or self.new_customer_rate is not None):
            raise ValueError("a flat commission takes `amount` only, not `rate`")
        if self.type == "percent" and self.amount is not None:
            raise ValueError("a percent commission takes `rate`, not `amount`")
        return self


class Contract(Commission):
    referrer: Annotated[str, Field(pattern=SLUG)]
    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Contract:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError("`effective_to` (exclusive) must be after `effective_from`")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(value: str | None) -> str | None:
    """A partner API address: http(s) with a host, and https unless the host is loopback (the sandbox, tests).

    Why: the partner's token or Basic credentials travel with every request; over plain http anyone on
    the path reads them.
    """
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:  # never echoed: it would print the secret
        raise ValueError("holds credentials (`user:password@`); put the secret in the variable named by "
                         "`credentials_env` or in the Airflow connection of `credentials_conn`, never in base_url")
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"`{value}` is not an http(s) URL with a host; write e.g. https://shop.example.com")
    if scheme == "http" and not _is_loopback(host):
        raise ValueError(f"`{value}` is plain http: the partner's credentials would cross the network in clear "
                         f"text; use https://{parts.netloc}{parts.path} (http is accepted only for loopback hosts "
                         "such as 127.0.0.1 or localhost)")
    return value.strip()


class _ApiSource(_Strict):
    """What every pulled source shares: where its API is and where its secret comes from (one place only)."""

    base_url: str | None = None
    credentials_env: str | None = None  # environment variable holding the secret
    credentials_conn: str | None = None  # or: Airflow connection id holding it (login/password, or password)

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        return check_base_url(value)

    def _one_secret_source(self, platform: str) -> None:
        if self.credentials_env and self.credentials_conn:
            raise ValueError("set `credentials_env` or `credentials_conn`, not both: the secret must come from "
                             "exactly one place")
        if not self.credentials_env and not self.credentials_conn:
            raise ValueError(f"platform {platform} needs `credentials_env` (an environment variable name) or "
                             "`credentials_conn` (an Airflow connection id)")


class Partner(_ApiSource):
    id: Annotated[str, Field(pattern=SLUG)]
    name: str | None = None
    platform: Literal["shopify", "shopify_graphql", "woocommerce", "none"]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    referral_codes: list[str] = []
    commission: Commission | None = None
    contracts: list[Contract] = []
    requests_per_second: float | None = Field(default=None, gt=0)
    webhook_secret_env: str | None = None  # env var holding the secret that signs this partner's webhooks

    @model_validator(mode="after")
    def _storefront_needs_api(self) -> Partner:
        if self.platform != "none":
            if not self.base_url:
                raise ValueError(f"platform {self.platform} needs `base_url`")
            self._one_secret_source(self.platform)
        return self

    @property
    def has_storefront(self) -> bool:
        return self.platform != "none"


class ReferralNetwork(_ApiSource):
    id: Annotated[str, Field(pattern=SLUG)]
    platform: Literal["referral_network"]
    base_url: str
    requests_per_second: float | None = Field(default=None, gt=0)
    webhook_secret_env: str | None = None  # env var holding the secret that signs this network's webhooks

    @model_validator(mode="after")
    def _needs_secret(self) -> ReferralNetwork:
        self._one_secret_source(self.platform)
        return self


class Attribution(_Strict):
    model: Literal["last_click", "first_click", "linear", "position_based", "time_decay"] = "last_click"
    lookback_days: int = Field(default=30, ge=1, le=365)


class Objective(_Strict):
    partner_id: str
    month: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
    metric: str
    target: Decimal = Field(gt=0)

    @field_validator("month", mode="before")
    @classmethod
    def _month_as_text(cls, value: object) -> object:
        # YAML reads 2026-10 as text, but be lenient with a date.
        return value.strftime("%Y-%m") if isinstance(value, date) else value


class Gate(_Strict):
    """Bounds of the quality gate and the publish (README "Quality gate and publish")."""

    # Row count of each published table against the currently published snapshot: a drop by more than this
    # share fails the gate (0.5 = may lose at most half its rows); growth is unbounded unless set.
    max_row_count_drop: float = Field(default=0.5, ge=0, le=1)
    max_row_count_growth: float | None = Field(default=None, ge=0)
    row_count_floor: int = Field(default=100, ge=0)  # tables published with fewer rows are not bounded
    # Every partner with landed orders must have landed one, or had a successful orders load, this recently.
    freshness_hours: float | None = Field(default=48, gt=0)
    future_tolerance_minutes: float = Field(default=10, ge=0)  # clock skew allowed for "not in the future"
    data_docs: Literal["on_failure", "always", "never"] = "on_failure"
    lock_timeout_seconds: int = Field(default=60, ge=1, le=3600)  # publish waits this long for BI readers


class Holds(_Strict):
    """§8.5 fraud signals: a click-credited row is held when its latest credited click trips one of these."""

    min_seconds_click_to_order: int | None = Field(default=None, ge=0)
    max_clicks_per_hour: int | None = Field(default=None, ge=1)


class AllianceConfig(_Strict):
    reporting_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    attribution: Attribution = Attribution()
    lock_days: int = Field(default=30, ge=0, le=365)
    fx_rates: Path | None = None
    alerts: Path | None = None
    partners: list[Partner]
    referral_networks: list[ReferralNetwork] = []
    objectives: list[Objective] = []
    adjustments: Path | None = None  # §8.4 CSV: month,referrer,destination,amount,reason
    holds: Holds | None = None  # §8.5
    reviews: Path | None = None  # §8.5 CSV: partner_id,order_id,decision,reviewed_at
    claims: Path | None = None  # §9.2 a CSV file or a folder of them: claim_id,referrer_partner_id,...,claimed_at
    gate: Gate = Gate()
    source_file: Path | None = None

    @property
    def storefronts(self) -> list[Partner]:
        return [p for p in self.partners if p.has_storefront]

    def partner(self, partner_id: str) -> Partner:
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        raise KeyError(partner_id)

    def source_ids(self) -> list[str]:
        """Everything ingest pulls: storefront partners, then referral networks."""
        return [p.id for p in self.storefronts] + [n.id for n in self.referral_networks]


OBJECTIVE_METRICS = {
    "clicks_sent", "referred_orders", "attributed_revenue_rc", "net_attributed_revenue_rc",
    "commission_earned_rc", "commission_owed_rc",
}


def _expand_env(node: object) -> object:
    """Expand ${VAR} and ${VAR:-default} in strings, so URLs can follow the deployment."""
    if isinstance(node, str):
        def repl(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value:
                return value
            if match.group(2) is not None:
                return match.group(2)
            raise ConfigError(
                f"`${{{match.group(1)}}}` is used in the config but the environment variable is not set; "
                f"set it or write `${{{match.group(1)}:-default}}`"
            )
        return _ENV_REF.sub(repl, node)
    if isinstance(node, list):
        return [_expand_env(item) for item in node]
    if isinstance(node, dict):
        return {key: _expand_env(value) for key, value in node.items()}
    return node


def _key_path(loc: tuple[object, ...], raw: dict) -> str:
    """Turn pydantic's location into `partners[1] (id: lumen).platform`."""
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict) and "id" in node[item]:
                label += f" (id: {node[item]['id']})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _check_cross_references(cfg: AllianceConfig, where: str) -> None:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for kind, ident in [("partners", p.id) for p in cfg.partners] + [
        ("referral_networks", n.id) for n in cfg.referral_networks
    ]:
        if ident in seen:
            problems.append(f"{kind}: id `{ident}` is declared twice; give each partner and network a unique id")
        seen[ident] = kind
    partner_ids = {p.id for p in cfg.partners}
    owners: dict[str, str] = {}
    for partner in cfg.partners:
        for code in partner.referral_codes:
            key = code.strip().upper()
            if not key:
                problems.append(f"partners (id: {partner.id}).referral_codes: an empty code; remove it")
            elif key in owners and owners[key] != partner.id:
                problems.append(
                    f"partners (id: {partner.id}).referral_codes: code `{code}` is also claimed by "
                    f"`{owners[key]}`; a code must credit exactly one partner"
                )
            owners[key] = partner.id
        starts: dict[tuple[str, date | None], int] = {}
        for i, contract in enumerate(partner.contracts):
            where_c = f"partners (id: {partner.id}).contracts[{i}]"
            if contract.referrer not in partner_ids:
                problems.append(f"{where_c}.referrer: `{contract.referrer}` is not a declared partner id")
            if contract.referrer == partner.id:
                problems.append(f"{where_c}.referrer: a partner cannot pay itself")
            key = (contract.referrer, contract.effective_from)
            if key in starts:
                problems.append(
                    f"{where_c}.effective_from: two contracts for referrer `{contract.referrer}` start on "
                    f"{contract.effective_from}; give each a different `effective_from`"
                )
            starts[key] = i
        if partner.has_storefront and partner.commission is None:
            problems.append(
                f"partners (id: {partner.id}).commission: a storefront needs a default contract, "
                "e.g. `commission: {type: percent, rate: 0.10}`"
            )
    for i, objective in enumerate(cfg.objectives):
        if objective.partner_id not in partner_ids:
            problems.append(f"objectives[{i}].partner_id: `{objective.partner_id}` is not a declared partner id")
        if objective.metric not in OBJECTIVE_METRICS:
            problems.append(
                f"objectives[{i}].metric: `{objective.metric}` is not one of {', '.join(sorted(OBJECTIVE_METRICS))}"
            )
    currencies = {p.currency for p in cfg.storefronts} - {cfg.reporting_currency}
    if currencies and cfg.fx_rates is None:
        problems.append(
            f"fx_rates: partners sell in {', '.join(sorted(currencies))} but no `fx_rates` CSV is configured; "
            "add `fx_rates: fx_rates.csv` with columns date,currency,rate_to_reporting"
        )
    if cfg.fx_rates is not None and not cfg.fx_rates.is_file():
        problems.append(f"fx_rates: file {cfg.fx_rates} does not exist")
    for key in ("alerts", "adjustments", "reviews"):
        path = getattr(cfg, key)
        if path is not None and not path.is_file():
            problems.append(f"{key}: file {path} does not exist")
    if cfg.claims is not None and not (cfg.claims.is_file() or cfg.claims.is_dir()):
        problems.append(f"claims: {cfg.claims} is neither a CSV file nor a folder of CSV files")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def missing_secrets(cfg: AllianceConfig) -> list[str]:
    """Credential variables that are unset or blank, as `source.credentials_env: VAR`."""
    missing = []
    for source in [*cfg.storefronts, *cfg.referral_networks]:
        if source.credentials_env and not os.environ.get(source.credentials_env, "").strip():
            missing.append(f"{source.id}: {source.credentials_env}")
    return missing


def resolve_config_path(path: str | Path | None = None) -> Path:
    """`--config` first, then ALLIANCE_CONFIG, then config/alliance.yml."""
    chosen = path or os.environ.get("ALLIANCE_CONFIG") or DEFAULT_CONFIG
    return Path(chosen).expanduser().resolve()


def load_config(path: str | Path | None = None, *, require_secrets: bool = True) -> AllianceConfig:
    file = resolve_config_path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found; pass --config PATH or set ALLIANCE_CONFIG")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping with `partners:`")
    raw = _expand_env(raw)
    for key in ("fx_rates", "alerts", "adjustments", "reviews", "claims"):
        if raw.get(key):
            raw[key] = str((file.parent / raw[key]).resolve())
    if "alerts" not in raw and (file.parent / "alerts.yml").is_file():
        raw["alerts"] = str(file.parent / "alerts.yml")
    try:
        cfg = AllianceConfig(**raw, source_file=file)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            key = _key_path(err["loc"], raw)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "literal_error":
                msg = f"got `{err.get('input')}`; {msg.lower()}"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key; check its spelling against config/alliance.example.yml"
            messages.append(f"{key}: {msg}")
        raise ConfigError(f"{file}: " + "; ".join(messages)) from None
    _check_cross_references(cfg, str(file))
    read_adjustments(cfg)  # the §8 CSVs fail fast too, before anything touches the warehouse
    read_reviews(cfg)
    if require_secrets:
        missing = missing_secrets(cfg)
        problems = []
        if missing:
            problems.append("credentials_env not set for " + ", ".join(missing)
                            + "; export each variable (token, key:secret or sid:token) before running")
        if problems:
            raise ConfigError(f"{file}: " + "; ".join(problems))
    return cfg


def read_fx_rates(cfg: AllianceConfig) -> list[tuple[date, str, Decimal]]:
    """The fx_rates CSV as (date, currency, rate_to_reporting), checked row by row."""
    if cfg.fx_rates is None:
        return []
    rows: list[tuple[date, str, Decimal]] = []
    with cfg.fx_rates.open(newline="") as handle:
        reader = csv.DictReader(handle)
        expected = {"date", "currency", "rate_to_reporting"}
        if not reader.fieldnames or not expected <= set(reader.fieldnames):
            raise ConfigError(f"{cfg.fx_rates}: header must be date,currency,rate_to_reporting")
        for line, row in enumerate(reader, start=2):
            try:
                rate = Decimal(row["rate_to_reporting"])
                if rate <= 0:
                    raise InvalidOperation
                rows.append((date.fromisoformat(row["date"]), row["currency"].strip().upper(), rate))
            except (ValueError, InvalidOperation):
                raise ConfigError(
                    f"{cfg.fx_rates}: line {line}: expected an ISO date, a currency and a positive rate, got {row}"
                ) from None
    return rows


@dataclass(frozen=True)
class Adjustment:
    """§8.4: one row of the adjustments CSV (positive = the destination owes the referrer)."""

    line: int
    month: date  # first day of the month
    referrer: str
    destination: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class Review:
    """§8.5: the decision on the held rows of one order."""

    line: int
    partner_id: str
    order_id: str
    decision: Literal["approve", "reject"]
    reviewed_at: datetime  # UTC


def _csv_rows(path: Path, key: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a config CSV whose header must hold `columns`."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not set(columns) <= {name.strip() for name in reader.fieldnames}:
            raise ConfigError(f"{path}: {key}: the header must be {','.join(columns)}")
        return [
            (line, {(k or "").strip(): (v or "").strip() for k, v in row.items()})
            for line, row in enumerate(reader, start=2)
            if any((v or "").strip() for v in row.values())
        ]


def read_adjustments(cfg: AllianceConfig) -> list[Adjustment]:
    """The adjustments CSV, checked row by row; every problem names its line and column."""
    if cfg.adjustments is None:
        return []
    partner_ids = {p.id for p in cfg.partners}
    rows, problems = [], []
    for line, row in _csv_rows(cfg.adjustments, "adjustments", ("month", "referrer", "destination", "amount",
                                                                "reason")):
        where = f"adjustments line {line}"
        month = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", row["month"])
        if not month:
            problems.append(f"{where}, column month: not a month; write YYYY-MM, e.g. 2026-10")
        for column in ("referrer", "destination"):
            if row[column] not in partner_ids:
                problems.append(f"{where}, column {column}: `{row[column]}` is not a declared partner id")
        if row["referrer"] == row["destination"]:
            problems.append(f"{where}: referrer and destination are the same partner; a partner cannot pay itself")
        try:
            amount = Decimal(row["amount"])
            if not amount.is_finite() or amount.as_tuple().exponent < -2:  # type: ignore[operator]
                raise InvalidOperation
        except InvalidOperation:
            amount = None
            problems.append(f"{where}, column amount: not an amount in the reporting currency; write a number "
                            "with at most 2 decimals, e.g. 150.00 or -25.50")
        if not row["reason"]:
            problems.append(f"{where}, column reason: empty; say why the adjustment is made")
        if month and amount is not None:
            rows.append(Adjustment(line, date(int(month.group(1)), int(month.group(2)), 1), row["referrer"],
                                   row["destination"], amount, row["reason"]))
    if problems:
        raise ConfigError(f"{cfg.adjustments}: " + "; ".join(problems))
    return rows


def _utc_datetime(text: str) -> datetime:
    """An ISO date or date-time; a date is its midnight UTC, a time without offset is UTC."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_reviews(cfg: AllianceConfig) -> list[Review]:
    """The reviews CSV, checked row by row; one decision per order (the earliest row of a repeated one)."""
    if cfg.reviews is None:
        return []
    storefronts = {p.id for p in cfg.storefronts}
    chosen: dict[tuple[str, str], Review] = {}
    problems = []
    for line, row in _csv_rows(cfg.reviews, "reviews", ("partner_id", "order_id", "decision", "reviewed_at")):
        where = f"reviews line {line}"
        ok = True
        if row["partner_id"] not in storefronts:
            problems.append(f"{where}, column partner_id: `{row['partner_id']}` is not a declared storefront "
                            "partner id (the destination whose order was held)")
            ok = False
        if not row["order_id"]:
            problems.append(f"{where}, column order_id: empty; give the order's id at that storefront")
            ok = False
        if row["decision"] not in ("approve", "reject"):
            problems.append(f"{where}, column decision: `{row['decision']}` is not approve or reject")
            ok = False
        try:
            reviewed_at = _utc_datetime(row["reviewed_at"])
        except ValueError:
            problems.append(f"{where}, column reviewed_at: not an ISO date or date-time (UTC), "
                            "e.g. 2026-11-03 or 2026-11-03T09:30:00Z")
            ok = False
        if not ok:
            continue
        review = Review(line, row["partner_id"], row["order_id"], row["decision"], reviewed_at)  # type: ignore[arg-type]
        key = (review.partner_id, review.order_id)
        earlier = chosen.get(key)
        if earlier is not None and earlier.decision != review.decision:
            problems.append(f"{where}: order {review.order_id} of {review.partner_id} already has decision "
                            f"`{earlier.decision}` on line {earlier.line}; keep one decision per order")
        elif earlier is None or review.reviewed_at < earlier.reviewed_at:
            chosen[key] = review
    if problems:
        raise ConfigError(f"{cfg.reviews}: " + "; ".join(problems))
    return sorted(chosen.values(), key=lambda r: r.line)
