"""An independent Python reading of PRODUCT.md §2-§8: every published number, recomputed from the partner payloads.

Why it exists: the published numbers are computed once, in dbt SQL. The end-to-end test recomputes them here,
from the config file, the FX CSV and the partner payloads exactly as the APIs serve them, and compares every column
of every row of every published table (tests/oracle_compare.py). This module must never read or mirror the dbt
models, nor import `alliance`: independence is the point. It parses its own inputs (YAML config, contracts, FX CSV,
alert rules; Shopify orders (REST, or GraphQL `Order` objects for shopify_graphql), WooCommerce orders and their
`/orders/{id}/refunds` bodies, network click objects).

Pure Python, no database: `compute(config, fx_rows, orders, clicks, as_of, refunds=..., deletions=...)`
-> `OracleResult`; `OracleResult.tables(salt)` gives each published table as {key: {column: value}}.

Readings of the contract this oracle shares with README "Decisions where the contract is open" (quoted where a
column's meaning is a reading):
- "A click whose referrer is **not a configured partner** is not eligible for any model".
- "Split credits are rounded to 10 decimals; the referrer last by id takes the remainder, so credits sum to exactly 1.
  Revenue columns of one (order, model) are split to the cent **cumulatively**" (fct_order_attribution only; the KPI
  and balance money columns add per-(order, referrer) amounts each rounded once, PRODUCT.md §6).
- "For a multi-click model, `click_id` of a referrer's row is that referrer's latest credited click" (credited: a
  share > 0 in that model).
- "Refund leakage is credit x refunds after the lock date x FX of the order date".
- "**Earlier order** is strictly earlier (`created_at`)".
- "The customer's e-mail is `email`, then `contact_email`, then `customer.email`" (Shopify); WooCommerce
  `billing.email`; "`checkout-draft` orders ... are treated like test orders"; "the referral is the last `meta_data`
  entry with key `_alliance_ref`".
- Contract columns of fct_order_attribution (`contract_source`, `contract_type`, `contract_effective_from`,
  `rate_applied`, `flat_amount`; "contract (a dated override for this referrer) | default", "Percent rate used")
  name the referrer's contract in effect on the order's date, with the rate it gives that order (new_customer_rate
  for a first order): on every credited row of every model (the same terms whichever model credits the referrer),
  null on organic rows. The contract is silent on the other models' rows; this is the product's reading.
- partner_balances "locked when every commission of the month is locked, else pending": one lock date per month.
- §8 partner programmes (README "Partner programmes"): a hold reason is "click less than N s before the order" and/or
  "more than N clicks for this customer in the hour up to the click" ("; "-joined); the tier a row earned is
  published as its `from_orders` (`tier_from_orders`, percent contracts, null below the first tier); held_rc on held,
  rejected and approved rows (null otherwise); a clawback line of 0 (a refund the caps absorb) is not written; a
  repeated review with the same decision counts from its earliest date; line reasons and keys as the README shows.
- Alerts (README "Alerts and the scorecard", "Decisions"): threshold per partner and KPI day; trailing "the day vs
  the rows of the N days before it (days without a row do not count as zero)", quiet when their mean is zero
  (relative change) or when they do not vary or number fewer than `min_training_days` (z-score: "beyond mean +
  sensitivity x sample standard deviation"), `min_volume` "summed over the N days and the day", `min_day_volume` the
  day alone; pace "projected month-end attainment = actual x days in month / days elapsed / target, per objective
  month", "today" the as-of date, else the latest published KPI day, the actual summed through "today" (README:
  "pace projects to the as-of date"); an alert opens only for a period ending within `detection_days` of
  the as-of date (else the latest KPI day).
- §9.2 claims (README "Claims"): a claims row needs a claim_id, an order_id (neither holding an e-mail address),
  declared partners, a claimant other than the destination and a claimed_at with a time and a zone; a claim_id with
  two contents is dropped in every version; the reason texts and `credited_referrers` (every credited referrer of
  the configured model, held/approved/rejected rows included, by credit descending then id) as the README shows;
  outside_window counts each of the claimant's clicks under the first of: after the order, before the lookback, at
  or before the customer's previous order.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import os
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")
CREDIT_PLACES = Decimal("1e-10")
MODELS = ("last_click", "first_click", "linear", "position_based", "time_decay")
HALF_LIFE_SECONDS = 7 * 24 * 3600
ONE = Decimal(1)
ZERO = Decimal(0)
WOO_CANCELLED = ("cancelled", "failed", "trash")
FUTURE_TOLERANCE = timedelta(minutes=10)
OBJECTIVE_METRICS = ("clicks_sent", "referred_orders", "attributed_revenue_rc", "net_attributed_revenue_rc",
                     "commission_earned_rc", "commission_owed_rc")


class OracleError(Exception):
    """The inputs cannot be computed (missing FX rate, unreadable amount or date); says what and where."""


# --------------------------------------------------------------------------- inputs: config, FX, alert rules


@dataclass(frozen=True)
class Terms:
    """A partner's default `commission` (source 'default') or one entry of its `contracts` (source 'contract')."""

    type: str  # percent | flat
    rate: Decimal | None = None
    new_customer_rate: Decimal | None = None
    amount: Decimal | None = None
    source: str = "default"
    referrer: str | None = None
    effective_from: date | None = None
    effective_to: date | None = None
    # §8 programme terms
    tiers: tuple[tuple[int, Decimal], ...] = ()  # (from_orders, rate), ascending
    cap_per_order: Decimal | None = None
    cap_per_month: Decimal | None = None
    clawback: bool = False


@dataclass(frozen=True)
class AdjustmentSpec:
    """§8.4 one row of the adjustments CSV."""

    line: int
    month: date  # first day
    referrer: str
    destination: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class ReviewSpec:
    """§8.5 the decision on one order's held rows."""

    decision: str  # approve | reject
    reviewed_at: datetime  # UTC


@dataclass(frozen=True)
class ClaimSpec:
    """§9.2 one valid claim of the claims files (first occurrence of identical rows)."""

    claim_id: str
    referrer: str
    destination: str
    order_id: str
    claimed_at: datetime  # UTC
    source_file: str
    source_line: int


@dataclass(frozen=True)
class PartnerSpec:
    id: str
    platform: str  # shopify | shopify_graphql | woocommerce | none
    currency: str
    referral_codes: tuple[str, ...]
    commission: Terms | None
    contracts: tuple[Terms, ...]


@dataclass(frozen=True)
class ObjectiveSpec:
    partner_id: str
    month: date  # first day
    metric: str
    target: Decimal


@dataclass(frozen=True)
class OracleConfig:
    reporting_currency: str
    model: str
    lookback_days: int
    lock_days: int
    partners: tuple[PartnerSpec, ...]
    objectives: tuple[ObjectiveSpec, ...] = ()
    fx_rates: Path | None = None
    alerts: Path | None = None
    holds_min_seconds: int | None = None  # §8.5
    holds_max_clicks_per_hour: int | None = None
    adjustments: tuple[AdjustmentSpec, ...] = ()
    reviews: Mapping[tuple[str, str], ReviewSpec] = field(default_factory=dict)
    claims: tuple[ClaimSpec, ...] = ()

    def partner(self, partner_id: str) -> PartnerSpec:
        for p in self.partners:
            if p.id == partner_id:
                return p
        raise OracleError(f"partners: no partner with id {partner_id}")

    @property
    def partner_ids(self) -> set[str]:
        return {p.id for p in self.partners}


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _decimal(value: object, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise OracleError(f"{where}: expected a number, got {value!r}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise OracleError(f"{where}: expected a number, got {value!r}") from None


def _date(value: object, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise OracleError(f"{where}: expected an ISO date, got {value!r}") from None


def _terms(raw: Mapping, where: str, source: str) -> Terms:
    kind = raw.get("type")
    if kind not in ("percent", "flat"):
        raise OracleError(f"{where}.type: expected percent or flat, got {kind!r}")
    tiers = tuple((int(t["from_orders"]), _decimal(t["rate"], f"{where}.tiers[{i}].rate"))
                  for i, t in enumerate(raw.get("tiers") or []))
    return Terms(type=kind, rate=_decimal(raw.get("rate"), f"{where}.rate"),
                 new_customer_rate=_decimal(raw.get("new_customer_rate"), f"{where}.new_customer_rate"),
                 amount=_decimal(raw.get("amount"), f"{where}.amount"), source=source, referrer=raw.get("referrer"),
                 effective_from=_date(raw.get("effective_from"), f"{where}.effective_from"),
                 effective_to=_date(raw.get("effective_to"), f"{where}.effective_to"), tiers=tiers,
                 cap_per_order=_decimal(raw.get("cap_per_order"), f"{where}.cap_per_order"),
                 cap_per_month=_decimal(raw.get("cap_per_month"), f"{where}.cap_per_month"),
                 clawback=bool(raw.get("clawback", False)))


def read_adjustments_csv(path: Path | None) -> tuple[AdjustmentSpec, ...]:
    """§8.4 month,referrer,destination,amount,reason (positive = the destination owes the referrer)."""
    if path is None:
        return ()
    rows = []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if not any((v or "").strip() for v in row.values()):
                continue
            rows.append(AdjustmentSpec(line=line, month=date.fromisoformat(row["month"].strip() + "-01"),
                                       referrer=row["referrer"].strip(), destination=row["destination"].strip(),
                                       amount=_decimal(row["amount"], f"{path}: line {line}"),
                                       reason=row["reason"].strip()))
    return tuple(rows)


def read_reviews_csv(path: Path | None) -> dict[tuple[str, str], ReviewSpec]:
    """§8.5 partner_id,order_id,decision,reviewed_at; a repeated decision counts from its earliest date."""
    if path is None:
        return {}
    out: dict[tuple[str, str], ReviewSpec] = {}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if not any((v or "").strip() for v in row.values()):
                continue
            text = row["reviewed_at"].strip()
            at = parse_utc(text + ("T00:00:00+00:00" if len(text) == 10 else ""), f"{path}: line {line}")
            key = (row["partner_id"].strip(), row["order_id"].strip())
            review = ReviewSpec(decision=row["decision"].strip(), reviewed_at=at)
            if key in out and out[key].decision != review.decision:
                raise OracleError(f"{path}: line {line}: a second decision for order {key[1]}")
            if key not in out or at < out[key].reviewed_at:
                out[key] = review
    return out


_ADDRESS = re.compile(r"[^\s@,]+(@|%40)[^\s@,]+\.[A-Za-z]{2,}")  # an e-mail address: such a claim is refused
_CLAIM_COLUMNS = ("claim_id", "referrer_partner_id", "destination_partner_id", "order_id", "claimed_at")


def _claim_time(text: str) -> datetime | None:
    """A date-time with a zone, as UTC; None for anything else (a bare date, no zone, not a time)."""
    if "T" not in text and " " not in text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else None


def read_claims(path: Path | None, partner_ids: set[str]) -> tuple[ClaimSpec, ...]:
    """§9.2 the claims file or folder (its *.csv files by name): the rows that are not quarantined, one per claim_id."""
    if path is None:
        return ()
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() == ".csv"), key=lambda f: f.name) \
        if path.is_dir() else [path]
    found: dict[str, list[ClaimSpec]] = defaultdict(list)
    for file in files:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
        if not lines:
            continue
        header = [h.strip() for h in next(csv.reader([lines[0]]))]
        if not set(_CLAIM_COLUMNS) <= set(header):
            continue
        for number, text in enumerate(lines[1:], start=2):
            if not text.strip():
                continue
            values = dict(zip(header, (v.strip() for v in next(csv.reader([text]))), strict=False))
            row = {c: values.get(c, "") for c in _CLAIM_COLUMNS}
            at = _claim_time(row["claimed_at"])
            if (not row["claim_id"] or not row["order_id"] or at is None
                    or any(_ADDRESS.search(row[c]) for c in ("claim_id", "order_id"))
                    or row["referrer_partner_id"] not in partner_ids
                    or row["destination_partner_id"] not in partner_ids
                    or row["referrer_partner_id"] == row["destination_partner_id"]):
                continue
            found[row["claim_id"]].append(ClaimSpec(row["claim_id"], row["referrer_partner_id"],
                                                    row["destination_partner_id"], row["order_id"], at, file.name,
                                                    number))
    kept = []
    for versions in found.values():
        if len({(v.referrer, v.destination, v.order_id, v.claimed_at) for v in versions}) == 1:
            kept.append(versions[0])
    return tuple(kept)


def config_from_dict(raw: Mapping, base_dir: Path | None = None) -> OracleConfig:
    """The alliance as PRODUCT.md §2 declares it (only what the numbers depend on; connection keys are ignored)."""
    attribution = raw.get("attribution") or {}
    partners = []
    for i, p in enumerate(raw.get("partners") or []):
        where = f"partners[{i}] (id: {p.get('id')})"
        contracts = tuple(_terms(c, f"{where}.contracts[{j}]", "contract") for j, c in enumerate(p.get("contracts")
                                                                                                  or []))
        commission = _terms(p["commission"], f"{where}.commission", "default") if p.get("commission") else None
        partners.append(PartnerSpec(id=str(p["id"]), platform=str(p.get("platform")),
                                    currency=str(p.get("currency") or "USD").upper(),
                                    referral_codes=tuple(str(c) for c in p.get("referral_codes") or []),
                                    commission=commission, contracts=contracts))
    objectives = []
    for i, o in enumerate(raw.get("objectives") or []):
        month = o["month"]
        month = month.strftime("%Y-%m") if isinstance(month, date) else str(month)
        metric = str(o["metric"])
        if metric not in OBJECTIVE_METRICS:
            raise OracleError(f"objectives[{i}].metric: {metric} is not an additive KPI column")
        objectives.append(ObjectiveSpec(partner_id=str(o["partner_id"]), month=date.fromisoformat(month + "-01"),
                                        metric=metric, target=_decimal(o["target"], f"objectives[{i}].target")))

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value is None:
            return None
        p = Path(str(value))
        return p if p.is_absolute() or base_dir is None else base_dir / p

    holds = raw.get("holds") or {}
    return OracleConfig(
        reporting_currency=str(raw.get("reporting_currency") or "USD").upper(),
        model=str(attribution.get("model") or "last_click"),
        lookback_days=int(attribution.get("lookback_days") or 30),
        lock_days=int(raw.get("lock_days") if raw.get("lock_days") is not None else 30),
        partners=tuple(partners), objectives=tuple(objectives), fx_rates=path("fx_rates"), alerts=path("alerts"),
        holds_min_seconds=holds.get("min_seconds_click_to_order"),
        holds_max_clicks_per_hour=holds.get("max_clicks_per_hour"),
        adjustments=read_adjustments_csv(path("adjustments")), reviews=read_reviews_csv(path("reviews")),
        claims=read_claims(path("claims"), {str(p["id"]) for p in raw.get("partners") or []}),
    )


def load_config(path: str | Path) -> OracleConfig:
    """Read the YAML config file itself (`${VAR:-default}` expanded; relative paths from the file's folder)."""
    path = Path(path)
    text = _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), path.read_text())
    return config_from_dict(yaml.safe_load(text) or {}, path.parent)


def read_fx_csv(path: str | Path | None) -> list[tuple[date, str, Decimal]]:
    """date,currency,rate_to_reporting rows."""
    if path is None:
        return []
    rows = []
    with Path(path).open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            rows.append((date.fromisoformat(row["date"].strip()), row["currency"].strip().upper(),
                         _decimal(row["rate_to_reporting"], f"{path}: line {line}")))
    return rows


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule of the rules file (only what decides whether and how it fires)."""

    id: str
    kind: str  # threshold | trailing | pace
    kpi: str | None
    comparison: str  # above | below
    threshold: Decimal
    severity: str = "warning"
    trailing_days: int | None = None
    min_volume_kpi: str | None = None
    min_volume: Decimal = ZERO
    min_elapsed_days: int = 5
    zscore: bool = False  # trailing: threshold is a number of sample standard deviations from the window's mean
    min_training_days: int = 1  # trailing: days of the window holding a value
    min_day_volume_kpi: str | None = None  # threshold, trailing: the day's own volume floor
    min_day_volume: Decimal = ZERO
    detection_days: int = 2  # an alert opens only for a period ending within this many days of the as-of date


def rules_from_dicts(raw_rules: Sequence[Mapping]) -> list[RuleSpec]:
    rules = []
    for r in raw_rules:
        def num(key: str, r: Mapping = r) -> Decimal | None:
            return _decimal(r.get(key), f"rule {r.get('id')}.{key}")
        day_volume = r.get("min_day_volume") or {}
        common = {"severity": str(r.get("severity") or "warning"), "detection_days": int(r.get("detection_days") or 2)}
        floor = {"min_day_volume_kpi": day_volume.get("kpi"),
                 "min_day_volume": _decimal(day_volume.get("at_least"), "min_day_volume") or ZERO}
        if r.get("held_share_above") is not None:  # §8.5 holds: min_orders defaults to 10
            rules.append(RuleSpec(id=r["id"], kind="held_share", kpi="held_share", comparison="above",
                                  threshold=num("held_share_above"), **common,
                                  min_volume=Decimal(int(r.get("min_orders") or 10))))
        elif r.get("pace_below") is not None:
            rules.append(RuleSpec(id=r["id"], kind="pace", kpi=r.get("kpi"), comparison="below",
                                  threshold=num("pace_below"), **common,
                                  min_elapsed_days=int(r.get("min_elapsed_days") or 5)))
        elif r.get("trailing_days") is not None:
            volume = r.get("min_volume") or {}
            n = int(r["trailing_days"])
            if r.get("sensitivity") is not None:  # z-score: needs min_training_days (default 7, at most the window)
                comparison, threshold, zscore = str(r["direction"]), num("sensitivity"), True
                training = int(r.get("min_training_days") or min(7, n))
            else:
                above = r.get("change_above") is not None
                comparison, zscore = ("above" if above else "below"), False
                threshold = num("change_above" if above else "change_below")
                training = int(r.get("min_training_days") or 1)
            rules.append(RuleSpec(id=r["id"], kind="trailing", kpi=r["kpi"], comparison=comparison,
                                  threshold=threshold, **common, trailing_days=n, min_volume_kpi=volume.get("kpi"),
                                  min_volume=_decimal(volume.get("at_least"), "min_volume") or ZERO,
                                  zscore=zscore, min_training_days=training, **floor))
        else:
            above = r.get("above") is not None
            rules.append(RuleSpec(id=r["id"], kind="threshold", kpi=r["kpi"], comparison="above" if above else "below",
                                  threshold=num("above" if above else "below"), **common, **floor))
    return rules


def load_rules(path: str | Path | None) -> list[RuleSpec]:
    if path is None:
        return []
    document = yaml.safe_load(Path(path).read_text()) or {}
    return rules_from_dicts(document.get("rules") or [])


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Refund:
    refunded_at: datetime  # UTC
    amount: Decimal  # refunded line subtotals, storefront currency
    refund_id: str = ""  # the platform's refund id (§8.3 orders a day's refunds by it)


@dataclass(frozen=True)
class OrderTruth:
    """One order (latest version) as fct_orders should show it, plus what §6 needs."""

    partner_id: str
    order_id: str
    ordered_at: datetime  # UTC
    updated_at: datetime  # UTC
    currency: str
    customer_email: str | None  # lower(strip(email)); None for guests. Test-only: never log it.
    is_cancelled: bool  # the platform says cancelled (or the order was deleted / trashed)
    counts_as_cancelled: bool  # §6.1: False when the cancellation came after the lock date
    is_test: bool
    is_new_customer: bool
    codes: tuple[str, ...]  # referral code candidates in §6.2 order, stripped (as carried)
    lock_date: date
    fx_rate: Decimal
    commissionable_amount: Decimal
    refunded_amount: Decimal  # every refund with line items
    refunded_before_lock: Decimal  # refunds dated on or before lock_date
    commissionable_amount_rc: Decimal
    refunded_amount_rc: Decimal
    net_amount_rc: Decimal  # round((commissionable - refunded) * fx); not clamped at 0
    refunds: tuple[Refund, ...] = ()
    platform: str = "shopify"
    cancelled_at: datetime | None = None
    previous_order_at: datetime | None = None
    refund_leakage_rc: Decimal = ZERO

    @property
    def key(self) -> tuple[str, str]:
        return (self.partner_id, self.order_id)

    def customer_key(self, salt: str) -> str | None:
        """The §4 customer_key, to compare with fct_orders.customer_key."""
        return customer_key(self.customer_email, salt)


@dataclass(frozen=True)
class AttributionTruth:
    """§6 rules 2-4 for one eligible order: its single referrer (code, else last click) at credit 1."""

    partner_id: str  # destination
    order_id: str
    referrer_partner_id: str | None  # None = organic
    reason: str  # 'code' | 'click' | 'organic'
    credit: Decimal
    attributed_revenue_rc: Decimal  # round(credit * commissionable * fx)
    commission_rc: Decimal
    commission_state: str | None  # 'pending' | 'locked' | None for organic
    click_id: str | None = None  # the winning click, reason 'click' only
    code: str | None = None  # the winning code (upper-cased), reason 'code' only
    is_first_order: bool = False
    contract: Terms | None = None  # the contract that priced it (None for organic)
    lock_date: date | None = None
    eligible_click_ids: tuple[str, ...] = ()  # §6.3 eligible clicks, oldest first (for the other models)


@dataclass(frozen=True)
class CreditTruth:
    """One fct_order_attribution row of any model: (order, model, referrer)."""

    partner_id: str
    order_id: str
    model: str
    referrer_partner_id: str | None
    reason: str
    credit: Decimal
    attributed_revenue_rc: Decimal
    net_attributed_revenue_rc: Decimal
    refund_leakage_rc: Decimal
    commission_rc: Decimal | None  # None unless `model` is the configured one
    commission_state: str | None
    network_id: str | None = None
    click_id: str | None = None
    referral_code: str | None = None
    contract: Terms | None = None  # the referrer's contract on the order date (credited rows)
    rate_applied: Decimal | None = None
    # §8 (configured model's credited rows)
    is_commissioned: bool = False
    programme_state: str | None = None  # held | rejected | approved
    held_rc: Decimal | None = None
    hold_reason: str | None = None
    reviewed_at: datetime | None = None
    earlier_commissioned_orders: int | None = None
    tier_from_orders: int | None = None  # the tier earned, by its from_orders (percent contracts)
    cap_room: Decimal | None = None  # monthly cap room (for clawbacks)
    is_capped: bool | None = None  # §9.1 a cap took something off what the row earns (or would earn, held)


@dataclass(frozen=True)
class LineTruth:
    """One commission_adjustments row (§8.6)."""

    kind: str  # clawback | manual | approval
    month: date
    referrer_partner_id: str
    destination_partner_id: str
    order_id: str | None
    amount_rc: Decimal
    reason: str
    line_date: date
    line_key: str


@dataclass(frozen=True)
class ClickTruth:
    click_id: str
    network_id: str
    referrer_partner_id: str
    destination_partner_id: str
    clicked_at: datetime  # UTC
    referral_code: str | None
    customer_email: str | None  # lower(strip(email)) or None

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """Latest click first when sorted descending; ties by click_id in (length, text) order."""
        return (self.clicked_at, len(self.click_id), self.click_id)


@dataclass(frozen=True)
class KpiTruth:
    """One partner_kpis_daily row (PRODUCT.md §6 KPI definitions)."""

    kpi_date: date
    partner_id: str
    clicks_sent: int
    referred_orders: int
    conversion_rate: Decimal | None
    attributed_revenue_rc: Decimal
    net_attributed_revenue_rc: Decimal
    aov_rc: Decimal | None
    refund_rate: Decimal | None
    new_customer_rate: Decimal | None
    epc_rc: Decimal | None
    commission_earned_rc: Decimal
    commission_owed_rc: Decimal
    refund_leakage_rc: Decimal


@dataclass(frozen=True)
class BalanceTruth:
    """One partner_balances row: (referrer, destination, UTC month of the orders), configured model."""

    referrer_partner_id: str
    destination_partner_id: str
    month: date
    attributed_orders: int
    attributed_revenue_rc: Decimal
    net_attributed_revenue_rc: Decimal
    commission_rc: Decimal
    refund_leakage_rc: Decimal
    lock_date: date
    state: str
    commissioned_orders: int = 0
    held_orders: int = 0
    clawback_rc: Decimal = ZERO
    adjustments_rc: Decimal = ZERO
    held_rc: Decimal = ZERO


@dataclass(frozen=True)
class ObjectiveTruth:
    partner_id: str
    month: date
    metric: str
    target: Decimal
    actual: Decimal
    attainment: Decimal | None


@dataclass(frozen=True)
class ObservationTruth:
    """A period an alert rule judges (kpi_alert_observations): the value, the limit, the baseline, the verdict."""

    rule_id: str
    rule_kind: str
    partner_id: str
    kpi: str
    period: date
    value: Decimal | None
    threshold: Decimal
    baseline: Decimal | None
    comparison: str
    breached: bool


@dataclass(frozen=True)
class AlertTruth:
    """An alert that fires (state firing) on the first evaluation of this data."""

    alert_id: str
    rule_id: str
    severity: str
    partner_id: str
    kpi: str
    period: date
    value: Decimal | None
    threshold: Decimal
    comparison: str
    kind: str
    baseline: Decimal | None


@dataclass(frozen=True)
class ClaimTruth:
    """One partner_claims row (§9.2)."""

    claim: ClaimSpec
    status: str
    reason: str
    claimant_credit: Decimal | None
    credited_referrers: str | None


@dataclass(frozen=True)
class OracleResult:
    orders: dict[tuple[str, str], OrderTruth]
    # §6 rules 2-4 per eligible order (code, else the last eligible click, else organic) priced at credit 1: the
    # published last_click row when last_click is configured; `credits` holds every model's published rows.
    attribution: dict[tuple[str, str], AttributionTruth]
    balances: dict[tuple[str, str, str], Decimal]  # configured model: (referrer, destination, 'YYYY-MM') -> commission
    clicks: dict[str, ClickTruth] = field(default_factory=dict)  # click_id -> click (first landing wins)
    credits: dict[tuple[str, str, str, str | None], CreditTruth] = field(default_factory=dict)
    leakage: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # like balances: refunds after lock
    kpis: dict[tuple[date, str], KpiTruth] = field(default_factory=dict)
    balance_rows: dict[tuple[str, str, date], BalanceTruth] = field(default_factory=dict)
    objectives: dict[tuple[str, date, str], ObjectiveTruth] = field(default_factory=dict)
    alerts: dict[str, AlertTruth] = field(default_factory=dict)  # alert_id -> alert
    observations: dict[tuple[str, str, str, date], ObservationTruth] = field(default_factory=dict)
    configured_model: str = "last_click"
    platforms: dict[str, str] = field(default_factory=dict)
    lines: dict[tuple[str, str, str], LineTruth] = field(default_factory=dict)  # (destination, referrer, line_key)
    claims: dict[str, ClaimTruth] = field(default_factory=dict)  # claim_id -> judged claim (§9.2)

    def tables(self, salt: str) -> dict[str, dict[tuple, dict[str, Any]]]:
        """Every published table as {key: {column: expected value}} (customer keys need the §4 salt)."""
        return published_tables(self, salt)


# --------------------------------------------------------------------------- helpers


def round_cents(value: Decimal) -> Decimal:
    """Half away from zero to cents (ROUND_HALF_UP is away from zero for Decimal)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def round_rate(value: Decimal) -> Decimal:
    return value.quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def ratio(numerator: Decimal, denominator: Decimal, places: Decimal) -> Decimal | None:
    """§6: a ratio whose denominator is 0 is null; rounded half away from zero."""
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places, rounding=ROUND_HALF_UP)


def normalize_email(value: object) -> str | None:
    """§4 identity: lower(trim(email)), trim removing all Unicode whitespace; blank or missing is no customer."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text or None


def customer_key(email: str | None, salt: str) -> str | None:
    """sha256(salt || lower(trim(email))) as hex, None for guests."""
    norm = normalize_email(email)
    if norm is None:
        return None
    return hashlib.sha256((salt + norm).encode("utf-8")).hexdigest()


def parse_utc(value: object, where: str) -> datetime:
    """ISO-8601 with any offset (or Z) to an aware UTC datetime; naive means UTC (WooCommerce `*_gmt`)."""
    if not isinstance(value, str) or not value.strip():
        raise OracleError(f"{where}: expected an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise OracleError(f"{where}: expected an ISO-8601 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_money(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise OracleError(f"{where}: expected a decimal amount, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise OracleError(f"{where}: expected a decimal amount, got {value!r}") from None
    if not amount.is_finite():
        raise OracleError(f"{where}: expected a finite decimal amount, got {value!r}")
    return amount


def month_end(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def lock_date_for(ordered_at: datetime | date, lock_days: int) -> date:
    """Last day of the order's UTC month plus lock_days."""
    day = ordered_at.astimezone(UTC).date() if isinstance(ordered_at, datetime) else ordered_at
    return month_end(day) + timedelta(days=lock_days)


def landing_ref(landing_site: object) -> str | None:
    """The landing URL's first `ref` query parameter (Shopify's landing_site_ref is not used)."""
    if not isinstance(landing_site, str) or not landing_site.strip():
        return None
    query = urlsplit(landing_site.strip()).query
    values = parse_qs(query, keep_blank_values=True).get("ref")
    return values[0] if values else None


def order_codes(order: Mapping) -> tuple[str, ...]:
    """Shopify referral code candidates: discount codes in listed order, then the landing `ref` (stripped)."""
    codes: list[str] = []
    for entry in order.get("discount_codes") or []:
        code = entry.get("code") if isinstance(entry, Mapping) else None
        if isinstance(code, str) and code.strip():
            codes.append(code.strip())
    ref = landing_ref(order.get("landing_site"))
    if ref and ref.strip():
        codes.append(ref.strip())
    return tuple(codes)


def woo_codes(order: Mapping) -> tuple[str, ...]:
    """WooCommerce: `coupon_lines[].code` in listed order, then the last `meta_data` `_alliance_ref`."""
    codes: list[str] = []
    for entry in order.get("coupon_lines") or []:
        code = entry.get("code") if isinstance(entry, Mapping) else None
        if isinstance(code, str) and code.strip():
            codes.append(code.strip())
    refs = [m.get("value") for m in order.get("meta_data") or []
            if isinstance(m, Mapping) and m.get("key") == "_alliance_ref"]
    if refs and isinstance(refs[-1], str) and refs[-1].strip():
        codes.append(refs[-1].strip())
    return tuple(codes)


class FxTable:
    """Rate to the reporting currency on the latest date on or before a given date."""

    def __init__(self, rows: Iterable[tuple[date, str, Decimal]], reporting_currency: str) -> None:
        self.reporting = reporting_currency.upper()
        by_currency: dict[str, dict[date, Decimal]] = defaultdict(dict)
        for day, currency, rate in rows:
            by_currency[currency.strip().upper()][day] = Decimal(rate)
        self._dates = {cur: sorted(rates) for cur, rates in by_currency.items()}
        self._rates = dict(by_currency)

    def rate(self, currency: str, day: date, where: str = "") -> Decimal:
        cur = currency.strip().upper()
        if cur == self.reporting:
            return ONE
        dates = self._dates.get(cur, [])
        i = bisect_right(dates, day)
        if i == 0:
            raise OracleError(
                f"{where}: no FX rate for {cur} on or before {day.isoformat()}; "
                f"add a row to the fx_rates CSV (date,currency,rate_to_reporting)"
            )
        return self._rates[cur][dates[i - 1]]


def contract_for(config: OracleConfig, destination: str, referrer: str, day: date) -> Terms:
    """§2: the referrer's contract in effect on `day` with the latest effective_from, else D's default."""
    partner = config.partner(destination)
    in_effect = [
        c for c in partner.contracts
        if c.referrer == referrer
        and (c.effective_from is None or c.effective_from <= day)
        and (c.effective_to is None or day < c.effective_to)
    ]
    if in_effect:
        return max(in_effect, key=lambda c: c.effective_from or date.min)
    if partner.commission is None:
        raise OracleError(f"partners (id: {destination}): no default commission to price an order from {referrer}")
    return partner.commission


def click_shares(model: str, clicks: Sequence[ClickTruth], ordered_at: datetime) -> list[Decimal]:
    """Credit of each click (oldest first) under `model`; the shares sum to 1."""
    n = len(clicks)
    if model == "last_click":
        return [ZERO] * (n - 1) + [ONE]
    if model == "first_click":
        return [ONE] + [ZERO] * (n - 1)
    if model == "linear":
        return [ONE / n] * n
    if model == "position_based":
        if n <= 2:
            return [ONE / n] * n
        return [Decimal("0.4")] + [Decimal("0.2") / (n - 2)] * (n - 2) + [Decimal("0.4")]
    if model == "time_decay":
        weights = [2.0 ** (-(ordered_at - c.clicked_at).total_seconds() / HALF_LIFE_SECONDS) for c in clicks]
        total = sum(weights)
        return [Decimal(f"{w / total:.15g}") for w in weights]
    raise OracleError(f"attribution.model: unknown model {model}")


def split_credit(shares: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
    """Referrer credits rounded to 10 decimals, by referrer id; the last takes the remainder so they sum to 1."""
    kept = sorted((ref, share) for ref, share in shares.items() if share > 0)
    out = [(ref, share.quantize(CREDIT_PLACES, rounding=ROUND_HALF_UP)) for ref, share in kept]
    if out:
        ref, _ = out[-1]
        out[-1] = (ref, ONE - sum((c for _, c in out[:-1]), ZERO))
    return out


def allocate_cents(credits: Sequence[Decimal], amount: Decimal) -> list[Decimal]:
    """Cents of credit x amount so that the parts add up to round(amount): cumulative rounding."""
    parts: list[Decimal] = []
    before = ZERO
    for credit in credits:
        after = before + credit
        parts.append(round_cents(after * amount) - round_cents(before * amount))
        before = after
    return parts


# --------------------------------------------------------------------------- parsing the payloads


@dataclass
class _Order:
    partner_id: str
    order_id: str
    platform: str
    ordered_at: datetime
    updated_at: datetime
    currency: str
    customer: str | None
    is_cancelled: bool
    cancelled_at: datetime | None
    counts_as_cancelled: bool
    is_test: bool
    codes: tuple[str, ...]
    lock_date: date
    commissionable: Decimal
    refunds: tuple[Refund, ...]

    @property
    def eligible(self) -> bool:
        """Neither test nor (effectively) cancelled: gets attribution and counts as a purchase."""
        return not self.is_test and not self.counts_as_cancelled


def _modified(platform: str, order: Mapping, where: str) -> datetime:
    if platform == "shopify_graphql":
        return parse_utc(order.get("updatedAt") or order.get("createdAt"), f"{where}.updatedAt")
    if platform == "woocommerce":
        return parse_utc(order.get("date_modified_gmt") or order.get("date_created_gmt"), f"{where}.date_modified_gmt")
    return parse_utc(order.get("updated_at") or order.get("created_at"), f"{where}.updated_at")


def _cancelled_status(platform: str, order: Mapping) -> bool:
    if platform == "shopify_graphql":  # §3 GraphQL twins: cancelledAt, or displayFinancialStatus VOIDED
        return bool(order.get("cancelledAt")) or str(order.get("displayFinancialStatus") or "").upper() == "VOIDED"
    if platform == "woocommerce":
        return str(order.get("status") or "").strip().lower() in WOO_CANCELLED
    return bool(order.get("cancelled_at")) or str(order.get("financial_status") or "").strip().lower() == "voided"


def _versions(partner_id: str, platform: str, payloads: Sequence[Mapping]) -> dict[str, list[tuple[datetime, Mapping]]]:
    """Every served version per order id, oldest first (arrival order breaks ties: the later one wins, §7)."""
    out: dict[str, list[tuple[datetime, int, Mapping]]] = defaultdict(list)
    id_key = "legacyResourceId" if platform == "shopify_graphql" else "id"  # GraphQL: the REST id, as a string
    for i, order in enumerate(payloads):
        if not isinstance(order, Mapping) or order.get(id_key) in (None, ""):
            raise OracleError(f"orders[{partner_id}][{i}]: order without `{id_key}`")
        oid = str(order[id_key]).strip()
        out[oid].append((_modified(platform, order, f"order {partner_id}/{oid}"), i, order))
    return {oid: [(t, o) for t, _, o in sorted(v, key=lambda x: (x[0], x[1]))] for oid, v in out.items()}


def _shopify_refunds(order: Mapping, where: str) -> tuple[Refund, ...]:
    refunds: list[Refund] = []
    for r, refund in enumerate(order.get("refunds") or []):
        items = refund.get("refund_line_items") or []
        if not items:
            continue  # shipping or fee only: touches neither amount
        total = ZERO
        for j, item in enumerate(items):
            if item.get("subtotal") is None:
                raise OracleError(f"{where}.refunds[{r}].refund_line_items[{j}].subtotal: missing (the oracle reads "
                                  "only API versions that send it)")
            total += parse_money(item.get("subtotal"), f"{where}.refunds[{r}].refund_line_items[{j}].subtotal")
        refunds.append(Refund(parse_utc(refund.get("created_at"), f"{where}.refunds[{r}].created_at"), total,
                              str(refund.get("id", ""))))
    return tuple(refunds)


def _woo_refunds(order: Mapping, bodies: Sequence[Mapping] | None, where: str) -> tuple[Refund, ...]:
    """§3: the `/orders/{id}/refunds` body, read when the order's `refunds` list is non-empty; -Σ line totals."""
    if not order.get("refunds"):
        return ()
    if bodies is None:
        raise OracleError(f"{where}: the order lists refunds but no /refunds body was given")
    refunds: list[Refund] = []
    for r, refund in enumerate(bodies):
        items = refund.get("line_items") or []
        if not items:
            continue
        total = ZERO
        for j, item in enumerate(items):
            total -= parse_money(item.get("total"), f"{where}/refunds[{r}].line_items[{j}].total")
        refunds.append(Refund(parse_utc(refund.get("date_created_gmt"), f"{where}/refunds[{r}].date_created_gmt"),
                              total, str(refund.get("id", ""))))
    return tuple(refunds)


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _graphql_refunds(order: Mapping, where: str) -> tuple[Refund, ...]:
    """GraphQL `refunds` is a plain list; each refund's `refundLineItems` a connection (`nodes` or `edges[].node`)."""
    refunds: list[Refund] = []
    for r, refund in enumerate(order.get("refunds") or []):
        connection = refund.get("refundLineItems") or {}
        items = connection.get("nodes") if "nodes" in connection else [e.get("node") for e in
                                                                         connection.get("edges") or []]
        if not items:
            continue  # shipping or fee only
        total = sum((parse_money(_dig(item, "subtotalSet", "shopMoney", "amount"),
                                 f"{where}.refunds[{r}].refundLineItems[{j}].subtotalSet.shopMoney.amount")
                     for j, item in enumerate(items)), ZERO)
        refunds.append(Refund(parse_utc(refund.get("createdAt"), f"{where}.refunds[{r}].createdAt"), total,
                              _legacy_id(refund)))
    return tuple(refunds)


def _legacy_id(node: Mapping) -> str:
    """A GraphQL object's REST id: `legacyResourceId`, else the number ending its global id (gid://shopify/T/<n>)."""
    if node.get("legacyResourceId") is not None:
        return str(node["legacyResourceId"])
    return str(node.get("id") or "").rsplit("/", 1)[-1]


def _graphql_landing(order: Mapping) -> object:
    """§3: `customerJourneySummary.lastVisit.landingPage`, else the deprecated `landingPageUrl`."""
    page = _dig(order, "customerJourneySummary", "lastVisit", "landingPage")
    return page if isinstance(page, str) and page.strip() else order.get("landingPageUrl")


def _shopify_email(order: Mapping) -> str | None:
    customer = order.get("customer") if isinstance(order.get("customer"), Mapping) else {}
    for value in (order.get("email"), order.get("contact_email"), customer.get("email")):
        if normalize_email(value) is not None:
            return normalize_email(value)
    return None


def _parse_order(config: OracleConfig, partner_id: str, versions: list[tuple[datetime, Mapping]],
                 refund_bodies: Mapping[str, Sequence[Mapping]], deleted_at: datetime | None) -> _Order:
    platform = config.partner(partner_id).platform
    updated_at, order = versions[-1]
    oid = str(order["legacyResourceId" if platform == "shopify_graphql" else "id"]).strip()
    where = f"order {partner_id}/{oid}"
    if platform == "shopify_graphql":
        ordered_at = parse_utc(order.get("createdAt"), f"{where}.createdAt")
        is_test = bool(order.get("test"))
        commissionable = parse_money(_dig(order, "subtotalPriceSet", "shopMoney", "amount"),
                                     f"{where}.subtotalPriceSet.shopMoney.amount")
        codes = order_codes({"discount_codes": [{"code": c} for c in order.get("discountCodes") or []],
                             "landing_site": _graphql_landing(order)})
        customer = normalize_email(order.get("email")) or normalize_email(
            _dig(order, "customer", "defaultEmailAddress", "emailAddress"))
        refunds = _graphql_refunds(order, where)
        raw = order.get("cancelledAt")
        platform_cancelled_at = parse_utc(raw, f"{where}.cancelledAt") if raw else None
    elif platform == "woocommerce":
        ordered_at = parse_utc(order.get("date_created_gmt"), f"{where}.date_created_gmt")
        status = str(order.get("status") or "").strip().lower()
        is_test = status == "checkout-draft"
        commissionable = sum((parse_money(li.get("total"), f"{where}.line_items[{j}].total")
                              for j, li in enumerate(order.get("line_items") or [])), ZERO)
        codes = woo_codes(order)
        billing = order.get("billing") if isinstance(order.get("billing"), Mapping) else {}
        customer = normalize_email(billing.get("email"))
        refunds = _woo_refunds(order, refund_bodies.get(oid), where)
        platform_cancelled_at = None
    else:
        ordered_at = parse_utc(order.get("created_at"), f"{where}.created_at")
        is_test = bool(order.get("test"))
        commissionable = parse_money(order.get("subtotal_price"), f"{where}.subtotal_price")
        codes = order_codes(order)
        customer = _shopify_email(order)
        refunds = _shopify_refunds(order, where)
        raw = order.get("cancelled_at")
        platform_cancelled_at = parse_utc(raw, f"{where}.cancelled_at") if raw else None
    lock = lock_date_for(ordered_at, config.lock_days)
    # §3 cancellation time: the platform's cancelled_at, else the modification time of the first version (of the
    # latest run of versions) carrying the cancelled status, or the deletion time.
    cancelled_at: datetime | None = None
    status_cancelled = _cancelled_status(platform, order)
    if status_cancelled:
        if platform_cancelled_at is not None:
            cancelled_at = platform_cancelled_at
        else:
            first = len(versions) - 1
            while first > 0 and _cancelled_status(platform, versions[first - 1][1]):
                first -= 1
            cancelled_at = versions[first][0]
    if deleted_at is not None and (cancelled_at is None or deleted_at < cancelled_at) and platform_cancelled_at is None:
        cancelled_at = deleted_at
    is_cancelled = status_cancelled or deleted_at is not None
    counts_as_cancelled = is_cancelled and (cancelled_at is None or cancelled_at.date() <= lock)
    currency = order.get("currency") or config.partner(partner_id).currency
    return _Order(
        partner_id=partner_id, order_id=oid, platform=platform, ordered_at=ordered_at, updated_at=updated_at,
        currency=str(currency).strip().upper(), customer=customer, is_cancelled=is_cancelled,
        cancelled_at=cancelled_at, counts_as_cancelled=counts_as_cancelled, is_test=is_test, codes=codes,
        lock_date=lock, commissionable=commissionable, refunds=refunds,
    )


def _from_the_future(platform: str, order: Mapping, refund_bodies: Mapping[str, Sequence[Mapping]],
                     landed_at: datetime) -> bool:
    """§7: a version with any date (created, updated, a refund's) more than 10 minutes after landing is quarantined."""
    limit = landed_at + FUTURE_TOLERANCE
    where = f"order {order.get('id')}"
    if platform == "shopify_graphql":
        stamps = [order.get("createdAt"), order.get("updatedAt")]
        stamps += [r.get("createdAt") for r in order.get("refunds") or []]
    elif platform == "woocommerce":
        stamps = [order.get("date_created_gmt"), order.get("date_modified_gmt")]
        if order.get("refunds"):
            stamps += [r.get("date_created_gmt") for r in refund_bodies.get(str(order.get("id")), [])]
    else:
        stamps = [order.get("created_at"), order.get("updated_at")]
        stamps += [r.get("created_at") for r in order.get("refunds") or []]
    return any(parse_utc(t, where) > limit for t in stamps if t)


def click_objects(value: object) -> list[Mapping]:
    """Click objects from a list of clicks, a network response body (`Clicks`), or a list of bodies."""
    if isinstance(value, Mapping):
        if "Clicks" in value:
            return list(value.get("Clicks") or [])
        raise OracleError("clicks: expected click objects or a body with a `Clicks` list")
    out: list[Mapping] = []
    for item in value or []:
        if isinstance(item, Mapping) and "Clicks" in item and "Id" not in item:
            out.extend(item.get("Clicks") or [])
        else:
            out.append(item)
    return out


def _parse_clicks(clicks: Mapping[str, object]) -> dict[tuple[str, str], ClickTruth]:
    out: dict[tuple[str, str], ClickTruth] = {}
    for network_id, rows in clicks.items():
        for i, row in enumerate(click_objects(rows)):
            where = f"clicks[{network_id}][{i}]"
            if row.get("Id") in (None, ""):
                raise OracleError(f"{where}: click without `Id`")
            cid = str(row["Id"])
            if (network_id, cid) in out:
                continue  # clicks are immutable events: the first landing wins
            code = row.get("ReferralCode")
            out[(network_id, cid)] = ClickTruth(
                click_id=cid,
                network_id=network_id,
                referrer_partner_id=str(row.get("ReferrerPartnerId") or ""),
                destination_partner_id=str(row.get("DestinationPartnerId") or ""),
                clicked_at=parse_utc(row.get("EventDate"), f"{where}.EventDate"),
                referral_code=code if code not in ("",) else None,
                customer_email=normalize_email(row.get("CustomerEmail")),
            )
    return out


# --------------------------------------------------------------------------- the computation


def compute(
    config: OracleConfig,
    fx_rows: Iterable[tuple[date, str, Decimal]] | None,
    orders: Mapping[str, Sequence[Mapping]],
    clicks: Mapping[str, object],
    as_of: date,
    *,
    refunds: Mapping[str, Mapping[str, Sequence[Mapping]]] | None = None,
    deletions: Mapping[tuple[str, str], datetime] | None = None,
    rules: Sequence[RuleSpec] | None = None,
    alerts_as_of: date | None = None,
    landed_at: datetime | None = None,
) -> OracleResult:
    """Every published table (PRODUCT.md §5-§7) from the payloads; `as_of` is "today" (pending vs locked).

    `orders`: partner -> served order versions (Shopify or WooCommerce shape, by the partner's platform);
    `refunds`: WooCommerce partner -> order id -> its `/refunds` body; `clicks`: network -> click objects (or
    response bodies with a `Clicks` list); `deletions`: (partner, order id) -> deletion time (webhook receipt);
    `rules`: alert rules (default: the config's `alerts:` file); `alerts_as_of`: the evaluation's `--as-of`
    (None: "today" is the latest KPI day, and every KPI day is judged); `landed_at`: the warehouse clock at
    landing (§7: a version or click dated more than 10 minutes after it is quarantined, so it is not published).
    """
    if fx_rows is None:
        fx_rows = read_fx_csv(config.fx_rates)
    if rules is None:
        rules = load_rules(config.alerts)
    configured = config.model
    partner_ids = config.partner_ids
    fx = FxTable(fx_rows, config.reporting_currency)
    lookback = timedelta(days=config.lookback_days)
    deletions = deletions or {}
    refunds = refunds or {}
    code_owner: dict[str, str] = {}
    for partner in config.partners:
        for code in partner.referral_codes:
            code_owner[code.strip().upper()] = partner.id

    parsed: list[_Order] = []
    for partner_id, payloads in orders.items():
        platform = config.partner(partner_id).platform
        if landed_at is not None:
            payloads = [p for p in payloads
                        if not _from_the_future(platform, p, refunds.get(partner_id, {}), landed_at)]
        for oid, versions in _versions(partner_id, platform, payloads).items():
            parsed.append(_parse_order(config, partner_id, versions, refunds.get(partner_id, {}),
                                       deletions.get((partner_id, oid))))

    # Purchases per (destination, customer), oldest first: they define first orders and click resets.
    purchases: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for o in parsed:
        if o.eligible and o.customer is not None:
            purchases[(o.partner_id, o.customer)].append(o.ordered_at)
    for times in purchases.values():
        times.sort()

    def previous_purchase(o: _Order) -> datetime | None:
        """C's latest eligible order at D strictly before t."""
        if o.customer is None:
            return None
        times = purchases.get((o.partner_id, o.customer), [])
        i = bisect_right(times, o.ordered_at - timedelta(microseconds=1))
        return times[i - 1] if i else None

    click_rows = _parse_clicks(clicks)
    if landed_at is not None:
        click_rows = {k: c for k, c in click_rows.items() if c.clicked_at <= landed_at + FUTURE_TOLERANCE}
    clicks_by_target: dict[tuple[str, str], list[ClickTruth]] = defaultdict(list)
    for c in click_rows.values():
        if (c.customer_email is not None and c.referrer_partner_id != c.destination_partner_id
                and c.referrer_partner_id in partner_ids):
            clicks_by_target[(c.destination_partner_id, c.customer_email)].append(c)

    truths: dict[tuple[str, str], OrderTruth] = {}
    attribution: dict[tuple[str, str], AttributionTruth] = {}
    balances: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    leakage: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    credits: dict[tuple[str, str, str, str | None], CreditTruth] = {}
    programme: list[_ProgrammeRow] = []  # the configured model's credited rows, priced by §8 after the loop

    for o in sorted(parsed, key=lambda x: (x.partner_id, x.ordered_at, x.order_id)):
        where = f"order {o.partner_id}/{o.order_id}"
        rate = fx.rate(o.currency, o.ordered_at.date(), where)
        refunded = sum((r.amount for r in o.refunds), ZERO)
        before_lock = sum((r.amount for r in o.refunds if r.refunded_at.date() <= o.lock_date), ZERO)
        after_lock = refunded - before_lock
        prev = previous_purchase(o)
        first_order = o.eligible and o.customer is not None and prev is None
        truths[(o.partner_id, o.order_id)] = OrderTruth(
            partner_id=o.partner_id, order_id=o.order_id, ordered_at=o.ordered_at, updated_at=o.updated_at,
            currency=o.currency, customer_email=o.customer, is_cancelled=o.is_cancelled,
            counts_as_cancelled=o.counts_as_cancelled, is_test=o.is_test, is_new_customer=first_order,
            codes=o.codes, lock_date=o.lock_date, fx_rate=rate, commissionable_amount=o.commissionable,
            refunded_amount=refunded, refunded_before_lock=before_lock,
            commissionable_amount_rc=round_cents(o.commissionable * rate),
            refunded_amount_rc=round_cents(refunded * rate),
            net_amount_rc=round_cents((o.commissionable - refunded) * rate),
            refunds=o.refunds, platform=o.platform, cancelled_at=o.cancelled_at, previous_order_at=prev,
            refund_leakage_rc=round_cents(after_lock * rate),
        )
        if not o.eligible:
            continue

        # §6.3 eligible clicks (also reported for code-credited orders, for the other models).
        eligible: list[ClickTruth] = []
        if o.customer is not None:
            for c in clicks_by_target.get((o.partner_id, o.customer), []):
                if o.ordered_at - lookback <= c.clicked_at <= o.ordered_at and (prev is None or c.clicked_at > prev):
                    eligible.append(c)
        eligible.sort(key=lambda c: c.sort_key)

        referrer: str | None = None
        reason = "organic"
        winning_code: str | None = None
        winning_click: str | None = None
        for code in o.codes:  # §6.2 code beats click; D's own and unknown codes are skipped
            owner = code_owner.get(code.upper())
            if owner is not None and owner != o.partner_id:
                referrer, reason, winning_code = owner, "code", code
                break
        if referrer is None and eligible:
            best = eligible[-1]
            referrer, reason, winning_click = best.referrer_partner_id, "click", best.click_id

        state = "locked" if as_of > o.lock_date else "pending"
        left = max(ZERO, o.commissionable - before_lock)

        def commission_of(referrer: str, credit: Decimal, o: _Order = o, left: Decimal = left,
                          rate: Decimal = rate, first_order: bool = first_order
                          ) -> tuple[Terms, Decimal | None, Decimal]:
            contract = contract_for(config, o.partner_id, referrer, o.ordered_at.date())
            if contract.type == "percent":
                pct = contract.rate
                if first_order and contract.new_customer_rate is not None:
                    pct = contract.new_customer_rate
                return contract, pct, round_cents(pct * left * rate * credit)
            return contract, None, (round_cents(contract.amount * credit) if left > 0 else round_cents(ZERO))

        for model in MODELS:
            latest_click: dict[str, ClickTruth] = {}
            if referrer is not None and reason == "code":
                split: list[tuple[str | None, Decimal]] = [(referrer, ONE)]
            elif eligible:
                shares: dict[str, Decimal] = defaultdict(lambda: ZERO)
                for c, share in zip(eligible, click_shares(model, eligible, o.ordered_at), strict=True):
                    shares[c.referrer_partner_id] += share
                    if share > 0:
                        latest_click[c.referrer_partner_id] = c  # eligible is oldest first
                split = list(split_credit(shares))
            else:
                split = [(None, ONE)]
            amounts = [c for _, c in split]
            revenue = allocate_cents(amounts, o.commissionable * rate)
            net = allocate_cents(amounts, (o.commissionable - refunded) * rate)
            leak = allocate_cents(amounts, after_lock * rate)
            for i, (ref, credit) in enumerate(split):
                commission: Decimal | None = None
                row_state: str | None = None
                contract: Terms | None = None
                pct: Decimal | None = None
                if ref is not None:
                    contract, pct, priced = commission_of(ref, credit)
                row_reason = "organic" if ref is None else reason
                click = latest_click.get(ref) if row_reason == "click" and ref is not None else None
                if model == configured:
                    if ref is None:
                        commission = round_cents(ZERO)
                    else:
                        commission = priced
                        row_state = state
                        leakage[(ref, o.partner_id, o.ordered_at.strftime("%Y-%m"))] += leak[i]
                        programme.append(_ProgrammeRow((o.partner_id, o.order_id, model, ref), o, credit, contract,
                                                       first_order, left, rate, click))
                credits[(o.partner_id, o.order_id, model, ref)] = CreditTruth(
                    partner_id=o.partner_id, order_id=o.order_id, model=model, referrer_partner_id=ref,
                    reason=row_reason, credit=credit,
                    attributed_revenue_rc=revenue[i], net_attributed_revenue_rc=net[i], refund_leakage_rc=leak[i],
                    commission_rc=commission, commission_state=row_state,
                    network_id=click.network_id if click else None, click_id=click.click_id if click else None,
                    referral_code=winning_code if row_reason == "code" else None,
                    contract=contract, rate_applied=pct,
                )

        revenue_rc = round_cents(o.commissionable * rate)
        if referrer is None:
            attribution[(o.partner_id, o.order_id)] = AttributionTruth(
                partner_id=o.partner_id, order_id=o.order_id, referrer_partner_id=None, reason="organic",
                credit=ONE, attributed_revenue_rc=revenue_rc, commission_rc=round_cents(ZERO), commission_state=None,
                is_first_order=first_order, lock_date=o.lock_date,
                eligible_click_ids=tuple(c.click_id for c in eligible),
            )
            continue
        contract, _, commission = commission_of(referrer, ONE)
        attribution[(o.partner_id, o.order_id)] = AttributionTruth(
            partner_id=o.partner_id, order_id=o.order_id, referrer_partner_id=referrer, reason=reason,
            credit=ONE, attributed_revenue_rc=revenue_rc, commission_rc=commission, commission_state=state,
            click_id=winning_click, code=winning_code.upper() if winning_code else None, is_first_order=first_order,
            contract=contract, lock_date=o.lock_date, eligible_click_ids=tuple(c.click_id for c in eligible),
        )

    lines = _programme(config, programme, credits, click_rows, as_of)
    for row in _commission_rows(credits, configured):
        if row.is_commissioned:
            month = truths[(row.partner_id, row.order_id)].ordered_at.strftime("%Y-%m")
            balances[(row.referrer_partner_id, row.partner_id, month)] += row.commission_rc
    for (partner_id, order_id), a in list(attribution.items()):
        if a.referrer_partner_id is not None and configured == "last_click":  # the §8 price of the single row
            row = credits[(partner_id, order_id, "last_click", a.referrer_partner_id)]
            attribution[(partner_id, order_id)] = replace(a, commission_rc=row.commission_rc,
                                                          commission_state=row.commission_state)
    kpis = _kpis(config, truths, credits, click_rows)
    balance_rows = _balances(config, truths, credits, as_of, lines)
    objectives = _objectives(config, kpis)
    observations = _observations(rules, kpis, objectives, alerts_as_of, balance_rows)
    alerts = _alerts(rules, observations, alerts_as_of or max((day for day, _ in kpis), default=None))
    return OracleResult(
        orders=truths, attribution=attribution, balances=dict(balances),
        clicks={c.click_id: c for c in click_rows.values()}, credits=credits, leakage=dict(leakage), kpis=kpis,
        balance_rows=balance_rows, objectives=objectives, alerts=alerts, observations=observations,
        configured_model=configured,
        platforms={p.id: p.platform for p in config.partners}, lines=lines,
        claims=_claims(config, truths, credits, click_rows),
    )


# --------------------------------------------------------------------------- §9.2 claims


def _credit_text(credit: Decimal) -> str:
    """A credit as the reason shows it: no trailing zeros (1, 0.6, 0.3333333333)."""
    text = format(credit, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _claims(config: OracleConfig, orders: Mapping[tuple[str, str], OrderTruth], credits: Mapping,
            clicks: Mapping[tuple[str, str], ClickTruth]) -> dict[str, ClaimTruth]:
    """Each claim's status: the first of unknown_order, not_commissionable, rejected, credited, credited_to_other,
    outside_window, no_click, judged on the configured model's rows."""
    out: dict[str, ClaimTruth] = {}
    lookback = timedelta(days=config.lookback_days)
    for claim in config.claims:
        order = orders.get((claim.destination, claim.order_id))
        rows = sorted((c for (dest, oid, model, ref), c in credits.items()
                       if dest == claim.destination and oid == claim.order_id and model == config.model
                       and ref is not None and c.credit > 0),
                      key=lambda c: (-c.credit, c.referrer_partner_id))
        mine = next((c for c in rows if c.referrer_partner_id == claim.referrer), None)
        credited = ",".join(c.referrer_partner_id for c in rows) or None
        credit: Decimal | None = None
        if order is None:
            status, reason = "unknown_order", f"no order {claim.order_id} at {claim.destination}"
        elif order.is_test or order.counts_as_cancelled:
            status = "not_commissionable"
            reason = ("a test order" if order.is_test else "the order is cancelled") + ": no commission"
        elif mine is not None and mine.programme_state == "rejected":
            status, credit = "rejected", mine.credit
            reason = f"the credit of {claim.referrer} ({_credit_text(mine.credit)}) was rejected in review"
        elif mine is not None:
            status, credit = "credited", mine.credit
            reason = (f"credited to {claim.referrer} ({_credit_text(mine.credit)}) by {mine.reason}"
                      + (", held for review" if mine.programme_state == "held" else ""))
        elif rows:
            status = "credited_to_other"
            reason = "credited to " + ", ".join(f"{c.referrer_partner_id} ({_credit_text(c.credit)})" for c in rows)
        else:
            theirs = [c for c in clicks.values()
                      if order.customer_email is not None and c.customer_email == order.customer_email
                      and c.destination_partner_id == claim.destination and c.referrer_partner_id == claim.referrer]
            if theirs:
                after = sum(1 for c in theirs if c.clicked_at > order.ordered_at)
                early = sum(1 for c in theirs if c.clicked_at <= order.ordered_at
                            and c.clicked_at < order.ordered_at - lookback)
                reset = sum(1 for c in theirs if order.ordered_at - lookback <= c.clicked_at <= order.ordered_at
                            and order.previous_order_at is not None and c.clicked_at <= order.previous_order_at)
                parts = [f"{after} after the order"] if after else []
                parts += [f"{early} before the {config.lookback_days}-day lookback"] if early else []
                parts += [f"{reset} before the customer's previous order"] if reset else []
                status = "outside_window"
                reason = f"{claim.referrer} clicked for this customer, but outside the window: " + ", ".join(parts)
            elif order.customer_email is None:
                status, reason = "no_click", "a guest order: no customer to match clicks to"
            else:
                status, reason = "no_click", f"no click from {claim.referrer} for this customer at {claim.destination}"
        out[claim.claim_id] = ClaimTruth(claim, status, reason, credit, credited)
    return out


# --------------------------------------------------------------------------- §8 partner programmes


@dataclass(frozen=True)
class _ProgrammeRow:
    key: tuple[str, str, str, str]  # (destination, order, model, referrer)
    order: _Order
    credit: Decimal
    contract: Terms
    first_order: bool
    left: Decimal  # commissionable minus refunds on or before the lock date, floored at 0
    fx: Decimal
    click: ClickTruth | None  # the referrer's credited click (reason click)


def _hold_reason(config: OracleConfig, row: _ProgrammeRow, clicks: Mapping[tuple[str, str], ClickTruth]
                 ) -> str | None:
    """§8.5: the credited click w came less than min seconds before the order, or the referrer sent more than max
    clicks for the customer and destination with clicked_at in (w - 3600 s, w] (each click id once)."""
    w = row.click
    if w is None:
        return None
    reasons = []
    minimum = config.holds_min_seconds
    if minimum is not None and row.order.ordered_at - w.clicked_at < timedelta(seconds=minimum):
        reasons.append(f"click less than {minimum} s before the order")
    maximum = config.holds_max_clicks_per_hour
    if maximum is not None:
        burst = {c.click_id for c in clicks.values()
                 if c.referrer_partner_id == w.referrer_partner_id and c.destination_partner_id == row.order.partner_id
                 and c.customer_email == row.order.customer
                 and w.clicked_at - timedelta(seconds=3600) < c.clicked_at <= w.clicked_at}
        if len(burst) > maximum:
            reasons.append(f"more than {maximum} clicks for this customer in the hour up to the click")
    return "; ".join(reasons) or None


def _rate(contract: Terms, first_order: bool, earlier: int) -> Decimal:
    """§8.1: the last tier with from_orders <= earlier, else the base rate; a first order earns new_customer_rate
    below the first tier and the higher of the two from a tier on."""
    tier = None
    for from_orders, rate in contract.tiers:
        if from_orders <= earlier:
            tier = rate
    new = contract.new_customer_rate if first_order else None
    if tier is None:
        return new if new is not None else contract.rate
    return max(tier, new) if new is not None else tier


def _order_amount(row: _ProgrammeRow, rate: Decimal | None, late_refunds: Decimal = ZERO) -> Decimal:
    """§8.2 the (order, referrer) amount after credit and cap_per_order, rounded to cents (before the monthly cap)."""
    left = row.left - late_refunds
    if row.contract.type == "percent":
        amount = rate * max(ZERO, left) * row.fx * row.credit
    else:
        amount = row.contract.amount * row.credit if left > 0 else ZERO
    if row.contract.cap_per_order is not None:
        amount = min(amount, row.contract.cap_per_order)
    return round_cents(amount)


def _uncapped(row: _ProgrammeRow, rate: Decimal | None) -> Decimal:
    """§8.2 the (order, referrer) amount before any cap, rounded to cents: what "capped" on a statement compares."""
    if row.contract.type == "percent":
        return round_cents(rate * max(ZERO, row.left) * row.fx * row.credit)
    return round_cents(row.contract.amount * row.credit if row.left > 0 else ZERO)


def _programme(config: OracleConfig, rows: Sequence[_ProgrammeRow], credits: dict,
               clicks: Mapping[tuple[str, str], ClickTruth], as_of: date) -> dict[tuple[str, str, str], LineTruth]:
    """§8 on the configured model's credited rows, per programme month (destination, referrer, UTC month), earliest
    order first by (ordered_at, order id in (length, text) order): holds and reviews, tiers, caps; then the lines
    (clawbacks, approvals, manual adjustments)."""
    months: dict[tuple[str, str, date], list[_ProgrammeRow]] = defaultdict(list)
    for row in rows:
        months[(row.order.partner_id, row.key[3], row.order.ordered_at.date().replace(day=1))].append(row)
    lines: dict[tuple[str, str, str], LineTruth] = {}

    def add(line: LineTruth) -> None:
        lines[(line.destination_partner_id, line.referrer_partner_id, line.line_key)] = line

    for month_rows in months.values():
        month_rows.sort(key=lambda r: (r.order.ordered_at, len(r.order.order_id), r.order.order_id))
        earlier, earned = 0, ZERO
        for row in month_rows:
            o = row.order
            reason = _hold_reason(config, row, clicks)
            review = config.reviews.get((o.partner_id, o.order_id)) if reason else None
            state = None
            if reason and review is None:
                state = "held"
            elif reason and review.decision == "reject":
                state = "rejected"
            elif reason and review.reviewed_at.date() > o.lock_date:
                state = "approved"
            rate = _rate(row.contract, row.first_order, earlier) if row.contract.type == "percent" else None
            capped = _order_amount(row, rate)
            cap = row.contract.cap_per_month
            room = round_cents(max(ZERO, cap - earned)) if cap is not None else None
            if state is None:
                commission = min(capped, room) if room is not None else capped
                earned += commission
                earlier += 1
            else:
                commission = capped if state == "approved" else round_cents(ZERO)
            credits[row.key] = replace(
                credits[row.key], commission_rc=commission, rate_applied=rate,
                commission_state=state or ("locked" if as_of > o.lock_date else "pending"),
                is_commissioned=state is None, programme_state=state, held_rc=capped if state else None,
                hold_reason=reason, reviewed_at=review.reviewed_at if review else None,
                earlier_commissioned_orders=(earlier - (1 if state is None else 0)) if row.contract.tiers
                or cap is not None else None, cap_room=room,
                tier_from_orders=max((f for f, _ in row.contract.tiers if f <= earlier - (1 if state is None else 0)),
                                     default=None) if row.contract.type == "percent" else None,
                is_capped=(commission if state is None else capped) < _uncapped(row, rate))
            if state == "approved":
                day = review.reviewed_at.date()
                add(LineTruth("approval", day.replace(day=1), row.key[3], o.partner_id, o.order_id, capped,
                              f"held ({reason}), approved on {day.isoformat()}, after the lock date "
                              f"{o.lock_date.isoformat()}", day, f"approval:{o.order_id}"))
            if state is None and row.contract.clawback:
                for line in _clawbacks(row, rate, room, commission):
                    add(line)
    for a in config.adjustments:
        add(LineTruth("manual", a.month, a.referrer, a.destination, None, round_cents(a.amount), a.reason, a.month,
                      f"manual:{a.line}"))
    return lines


def _clawbacks(row: _ProgrammeRow, rate: Decimal | None, room: Decimal | None, commission: Decimal
               ) -> list[LineTruth]:
    """§8.3: each refund dated after the lock date and a cancellation after it, in (date, refund id) order with
    the cancellation after its day's refunds (it ends the sequence): -(C_before - C_after), C recomputed with the
    order's late events so far, its rate and monthly room as at the lock."""
    o = row.order
    events = [(r.refunded_at.date(), 0, r.refund_id, r.amount) for r in o.refunds if r.refunded_at.date() > o.lock_date]
    if o.is_cancelled and not o.counts_as_cancelled and o.cancelled_at is not None:
        events.append((o.cancelled_at.date(), 1, "cancellation", ZERO))
    events.sort(key=lambda e: (e[0], e[1], len(e[2]), e[2]))
    out, late, before = [], ZERO, commission
    for day, rank, event_id, amount in events:
        late += amount
        after = round_cents(ZERO) if rank == 1 else _order_amount(row, rate, late)
        if rank == 0 and room is not None:
            after = min(after, room)
        if after != before:
            what = "cancellation" if rank == 1 else f"refund {event_id}"
            out.append(LineTruth("clawback", day.replace(day=1), row.key[3], o.partner_id, o.order_id,
                                 after - before, f"{what} on {day.isoformat()}, after the lock date "
                                 f"{o.lock_date.isoformat()}", day, f"clawback:{o.order_id}:{event_id}"))
        before = after
        if rank == 1:
            break
    return out


# --------------------------------------------------------------------------- KPIs, balances, objectives, alerts


def _commission_rows(credits: Mapping, configured: str) -> list[CreditTruth]:
    """The configured model's credited rows (credit > 0, a referrer): the orders partners are paid for."""
    return [c for c in credits.values()
            if c.model == configured and c.referrer_partner_id is not None and c.credit > 0]


def _kpis(config: OracleConfig, orders: Mapping[tuple[str, str], OrderTruth], credits: Mapping,
          clicks: Mapping[tuple[str, str], ClickTruth]) -> dict[tuple[date, str], KpiTruth]:
    """partner_kpis_daily, PRODUCT.md §6 "KPI dates" paragraph, word for word.

    A row exists for a partner and day when it sent a click (not a self-referral), was credited for an order
    (credit > 0) or owed a commission on a commissioned order of that day. Money columns add per-(order, referrer)
    amounts each rounded to cents once (credit x commissionable x FX; net: credit x (commissionable - every refund)
    x FX, no floor); ratios divide those published sums; rates 4 decimals, `_rc` cents, half away from zero.
    `refund_leakage_rc` (README): credit x refunds after the lock date x FX, per (order, referrer) rounded once.
    """
    partner_ids = config.partner_ids
    acc: dict[tuple[date, str], dict[str, Any]] = defaultdict(lambda: {
        "clicks": 0, "orders": set(), "new": set(), "revenue": ZERO, "net": ZERO, "leak": ZERO, "earned": ZERO,
        "owed": ZERO, "owes": False})
    for c in clicks.values():
        if c.referrer_partner_id in partner_ids and c.referrer_partner_id != c.destination_partner_id:
            acc[(c.clicked_at.date(), c.referrer_partner_id)]["clicks"] += 1
    for row in _commission_rows(credits, config.model):
        o = orders[(row.partner_id, row.order_id)]
        day = o.ordered_at.date()
        if row.programme_state != "rejected":  # §8.6: orders and revenue include held rows, not rejected ones
            a = acc[(day, row.referrer_partner_id)]
            a["orders"].add(o.key)
            if o.is_new_customer:
                a["new"].add(o.key)
            a["revenue"] += round_cents(row.credit * o.commissionable_amount * o.fx_rate)
            a["net"] += round_cents(row.credit * (o.commissionable_amount - o.refunded_amount) * o.fx_rate)
            a["leak"] += round_cents(row.credit * (o.refunded_amount - o.refunded_before_lock) * o.fx_rate)
        if row.is_commissioned:  # §8.6: commission columns count commissioned orders only
            acc[(day, row.referrer_partner_id)]["earned"] += row.commission_rc
            d = acc[(day, row.partner_id)]
            d["owed"] += row.commission_rc
            d["owes"] = True
    out: dict[tuple[date, str], KpiTruth] = {}
    for (day, partner), a in acc.items():
        if partner not in partner_ids or not (a["clicks"] or a["orders"] or a["owes"]):
            continue
        referred = len(a["orders"])
        revenue, net, earned = round_cents(a["revenue"]), round_cents(a["net"]), round_cents(a["earned"])
        out[(day, partner)] = KpiTruth(
            kpi_date=day, partner_id=partner, clicks_sent=a["clicks"], referred_orders=referred,
            conversion_rate=ratio(Decimal(referred), Decimal(a["clicks"]), RATE_PLACES),
            attributed_revenue_rc=revenue, net_attributed_revenue_rc=net,
            aov_rc=ratio(revenue, Decimal(referred), CENT),
            refund_rate=ratio(revenue - net, revenue, RATE_PLACES),
            new_customer_rate=ratio(Decimal(len(a["new"])), Decimal(referred), RATE_PLACES),
            epc_rc=ratio(earned, Decimal(a["clicks"]), CENT),
            commission_earned_rc=earned, commission_owed_rc=round_cents(a["owed"]),
            refund_leakage_rc=round_cents(a["leak"]),
        )
    return out


def _balances(config: OracleConfig, orders: Mapping[tuple[str, str], OrderTruth], credits: Mapping,
              as_of: date, lines: Mapping[tuple[str, str, str], LineTruth] | None = None
              ) -> dict[tuple[str, str, date], BalanceTruth]:
    """partner_balances: every (referrer, destination, UTC month) with a commissioned or held order of the
    configured model, or a §8 line, zero commissions included; orders and revenue count every credited row but the
    rejected ones, the commission the commissioned ones; money columns add per-(order, referrer) cents as in
    partner_kpis_daily; one lock date per month (its last day + lock_days), `locked` once today is after it."""
    acc: dict[tuple[str, str, date], dict[str, Any]] = defaultdict(lambda: {
        "orders": set(), "revenue": ZERO, "net": ZERO, "commission": ZERO, "leak": ZERO, "commissioned": 0,
        "held": 0, "held_rc": ZERO, "clawback": ZERO, "adjustments": ZERO, "lines": False})
    for row in _commission_rows(credits, config.model):
        o = orders[(row.partner_id, row.order_id)]
        month = o.ordered_at.date().replace(day=1)
        a = acc[(row.referrer_partner_id, row.partner_id, month)]
        if row.programme_state != "rejected":
            a["orders"].add(o.key)
            a["revenue"] += round_cents(row.credit * o.commissionable_amount * o.fx_rate)
            a["net"] += round_cents(row.credit * (o.commissionable_amount - o.refunded_amount) * o.fx_rate)
            a["leak"] += round_cents(row.credit * (o.refunded_amount - o.refunded_before_lock) * o.fx_rate)
        if row.is_commissioned:
            a["commission"] += row.commission_rc
            a["commissioned"] += 1
        if row.programme_state == "held":
            a["held"] += 1
            a["held_rc"] += row.held_rc
    for line in (lines or {}).values():
        a = acc[(line.referrer_partner_id, line.destination_partner_id, line.month)]
        a["lines"] = True
        a["clawback" if line.kind == "clawback" else "adjustments"] += line.amount_rc
    out = {}
    for (ref, dest, month), a in acc.items():
        if not (a["commissioned"] or a["held"] or a["lines"]):
            continue
        lock = lock_date_for(month, config.lock_days)
        out[(ref, dest, month)] = BalanceTruth(
            referrer_partner_id=ref, destination_partner_id=dest, month=month, attributed_orders=len(a["orders"]),
            attributed_revenue_rc=a["revenue"], net_attributed_revenue_rc=a["net"], commission_rc=a["commission"],
            refund_leakage_rc=a["leak"], lock_date=lock, state="locked" if as_of > lock else "pending",
            commissioned_orders=a["commissioned"], held_orders=a["held"], clawback_rc=a["clawback"],
            adjustments_rc=a["adjustments"], held_rc=a["held_rc"])
    return out


def _objectives(config: OracleConfig, kpis: Mapping[tuple[date, str], KpiTruth]
                ) -> dict[tuple[str, date, str], ObjectiveTruth]:
    """§6: objective metrics are additive partner_kpis_daily columns summed over the month; attainment 4 decimals."""
    out = {}
    for obj in config.objectives:
        actual = sum((Decimal(getattr(k, obj.metric)) for (day, p), k in kpis.items()
                      if p == obj.partner_id and day.replace(day=1) == obj.month), ZERO)
        out[(obj.partner_id, obj.month, obj.metric)] = ObjectiveTruth(
            partner_id=obj.partner_id, month=obj.month, metric=obj.metric, target=obj.target, actual=actual,
            attainment=ratio(actual, obj.target, RATE_PLACES))
    return out


def _observations(rules: Sequence[RuleSpec], all_kpis: Mapping[tuple[date, str], KpiTruth],
                  objectives: Mapping[tuple[str, date, str], ObjectiveTruth], as_of: date | None = None,
                  balances: Mapping[tuple[str, str, date], BalanceTruth] | None = None,
                  ) -> dict[tuple[str, str, str, date], ObservationTruth]:
    """Every period each rule judges: KPI days up to `as_of` (trailing baselines may use any earlier day); the pace
    "today" is `as_of`, else the latest KPI day; held-share rules judge a referrer's months up to `as_of`, across
    destinations, from `min_orders` commissioned or held orders on. Keyed (rule_id, partner_id, kpi, period)."""
    out: dict[tuple[str, str, str, date], ObservationTruth] = {}
    kpis = {k: v for k, v in all_kpis.items() if as_of is None or k[0] <= as_of}

    def judge(rule: RuleSpec, partner: str, kpi: str, period: date, value: Decimal | None, threshold: Decimal,
              baseline: Decimal | None) -> None:
        breached = value is not None and (value > threshold if rule.comparison == "above" else value < threshold)
        out[(rule.id, partner, kpi, period)] = ObservationTruth(
            rule_id=rule.id, rule_kind=rule.kind, partner_id=partner, kpi=kpi, period=period, value=value,
            threshold=threshold, baseline=baseline, comparison=rule.comparison, breached=breached)

    def day_volume(rule: RuleSpec, k: KpiTruth) -> Decimal:
        return Decimal(getattr(k, rule.min_day_volume_kpi) or 0) if rule.min_day_volume_kpi else ZERO

    by_partner: dict[str, dict[date, KpiTruth]] = defaultdict(dict)
    for (day, partner), k in all_kpis.items():
        by_partner[partner][day] = k
    referrer_months: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])  # -> [held, commissioned+held]
    for b in (balances or {}).values():
        if as_of is None or b.month <= as_of:
            counts = referrer_months[(b.referrer_partner_id, b.month)]
            counts[0] += b.held_orders
            counts[1] += b.commissioned_orders + b.held_orders
    for rule in rules:
        if rule.kind == "held_share":
            for (partner, month), (held, orders) in referrer_months.items():
                if orders and orders >= rule.min_volume:
                    share = (Decimal(held) / Decimal(orders)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
                    judge(rule, partner, "held_share", month, share, rule.threshold, None)
        elif rule.kind == "threshold":
            for (day, partner), k in kpis.items():
                if day_volume(rule, k) < rule.min_day_volume:
                    continue
                value = getattr(k, rule.kpi)
                judge(rule, partner, rule.kpi, day, None if value is None else Decimal(value), rule.threshold, None)
        elif rule.kind == "trailing":
            n = rule.trailing_days
            six = Decimal("1e-6")
            for partner, days in by_partner.items():
                for day, k in days.items():
                    if as_of is not None and day > as_of:
                        continue
                    value = getattr(k, rule.kpi)
                    before = [getattr(days[d], rule.kpi) for d in days if day - timedelta(days=n) <= d < day]
                    before = [Decimal(v) for v in before if v is not None]
                    if value is None or not before or len(before) < rule.min_training_days:
                        continue
                    baseline = sum(before, ZERO) / len(before)
                    volume = sum((Decimal(getattr(days[d], rule.min_volume_kpi) or 0) for d in days
                                  if day - timedelta(days=n) <= d <= day), ZERO) if rule.min_volume_kpi else ZERO
                    if volume < rule.min_volume or day_volume(rule, k) < rule.min_day_volume:
                        continue
                    if rule.zscore:  # sample standard deviation; a flat window has nothing to learn from
                        if len(before) < 2:
                            continue
                        spread = (sum(((v - baseline) ** 2 for v in before), ZERO) / (len(before) - 1)).sqrt()
                        if spread <= 0:
                            continue
                        sign = 1 if rule.comparison == "above" else -1
                        limit = (baseline + sign * rule.threshold * spread).quantize(six, rounding=ROUND_HALF_UP)
                    else:
                        if baseline <= 0:
                            continue
                        limit = (baseline * (1 + rule.threshold)).quantize(six, rounding=ROUND_HALF_UP)
                    judge(rule, partner, rule.kpi, day, Decimal(value), limit,
                          baseline.quantize(six, rounding=ROUND_HALF_UP))
        else:
            if not all_kpis and as_of is None:
                continue
            today = as_of or max(day for day, _ in all_kpis)
            for obj in objectives.values():
                if obj.month > today or obj.target <= 0 or (rule.kpi and obj.metric != rule.kpi):
                    continue
                through = min(today, month_end(obj.month))
                elapsed = (through - obj.month).days + 1
                days = month_end(obj.month).day
                if elapsed < rule.min_elapsed_days:
                    continue
                # the actual to the reference day: KPI days after it (a run for an earlier as-of date) do not count
                actual = sum((Decimal(getattr(k, obj.metric)) for (day, p), k in all_kpis.items()
                              if p == obj.partner_id and obj.month <= day <= through), ZERO)
                projected = (actual * days / elapsed / obj.target).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
                judge(rule, obj.partner_id, obj.metric, obj.month, projected, rule.threshold, None)
    return out


def _alerts(rules: Sequence[RuleSpec], observations: Mapping[tuple[str, str, str, date], ObservationTruth],
            reference: date | None) -> dict[str, AlertTruth]:
    """Which alerts fire on the first evaluation of this data: one per breached observation whose period (its last
    day: month end for pace and held-share rules) falls in the rule's detection window, the `detection_days` up to
    the reference day (the as-of date, else the latest KPI day)."""
    by_id = {rule.id: rule for rule in rules}
    out: dict[str, AlertTruth] = {}
    for o in observations.values():
        rule = by_id[o.rule_id]
        last_day = month_end(o.period) if rule.kind in ("pace", "held_share") else o.period
        if not o.breached or reference is None or last_day <= reference - timedelta(days=rule.detection_days):
            continue
        alert_id = f"{o.rule_id}:{o.partner_id}:{o.period.isoformat()}" + (
            f":{o.kpi}" if rule.kind == "pace" else "") + ":1"
        out[alert_id] = AlertTruth(alert_id=alert_id, rule_id=o.rule_id, severity=rule.severity,
                                   partner_id=o.partner_id, kpi=o.kpi, period=o.period, value=o.value,
                                   threshold=o.threshold, comparison=o.comparison, kind=rule.kind,
                                   baseline=o.baseline)
    return out


# --------------------------------------------------------------------------- the published tables


def partner_months(result: OracleResult) -> dict[tuple[str, date], dict[str, Any]]:
    """partner_kpis_monthly: per partner and UTC month, its KPI days summed (conversion over the sums), and its
    partner_balances rows summed on each side (referrer: earned, clawbacks, adjustments, held; destination: owed)."""
    rows: dict[tuple[str, date], dict[str, Any]] = {}
    zero = round_cents(ZERO)

    def row(partner: str, month: date) -> dict[str, Any]:
        return rows.setdefault((partner, month), {
            "partner_id": partner, "month": month, "clicks_sent": 0, "referred_orders": 0,
            "attributed_revenue_rc": zero, "net_attributed_revenue_rc": zero, "commission_earned_rc": zero,
            "commission_owed_rc": zero, "clawback_rc": zero, "adjustments_rc": zero, "held_rc": zero,
            "held_orders": 0, "balance_earned_rc": zero, "balance_owed_rc": zero})

    for k in result.kpis.values():
        r = row(k.partner_id, k.kpi_date.replace(day=1))
        r["clicks_sent"] += k.clicks_sent
        r["referred_orders"] += k.referred_orders
        r["attributed_revenue_rc"] += k.attributed_revenue_rc
        r["net_attributed_revenue_rc"] += k.net_attributed_revenue_rc
    for b in result.balance_rows.values():
        balance = b.commission_rc + b.clawback_rc + b.adjustments_rc
        earned = row(b.referrer_partner_id, b.month)
        earned["commission_earned_rc"] += b.commission_rc
        earned["clawback_rc"] += b.clawback_rc
        earned["adjustments_rc"] += b.adjustments_rc
        earned["held_rc"] += b.held_rc
        earned["held_orders"] += b.held_orders
        earned["balance_earned_rc"] += balance
        owed = row(b.destination_partner_id, b.month)
        owed["commission_owed_rc"] += b.commission_rc
        owed["balance_owed_rc"] += balance
    for r in rows.values():
        r["conversion_rate"] = ratio(r["referred_orders"], r["clicks_sent"], RATE_PLACES)
        r["net_balance_rc"] = r["balance_earned_rc"] - r["balance_owed_rc"]
    return rows


def statement_lines(result: OracleResult) -> dict[tuple, dict[str, Any]]:
    """§9.1 each statement line twice: on the referrer's statement (earned) and the destination's (owed). Order lines
    for the configured model's commissioned rows (in the totals) and held or rejected rows (apart), then the lines."""
    lines = []
    for c in result.credits.values():
        if c.model != result.configured_model or c.referrer_partner_id is None:
            continue
        if not (c.is_commissioned or c.programme_state in ("held", "rejected")):
            continue
        o = result.orders[(c.partner_id, c.order_id)]
        lines.append({
            "referrer_partner_id": c.referrer_partner_id, "destination_partner_id": c.partner_id,
            "month": o.ordered_at.date().replace(day=1), "line_kind": c.programme_state or "order",
            "in_totals": c.is_commissioned, "line_key": f"order:{c.order_id}", "order_id": c.order_id,
            "line_date": o.ordered_at.date(), "attribution_model": c.model, "credit": c.credit,
            "commissionable_amount_rc": o.commissionable_amount_rc,
            "refunded_before_lock_rc": round_cents(o.refunded_before_lock * o.fx_rate), "rate_applied": c.rate_applied,
            "is_capped": c.is_capped, "amount_rc": c.commission_rc, "held_rc": c.held_rc, "state": c.commission_state,
            "reason": None if c.is_commissioned else c.hold_reason})
    for line in result.lines.values():
        month_state = result.balance_rows[(line.referrer_partner_id, line.destination_partner_id, line.month)].state
        lines.append({
            "referrer_partner_id": line.referrer_partner_id, "destination_partner_id": line.destination_partner_id,
            "month": line.month, "line_kind": line.kind, "in_totals": True, "line_key": line.line_key,
            "order_id": line.order_id, "line_date": line.line_date, "attribution_model": None, "credit": None,
            "commissionable_amount_rc": None, "refunded_before_lock_rc": None, "rate_applied": None, "is_capped": None,
            "amount_rc": line.amount_rc, "held_rc": None, "state": month_state, "reason": line.reason})
    out = {}
    for line in lines:
        for direction, partner, other in (("earned", line["referrer_partner_id"], line["destination_partner_id"]),
                                          ("owed", line["destination_partner_id"], line["referrer_partner_id"])):
            out[(partner, direction, other, line["line_key"])] = {
                **line, "partner_id": partner, "direction": direction, "counterparty_partner_id": other}
    return out


def published_tables(result: OracleResult, salt: str) -> dict[str, dict[tuple, dict[str, Any]]]:
    """Each published table's rows as the contract defines them, keyed by the table's key columns."""
    configured = result.configured_model
    fct_orders = {}
    for key, o in result.orders.items():
        fct_orders[key] = {
            "partner_id": o.partner_id, "order_id": o.order_id,
            # the storefront is Shopify whichever API alliance reads it through: switching API changes no row
            "platform": "shopify" if o.platform == "shopify_graphql" else o.platform,
            "ordered_at": o.ordered_at, "updated_at": o.updated_at, "order_date": o.ordered_at.date(),
            "customer_key": o.customer_key(salt), "currency": o.currency,
            "commissionable_amount": o.commissionable_amount, "refunded_amount": o.refunded_amount,
            "refunded_before_lock_amount": o.refunded_before_lock, "fx_rate": o.fx_rate,
            "commissionable_amount_rc": o.commissionable_amount_rc, "refunded_amount_rc": o.refunded_amount_rc,
            "net_amount_rc": o.net_amount_rc, "refund_leakage_rc": o.refund_leakage_rc,
            "cancelled_at": o.cancelled_at, "is_cancelled": o.is_cancelled,
            "is_cancelled_after_lock": o.is_cancelled and not o.counts_as_cancelled, "is_test": o.is_test,
            "is_new_customer": o.is_new_customer, "previous_order_at": o.previous_order_at, "lock_date": o.lock_date,
        }
    fct_referrals = {}
    for c in result.clicks.values():
        fct_referrals[(c.network_id, c.click_id)] = {
            "network_id": c.network_id, "click_id": c.click_id, "referrer_partner_id": c.referrer_partner_id,
            "destination_partner_id": c.destination_partner_id, "clicked_at": c.clicked_at,
            "click_date": c.clicked_at.date(), "referral_code": c.referral_code,
            "customer_key": customer_key(c.customer_email, salt),
            "is_self_referral": c.referrer_partner_id == c.destination_partner_id,
        }
    attribution = {}
    for key, c in result.credits.items():
        o = result.orders[(c.partner_id, c.order_id)]
        t = c.contract
        attribution[key] = {
            "partner_id": c.partner_id, "order_id": c.order_id, "attribution_model": c.model,
            "referrer_partner_id": c.referrer_partner_id, "attribution_reason": c.reason, "credit": c.credit,
            "attributed_revenue_rc": c.attributed_revenue_rc, "net_attributed_revenue_rc": c.net_attributed_revenue_rc,
            "refund_leakage_rc": c.refund_leakage_rc, "is_commission_model": c.model == configured,
            "commission_rc": c.commission_rc, "commission_state": c.commission_state, "network_id": c.network_id,
            "click_id": c.click_id, "referral_code": c.referral_code, "order_date": o.ordered_at.date(),
            "lock_date": o.lock_date, "is_new_customer": o.is_new_customer,
            "contract_source": t.source if t else None, "contract_type": t.type if t else None,
            "contract_effective_from": t.effective_from if t else None, "rate_applied": c.rate_applied,
            "flat_amount": t.amount if t and t.type == "flat" else None, "fx_rate": o.fx_rate,
            "is_commissioned": c.is_commissioned, "held_rc": c.held_rc, "hold_reason": c.hold_reason,
            "reviewed_at": c.reviewed_at, "tier_from_orders": c.tier_from_orders,
        }
    kpis = {key: {f: getattr(k, f) for f in KpiTruth.__dataclass_fields__} for key, k in result.kpis.items()}
    balances = {}
    for key, b in result.balance_rows.items():
        locked = b.state == "locked"
        balances[key] = {
            "referrer_partner_id": b.referrer_partner_id, "destination_partner_id": b.destination_partner_id,
            "month": b.month, "attributed_orders": b.attributed_orders,
            "attributed_revenue_rc": b.attributed_revenue_rc, "net_attributed_revenue_rc": b.net_attributed_revenue_rc,
            "commission_earned_rc": b.commission_rc, "commission_owed_rc": b.commission_rc,
            "commission_locked_rc": b.commission_rc if locked else round_cents(ZERO),
            "commission_pending_rc": round_cents(ZERO) if locked else b.commission_rc,
            "refund_leakage_rc": b.refund_leakage_rc, "lock_date": b.lock_date, "state": b.state,
            "commissioned_orders": b.commissioned_orders, "held_orders": b.held_orders,
            "commission_rc": b.commission_rc, "clawback_rc": b.clawback_rc, "adjustments_rc": b.adjustments_rc,
            "held_rc": b.held_rc, "balance_rc": b.commission_rc + b.clawback_rc + b.adjustments_rc,
        }
    adjustments = {key: {f: getattr(line, f) for f in LineTruth.__dataclass_fields__}
                   for key, line in result.lines.items()}
    objectives = {key: {f: getattr(o, f) for f in ObjectiveTruth.__dataclass_fields__}
                  for key, o in result.objectives.items()}
    observations = {key: {f: getattr(o, f) for f in ObservationTruth.__dataclass_fields__}
                    for key, o in result.observations.items()}
    alerts = {}
    for alert_id, a in result.alerts.items():
        alerts[(alert_id,)] = {**{f: getattr(a, f) for f in AlertTruth.__dataclass_fields__}, "state": "firing"}
    claims = {(claim_id,): {
        "claim_id": claim_id, "referrer_partner_id": t.claim.referrer, "destination_partner_id": t.claim.destination,
        "order_id": t.claim.order_id, "claimed_at": t.claim.claimed_at, "status": t.status, "reason": t.reason,
        "claimant_credit": t.claimant_credit, "credited_referrers": t.credited_referrers,
        "source_file": t.claim.source_file, "source_line": t.claim.source_line,
    } for claim_id, t in result.claims.items()}
    return {"partner_claims": claims,
            "fct_orders": fct_orders, "fct_referrals": fct_referrals, "fct_order_attribution": attribution,
            "partner_statement_lines": statement_lines(result),
            "partner_kpis_daily": kpis, "partner_kpis_monthly": partner_months(result),
            "partner_balances": balances, "objective_progress": objectives,
            "kpi_alerts": alerts, "kpi_alert_observations": observations, "commission_adjustments": adjustments}
