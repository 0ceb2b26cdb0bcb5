"""An independent Python reading of PRODUCT.md §6: the five attribution models and the commission.

Why it exists: the published numbers are computed once, in dbt SQL. The end-to-end test
recomputes them here, from the partner payloads as the APIs serve them, and compares to
the cent. This module must never read or mirror the dbt models: independence is the point.

Pure Python, no database: `compute(config, fx_rows, orders, clicks, as_of) -> OracleResult`.

Readings of the contract this oracle shares with README "Decisions where the contract is open": a click whose
referrer is not a configured partner is not eligible (nobody could bill or be paid for it); model credits are
rounded to 10 decimals with the remainder on the last referrer (by id); revenue columns are split cumulatively
(round(cumulative credit x amount) minus the previous such rounding) so each order's rows add up to the cent.
"""

from __future__ import annotations

import calendar
import hashlib
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from alliance.config import AllianceConfig, Commission

CENT = Decimal("0.01")
CREDIT_PLACES = Decimal("1e-10")
MODELS = ("last_click", "first_click", "linear", "position_based", "time_decay")
HALF_LIFE_SECONDS = 7 * 24 * 3600
ONE = Decimal(1)
ZERO = Decimal(0)


class OracleError(Exception):
    """The inputs cannot be computed (missing FX rate, unreadable amount or date); says what and where."""


@dataclass(frozen=True)
class Refund:
    refunded_at: datetime  # UTC
    amount: Decimal  # sum of refund_line_items[].subtotal, storefront currency


@dataclass(frozen=True)
class OrderTruth:
    """One order (latest version) as fct_orders should show it, plus what §6 needs."""

    partner_id: str
    order_id: str
    ordered_at: datetime  # UTC
    updated_at: datetime  # UTC
    currency: str
    customer_email: str | None  # lower(strip(email)); None for guests. Test-only: never log it.
    is_cancelled: bool  # as the storefront says: cancelled_at set or financial_status voided
    counts_as_cancelled: bool  # §6.1: False when the cancellation came after the lock date
    is_test: bool
    is_new_customer: bool
    codes: tuple[str, ...]  # referral code candidates in §6.2 order, stripped and upper-cased
    lock_date: date
    fx_rate: Decimal
    commissionable_amount: Decimal
    refunded_amount: Decimal  # every refund with line items
    refunded_before_lock: Decimal  # refunds dated on or before lock_date
    commissionable_amount_rc: Decimal
    refunded_amount_rc: Decimal
    net_amount_rc: Decimal  # round((commissionable - refunded) * fx); not clamped at 0
    refunds: tuple[Refund, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.partner_id, self.order_id)

    def customer_key(self, salt: str) -> str | None:
        """The §4 customer_key, to compare with fct_orders.customer_key."""
        return customer_key(self.customer_email, salt)


@dataclass(frozen=True)
class AttributionTruth:
    """The configured-model row of fct_order_attribution for one eligible order."""

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
    contract: Commission | None = None  # the contract that priced it (None for organic)
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


@dataclass(frozen=True)
class OracleResult:
    orders: dict[tuple[str, str], OrderTruth]
    attribution: dict[tuple[str, str], AttributionTruth]  # the last_click row per order
    balances: dict[tuple[str, str, str], Decimal]  # configured model: (referrer, destination, 'YYYY-MM') -> commission
    clicks: dict[str, ClickTruth] = field(default_factory=dict)
    credits: dict[tuple[str, str, str, str | None], CreditTruth] = field(default_factory=dict)
    leakage: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # like balances: refunds after lock


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


# --------------------------------------------------------------------------- helpers


def round_cents(value: Decimal) -> Decimal:
    """Half away from zero to cents (ROUND_HALF_UP is away from zero for Decimal)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def normalize_email(value: object) -> str | None:
    """§4 identity: lower(trim(email)); blank or missing is no customer."""
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
    """ISO-8601 with any offset (or Z) to an aware UTC datetime; naive means UTC."""
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


def lock_date_for(ordered_at: datetime, lock_days: int) -> date:
    """Last day of the order's UTC month plus lock_days."""
    day = ordered_at.astimezone(UTC).date()
    last = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    return last + timedelta(days=lock_days)


def landing_ref(landing_site: object) -> str | None:
    """The landing URL's first `ref` query parameter (Shopify's landing_site_ref is not used)."""
    if not isinstance(landing_site, str) or not landing_site.strip():
        return None
    query = urlsplit(landing_site.strip()).query
    values = parse_qs(query, keep_blank_values=True).get("ref")
    return values[0] if values else None


def order_codes(order: Mapping) -> tuple[str, ...]:
    """Referral code candidates: discount codes in listed order, then the landing `ref`."""
    codes: list[str] = []
    for entry in order.get("discount_codes") or []:
        code = entry.get("code") if isinstance(entry, Mapping) else None
        if isinstance(code, str) and code.strip():
            codes.append(code.strip().upper())
    ref = landing_ref(order.get("landing_site"))
    if ref and ref.strip():
        codes.append(ref.strip().upper())
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


def contract_for(config: AllianceConfig, destination: str, referrer: str, day: date) -> Commission:
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


# --------------------------------------------------------------------------- parsing


def _latest_versions(partner_id: str, payloads: Sequence[Mapping]) -> list[Mapping]:
    """Orders change after creation: keep the version with the latest updated_at (later in list on ties)."""
    chosen: dict[str, tuple[datetime, Mapping]] = {}
    for i, order in enumerate(payloads):
        if order.get("id") in (None, ""):
            raise OracleError(f"orders[{partner_id}][{i}]: order without `id`")
        oid = str(order["id"])
        stamp = parse_utc(order.get("updated_at") or order.get("created_at"), f"order {partner_id}/{oid}.updated_at")
        if oid not in chosen or stamp >= chosen[oid][0]:
            chosen[oid] = (stamp, order)
    return [payload for _, payload in chosen.values()]


def _refunds(order: Mapping, where: str) -> tuple[Refund, ...]:
    refunds: list[Refund] = []
    for r, refund in enumerate(order.get("refunds") or []):
        items = refund.get("refund_line_items") or []
        if not items:
            continue  # shipping or fee only: touches neither amount
        total = ZERO
        for j, item in enumerate(items):
            total += parse_money(item.get("subtotal"), f"{where}.refunds[{r}].refund_line_items[{j}].subtotal")
        refunds.append(Refund(parse_utc(refund.get("created_at"), f"{where}.refunds[{r}].created_at"), total))
    return tuple(refunds)


@dataclass
class _Order:
    partner_id: str
    order_id: str
    ordered_at: datetime
    updated_at: datetime
    currency: str
    customer: str | None
    is_cancelled: bool
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


def _parse_order(config: AllianceConfig, partner_id: str, order: Mapping) -> _Order:
    oid = str(order["id"])
    where = f"order {partner_id}/{oid}"
    ordered_at = parse_utc(order.get("created_at"), f"{where}.created_at")
    updated_at = parse_utc(order.get("updated_at") or order.get("created_at"), f"{where}.updated_at")
    lock = lock_date_for(ordered_at, config.lock_days)
    cancelled_at = order.get("cancelled_at")
    voided = str(order.get("financial_status") or "").strip().lower() == "voided"
    is_cancelled = bool(cancelled_at) or voided
    if cancelled_at:
        # §6.1: a cancellation after the lock date leaves the commission standing.
        counts_as_cancelled = parse_utc(cancelled_at, f"{where}.cancelled_at").date() <= lock
    else:
        counts_as_cancelled = voided  # voided with no cancellation time: cancelled, we cannot date it
    currency = order.get("currency") or config.partner(partner_id).currency
    return _Order(
        partner_id=partner_id,
        order_id=oid,
        ordered_at=ordered_at,
        updated_at=updated_at,
        currency=str(currency).strip().upper(),
        customer=normalize_email(order.get("email")),
        is_cancelled=is_cancelled,
        counts_as_cancelled=counts_as_cancelled,
        is_test=bool(order.get("test")),
        codes=order_codes(order),
        lock_date=lock,
        commissionable=parse_money(order.get("subtotal_price"), f"{where}.subtotal_price"),
        refunds=_refunds(order, where),
    )


def _parse_clicks(clicks: Mapping[str, Sequence[Mapping]]) -> dict[str, ClickTruth]:
    out: dict[str, ClickTruth] = {}
    for network_id, rows in clicks.items():
        for i, row in enumerate(rows):
            where = f"clicks[{network_id}][{i}]"
            if row.get("Id") in (None, ""):
                raise OracleError(f"{where}: click without `Id`")
            cid = str(row["Id"])
            out[cid] = ClickTruth(
                click_id=cid,
                network_id=network_id,
                referrer_partner_id=str(row.get("ReferrerPartnerId") or ""),
                destination_partner_id=str(row.get("DestinationPartnerId") or ""),
                clicked_at=parse_utc(row.get("EventDate"), f"{where}.EventDate"),
                referral_code=row.get("ReferralCode"),
                customer_email=normalize_email(row.get("CustomerEmail")),
            )
    return out


# --------------------------------------------------------------------------- the computation


def compute(
    config: AllianceConfig,
    fx_rows: Iterable[tuple[date, str, Decimal]],
    orders: Mapping[str, Sequence[Mapping]],
    clicks: Mapping[str, Sequence[Mapping]],
    as_of: date,
) -> OracleResult:
    """Every fct_orders amount, every model's attribution rows, the commissions and the balances (PRODUCT.md §6)."""
    configured = config.attribution.model
    partner_ids = {p.id for p in config.partners}
    fx = FxTable(fx_rows, config.reporting_currency)
    lookback = timedelta(days=config.attribution.lookback_days)
    code_owner: dict[str, str] = {}
    for partner in config.partners:
        for code in partner.referral_codes:
            code_owner[code.strip().upper()] = partner.id

    parsed: list[_Order] = []
    for partner_id, payloads in orders.items():
        for payload in _latest_versions(partner_id, payloads):
            parsed.append(_parse_order(config, partner_id, payload))

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

    for o in sorted(parsed, key=lambda x: (x.partner_id, x.ordered_at, x.order_id)):
        where = f"order {o.partner_id}/{o.order_id}"
        rate = fx.rate(o.currency, o.ordered_at.date(), where)
        refunded = sum((r.amount for r in o.refunds), ZERO)
        before_lock = sum((r.amount for r in o.refunds if r.refunded_at.date() <= o.lock_date), ZERO)
        prev = previous_purchase(o)
        first_order = o.eligible and o.customer is not None and prev is None
        truths[(o.partner_id, o.order_id)] = OrderTruth(
            partner_id=o.partner_id,
            order_id=o.order_id,
            ordered_at=o.ordered_at,
            updated_at=o.updated_at,
            currency=o.currency,
            customer_email=o.customer,
            is_cancelled=o.is_cancelled,
            counts_as_cancelled=o.counts_as_cancelled,
            is_test=o.is_test,
            is_new_customer=first_order,
            codes=o.codes,
            lock_date=o.lock_date,
            fx_rate=rate,
            commissionable_amount=o.commissionable,
            refunded_amount=refunded,
            refunded_before_lock=before_lock,
            commissionable_amount_rc=round_cents(o.commissionable * rate),
            refunded_amount_rc=round_cents(refunded * rate),
            net_amount_rc=round_cents((o.commissionable - refunded) * rate),
            refunds=o.refunds,
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
            owner = code_owner.get(code)
            if owner is not None and owner != o.partner_id:
                referrer, reason, winning_code = owner, "code", code
                break
        if referrer is None and eligible:
            best = eligible[-1]
            referrer, reason, winning_click = best.referrer_partner_id, "click", best.click_id

        after_lock = refunded - before_lock
        state = "locked" if as_of > o.lock_date else "pending"
        left = max(ZERO, o.commissionable - before_lock)

        def commission_of(referrer: str, credit: Decimal, o: _Order = o, left: Decimal = left,
                          rate: Decimal = rate, first_order: bool = first_order) -> tuple[Commission, Decimal]:
            contract = contract_for(config, o.partner_id, referrer, o.ordered_at.date())
            if contract.type == "percent":
                pct = contract.rate
                if first_order and contract.new_customer_rate is not None:
                    pct = contract.new_customer_rate
                return contract, round_cents(pct * left * rate * credit)
            return contract, (round_cents(contract.amount * credit) if left > 0 else round_cents(ZERO))

        for model in MODELS:
            if referrer is not None and reason == "code":
                split: list[tuple[str | None, Decimal]] = [(referrer, ONE)]
            elif eligible:
                shares: dict[str, Decimal] = defaultdict(lambda: ZERO)
                for c, share in zip(eligible, click_shares(model, eligible, o.ordered_at), strict=True):
                    shares[c.referrer_partner_id] += share
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
                if model == configured:
                    commission = round_cents(ZERO) if ref is None else commission_of(ref, credit)[1]
                    row_state = None if ref is None else state
                    if ref is not None:
                        month = o.ordered_at.strftime("%Y-%m")
                        balances[(ref, o.partner_id, month)] += commission
                        leakage[(ref, o.partner_id, month)] += leak[i]
                credits[(o.partner_id, o.order_id, model, ref)] = CreditTruth(
                    partner_id=o.partner_id, order_id=o.order_id, model=model, referrer_partner_id=ref,
                    reason=reason if ref is None or reason == "code" else "click", credit=credit,
                    attributed_revenue_rc=revenue[i], net_attributed_revenue_rc=net[i], refund_leakage_rc=leak[i],
                    commission_rc=commission, commission_state=row_state,
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
        contract, commission = commission_of(referrer, ONE)
        attribution[(o.partner_id, o.order_id)] = AttributionTruth(
            partner_id=o.partner_id, order_id=o.order_id, referrer_partner_id=referrer, reason=reason,
            credit=ONE, attributed_revenue_rc=revenue_rc, commission_rc=commission, commission_state=state,
            click_id=winning_click, code=winning_code, is_first_order=first_order, contract=contract,
            lock_date=o.lock_date, eligible_click_ids=tuple(c.click_id for c in eligible),
        )

    return OracleResult(orders=truths, attribution=attribution, balances=dict(balances), clicks=click_rows,
                        credits=credits, leakage=dict(leakage))
