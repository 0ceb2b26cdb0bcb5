"""A deterministic alliance world for the sandbox partner APIs (and for independent test oracles).

Why: every connector, dbt model and quality check needs realistic partner data that exercises the
rules of PRODUCT.md §6 (code beats click, lookback edges, ties, repeat customers, cancellations, test
orders, refunds before and after the lock date), and the same seed must always give the same data.

World API (other engineers build on these exact names and shapes; keep them stable):

``build_world(config: AllianceConfig, seed: int = 42) -> World``
    Storefront partners (``shopify``, ``shopify_graphql``: REST-shaped here, served as GraphQL `Order` objects by
    devstack/sandbox/shopify_graphql.py; or ``woocommerce``: the same facts in WooCommerce REST v3's shape, see
    ``to_woocommerce``) get orders; every partner (including platform
    ``none``) is a referrer; every configured referral network serves clicks. All timestamps lie in a
    FIXED window (orders and clicks between 2026-09-01 and 2026-11-15 UTC; refunds, cancellations and
    later updates no later than 2026-11-20 UTC; one WooCommerce case is dated August 2026), independent of
    today's date.

``World`` attributes:
    ``orders: dict[str, list[dict]]``
        partner_id -> Shopify-shaped orders (latest version of each, exactly as served by
        ``/<partner_id>/admin/api/2025-10/orders.json``). Fields used downstream: ``id`` (int),
        ``created_at`` / ``updated_at`` / ``processed_at`` (ISO-8601 with LOCAL offsets such as ``-04:00``,
        ``+02:00``, ``+09:00``), ``currency`` (partner currency), ``subtotal_price`` (string, 2 decimals;
        the commissionable amount), ``discount_codes: [{"code", "amount", "type"}]`` (codes in varied
        letter case, possibly including non-referral promo codes and the storefront's own code),
        ``landing_site`` (may carry ``?ref=CODE``; ``landing_site_ref`` is unrelated and must not be used),
        ``email`` / ``contact_email`` (fake ``shopperNNN@example.test`` addresses, some in mixed case or with
        surrounding whitespace incl. U+00A0; null for guest orders), ``customer`` (``{"id", "email", ...}``
        or null for guests), ``cancelled_at`` (null or timestamp), ``financial_status`` (``paid``,
        ``partially_refunded``, ``refunded``, ``voided``), ``test`` (bool), ``refunds: [{"id", "created_at",
        "refund_line_items": [{"id", "quantity", "line_item_id", "subtotal": "x.xx", ...}], ...}]``
        (``refund_line_items`` is empty for a shipping-only refund).
    ``clicks: dict[str, list[dict]]``
        network_id -> referral-network clicks ``{"Id": "<digits>", "ReferrerPartnerId",
        "DestinationPartnerId", "EventDate": "2026-10-01T12:00:00Z", "ReferralCode": str | None,
        "CustomerEmail": str | None}``. Ids are digit strings of different lengths (e.g. "999", "1000").
    ``tokens: dict[str, str]``
        source_id -> the credential the sandbox expects: ``sandbox-<partner_id>-token`` for each shopify
        storefront (header ``X-Shopify-Access-Token``) and ``ACsandbox:sandbox-network-token`` (HTTP Basic
        ``sid:token``) for each network; equal to config/sandbox.env.
    ``scenarios: dict[str, list[dict]]``
        name -> references to the hand-made cases, e.g. ``{"partner_id", "order_id"}`` or click ids, so
        tests can find "the tie order" without re-deriving it. Names: code_discount, code_landing_ref,
        code_beats_click, discount_before_ref, own_code_ignored, own_code_then_click, unknown_code_then_ref,
        click_only, click_window_edge_inclusive, click_outside_window, click_after_order, click_tie,
        self_referral_click, repeat_customer_first, repeat_customer_second, repeat_customer_third,
        cancelled_first_then_click, cancelled, cancelled_after_lock, voided, test_order, refund_before_lock,
        refund_after_lock, refund_shipping_only, updated_after_creation, guest, utc_date_differs; with a
        woocommerce storefront also woo_trash, woo_after_trash_click, woo_failed, woo_trash_after_lock,
        refund_past_zero (refunds beyond the subtotal) and only_order_of_month_refunded (August 2026, before the
        window), on the first woocommerce storefront.
    ``refunds: dict[str, dict[str, list[dict]]]``
        woocommerce partner_id -> order id -> the ``/orders/{id}/refunds`` body (``date_created_gmt``,
        ``line_items[].total`` negative; empty ``line_items`` for a shipping-only refund).
    ``partners: dict[str, dict]``  partner_id -> {"platform", "currency", "referral_codes"}.
    ``seed: int``.

``World`` methods:
    ``to_json() -> str``  canonical JSON (sorted keys) of seed, partners, orders, clicks and scenarios;
        byte-identical for the same config and seed. Tokens are not included.
    ``update_order(partner_id, order_id, **changes) -> dict``  apply top-level field changes to a served
        order and bump its ``updated_at`` past every other order of that partner (and past now), as a real
        storefront does on edit; the new version is what the next request returns.
    ``add_order(partner_id, order) -> None``  serve an extra (possibly malformed) record, for tests.
    ``touch_order(partner_id, order_id, at, **changes) -> dict``  edit an order and set its modification time to
        ``at`` (WooCommerce ``status="trash"`` trashes it; a later touch with another status restores it).
    ``redate_order(partner_id, order_id, at, **changes) -> dict``  creation and modification at ``at``: a
        storefront whose clock runs ahead when ``at`` is in the future.
    ``find_order(partner_id, order_id) -> dict``.
All mutation goes through ``world.lock`` so the server can serve while a test edits.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alliance.config import AllianceConfig

WINDOW_START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 15, tzinfo=UTC)
LATEST_CHANGE = datetime(2026, 11, 20, tzinfo=UTC)  # no refund, cancellation or update is later
WORLD_AS_OF = date(2026, 11, 15)  # the world's own "today": its data ends at midnight (the demo's alerts pin to it)
NETWORK_TOKEN = "ACsandbox:sandbox-network-token"
ORDERS_PER_STOREFRONT = 120
CUSTOMERS = 150
SCENARIO_CUSTOMERS = 40  # shopper000..039 are reserved for the hand-made scenarios
LOOKBACK = timedelta(days=30)
CENT = Decimal("0.01")

PRODUCTS = [
    ("Trail Jacket", Decimal("129.00")), ("Wool Socks", Decimal("14.50")), ("Canvas Tote", Decimal("24.00")),
    ("Desk Lamp", Decimal("79.90")), ("Linen Throw", Decimal("59.00")), ("Ceramic Mug", Decimal("12.75")),
    ("Cold Brew Kit", Decimal("45.00")), ("Espresso Beans 1kg", Decimal("32.40")), ("Rain Boots", Decimal("88.00")),
    ("Scented Candle", Decimal("19.99")),
]
PROMO_CODES = ["WELCOME5", "Summer-Sale", "FREESHIP"]
FIRST_NAMES = ["Ada", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
LAST_NAMES = ["Stone", "Rivera", "Okafor", "Lind", "Marsh", "Quinn", "Sato", "Weber", "Yilmaz", "Novak"]
# Personal data a real storefront serves with every order (fake, derived from ids without touching the random
# stream, so adding it changed no other value): names, addresses, phones, IPs, user agents, tokens, notes,
# order-status URLs and keys, payment details. alliance must drop all of it at ingestion (PRODUCT.md §4).
STREETS = ["Juniper Lane", "Harbor Road", "Quarry Street", "Millbrook Row", "Orchard Way", "Kestrel Avenue"]
CITIES = [("Portland", "Oregon", "OR", "97205"), ("Austin", "Texas", "TX", "78701"),
          ("Burlington", "Vermont", "VT", "05401"), ("Madison", "Wisconsin", "WI", "53703")]
USER_AGENTS = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
               "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
               "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"]


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def person(customer_index: int | None, order_id: int) -> dict:
    """A shopper's fake identity: a customer's is the same on every order, a guest's is the order's own."""
    n = customer_index if customer_index is not None else 1000 + order_id % 997
    first, last = FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[n % len(LAST_NAMES)]
    city, province, code, zip_code = CITIES[n % len(CITIES)]
    phone = f"+1 555-{100 + n % 900:03d}-{1000 + (n * 7919) % 9000:04d}"
    address = {"first_name": first, "last_name": last, "name": f"{first} {last}", "company": None,
               "address1": f"{100 + n} {STREETS[n % len(STREETS)]}", "address2": f"Apt {n % 40 + 1}",
               "city": city, "province": province, "province_code": code, "zip": zip_code,
               "country": "United States", "country_code": "US", "phone": phone,
               "latitude": round(40 + n % 9 / 10, 4), "longitude": round(-100 - n % 11 / 10, 4)}
    return {"first": first, "last": last, "phone": phone, "address": address,
            "ip": f"198.51.{100 + n % 50}.{n % 250 + 1}", "user_agent": f"{USER_AGENTS[n % len(USER_AGENTS)]} s/{n}"}


def order_pii(partner_id: str, order_id: int, customer_index: int | None) -> dict:
    """The personal fields of a Shopify order (REST Admin API names)."""
    who = person(customer_index, order_id)
    token = _digest("token", partner_id, order_id)[:32]
    return {
        "phone": who["phone"],
        "browser_ip": who["ip"],
        "client_details": {"browser_ip": who["ip"], "user_agent": who["user_agent"], "accept_language": "en-US",
                           "browser_width": 1280, "browser_height": 720,
                           "session_hash": _digest("session", partner_id, order_id)[:32]},
        "billing_address": dict(who["address"]),
        "shipping_address": dict(who["address"]),
        "token": token,
        "cart_token": _digest("cart", partner_id, order_id)[:32],
        "checkout_token": _digest("checkout", partner_id, order_id)[:32],
        "order_status_url": f"https://{partner_id}.example.test/6{order_id % 10**8:08d}/orders/{token}/authenticate"
                            f"?key={_digest('status', partner_id, order_id)[:32]}",
        "note_attributes": [{"name": "gift_message",
                             "value": f"For {who['first']} {who['last']}, call {who['phone']}"}],
        "payment_details": {"credit_card_bin": "424242", "avs_result_code": "Y", "cvv_result_code": "M",
                            "credit_card_number": f"•••• •••• •••• {4000 + order_id % 1000}",
                            "credit_card_company": "Visa", "credit_card_name": f"{who['first']} {who['last']}"},
        "customer_locale": "en-US",
    }


def shopify_token(partner_id: str) -> str:
    """The documented sandbox token of a shopify storefront (config/sandbox.env)."""
    return f"sandbox-{partner_id}-token"


# --- local time zones of the storefronts (fixed rules for 2026, so no tzdata dependency) -------------------

def _new_york(utc: datetime) -> timedelta:
    return timedelta(hours=-4) if utc < datetime(2026, 11, 1, 6, tzinfo=UTC) else timedelta(hours=-5)


def _berlin(utc: datetime) -> timedelta:
    return timedelta(hours=2) if utc < datetime(2026, 10, 25, 1, tzinfo=UTC) else timedelta(hours=1)


def _tokyo(utc: datetime) -> timedelta:
    return timedelta(hours=9)


ZONES = [_new_york, _berlin, _tokyo]


def local_iso(utc: datetime, zone_index: int) -> str:
    """Shopify style: the shop's local time with its offset, e.g. 2026-10-01T08:00:00-04:00."""
    offset = ZONES[zone_index % len(ZONES)](utc)
    return utc.astimezone(timezone(offset)).isoformat(timespec="seconds")


def utc_z(utc: datetime) -> str:
    return utc.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    """ISO-8601 with offset or Z -> aware UTC datetime."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(UTC)


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


@dataclass
class World:
    """The generated alliance; see the module docstring for the contract."""

    seed: int
    partners: dict[str, dict]
    orders: dict[str, list[dict]]
    clicks: dict[str, list[dict]]
    tokens: dict[str, str]
    scenarios: dict[str, list[dict]]
    zones: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # woocommerce: partner -> order -> list
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def to_json(self) -> str:
        with self.lock:
            body = {
                "seed": self.seed, "partners": self.partners, "orders": self.orders,
                "clicks": self.clicks, "scenarios": self.scenarios,
            }
            return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def find_order(self, partner_id: str, order_id: int | str) -> dict:
        for order in self.orders[partner_id]:
            if str(order.get("id")) == str(order_id):
                return order
        raise KeyError(f"{partner_id}: no order {order_id}")

    def update_order(self, partner_id: str, order_id: int | str, **changes: Any) -> dict:
        """Edit an order like a storefront does: fields change and updated_at moves past everything else."""
        with self.lock:
            order = self.find_order(partner_id, order_id)
            latest = max((modified_at(o) for o in self.orders[partner_id]), default=WINDOW_START)
            bumped = max(latest + timedelta(seconds=1), datetime.now(UTC).replace(microsecond=0))
            order.update(copy.deepcopy(changes))
            if "date_modified_gmt" in order:  # woocommerce: GMT without a zone suffix
                order["date_modified"] = order["date_modified_gmt"] = bumped.strftime("%Y-%m-%dT%H:%M:%S")
            else:
                order["updated_at"] = local_iso(bumped, self.zones.get(partner_id, 0))
            return copy.deepcopy(order)

    def touch_order(self, partner_id: str, order_id: int | str, at: datetime, **changes: Any) -> dict:
        """Edit an order and set its modification time to `at` exactly (a late-arriving update, say)."""
        with self.lock:
            order = self.find_order(partner_id, order_id)
            order.update(copy.deepcopy(changes))
            if "date_modified_gmt" in order:
                order["date_modified"] = order["date_modified_gmt"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            else:
                order["updated_at"] = local_iso(at, self.zones.get(partner_id, 0))
            return copy.deepcopy(order)

    def redate_order(self, partner_id: str, order_id: int | str, at: datetime, **changes: Any) -> dict:
        """Serve an order created and last modified at `at`: a storefront whose clock runs ahead (a future `at`)."""
        with self.lock:
            order = self.find_order(partner_id, order_id)
            order.update(copy.deepcopy(changes))
            if "date_modified_gmt" in order:
                stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
                for key in ("date_created", "date_created_gmt", "date_modified", "date_modified_gmt"):
                    order[key] = stamp
            else:
                for key in ("created_at", "processed_at", "updated_at"):
                    order[key] = local_iso(at, self.zones.get(partner_id, 0))
            return copy.deepcopy(order)

    def add_order(self, partner_id: str, order: dict) -> None:
        with self.lock:
            self.orders.setdefault(partner_id, []).append(copy.deepcopy(order))


def modified_at(order: dict) -> datetime:
    """When an order last changed: Shopify `updated_at` or WooCommerce `date_modified_gmt` (UTC, no zone)."""
    if "date_modified_gmt" in order:
        try:
            return datetime.fromisoformat(str(order["date_modified_gmt"])).replace(tzinfo=UTC)
        except ValueError:
            return WINDOW_START
    return _safe_ts(order.get("updated_at"))


def woocommerce_credentials(partner_id: str) -> str:
    """The documented sandbox `consumer_key:consumer_secret` of a woocommerce storefront."""
    return f"ck_sandbox_{partner_id}:cs_sandbox_{partner_id}"


def _gmt(text: str) -> str:
    return parse_ts(text).strftime("%Y-%m-%dT%H:%M:%S")


def to_woocommerce(order: dict) -> tuple[dict, list[dict]]:
    """A generated (Shopify-shaped) order as WooCommerce REST v3 serves it, plus its /refunds list.

    Same facts, WooCommerce's shape: GMT times without zone, the commissionable amount spread over
    `line_items[].total`, coupons, the referral in meta_data `_alliance_ref`, guests with customer_id 0
    and an empty billing e-mail, cancellation as status. WooCommerce has no test flag: test orders are
    served as `checkout-draft` (never a real sale).
    """
    subtotal = Decimal(order["subtotal_price"])
    gross = [Decimal(li["price"]) * li["quantity"] for li in order["line_items"]]
    totals, left = [], subtotal
    for i, g in enumerate(gross):
        share = left if i == len(gross) - 1 else (subtotal * g / sum(gross)).quantize(CENT, rounding=ROUND_HALF_UP)
        left -= share
        totals.append(share)
    ref = (parse_qs(urlsplit(order.get("landing_site") or "").query).get("ref") or [None])[0]
    if order.get("_woo_status"):  # a WooCommerce-only status (trash, failed) set by the scenario
        status = order["_woo_status"]
    elif order.get("test"):
        status = "checkout-draft"
    elif order.get("cancelled_at") or order.get("financial_status") == "voided":
        status = "cancelled"
    elif order.get("financial_status") == "refunded":
        status = "refunded"
    else:
        status = "completed"
    customer = order.get("customer") or {}
    refunds = []
    for r in order.get("refunds") or []:
        items = [{"id": li["id"], "name": li["line_item"]["title"], "quantity": -li["quantity"],
                  "subtotal": money(-Decimal(li["subtotal"])), "total": money(-Decimal(li["subtotal"])),
                  "total_tax": "0.00", "meta_data": [{"key": "_refunded_item_id", "value": str(li["line_item_id"])}]}
                 for li in r["refund_line_items"]]
        amount = sum((Decimal(t["amount"]) for t in r.get("transactions", [])), Decimal("0"))
        refunds.append({"id": r["id"], "date_created": _gmt(r["created_at"]), "date_created_gmt": _gmt(r["created_at"]),
                        "amount": money(amount), "reason": r.get("note") or "", "refunded_by": 1,
                        "refunded_payment": False, "meta_data": [], "line_items": items})
    meta = [{"id": order["id"] * 10 + 1, "key": "_order_stock_reduced", "value": "yes"}]
    if ref is not None:
        meta.append({"id": order["id"] * 10 + 2, "key": "_alliance_ref", "value": ref})
    email = order.get("email")
    woo = {
        "id": order["id"], "parent_id": 0, "number": str(order["order_number"]), "status": status,
        "currency": order["currency"], "created_via": "checkout",
        "date_created": _gmt(order["created_at"]), "date_created_gmt": _gmt(order["created_at"]),
        "date_modified": _gmt(order["updated_at"]), "date_modified_gmt": _gmt(order["updated_at"]),
        "discount_total": order["total_discounts"], "shipping_total":
            order["total_shipping_price_set"]["shop_money"]["amount"], "total": order["total_price"],
        "total_tax": order["total_tax"], "prices_include_tax": False,
        "customer_id": customer.get("id") or 0,
        "billing": {"first_name": customer.get("first_name", ""), "last_name": customer.get("last_name", ""),
                    "email": email or "", "country": "US", **_woo_address(order.get("billing_address")),
                    "phone": order.get("phone") or ""},
        "shipping": _woo_address(order.get("shipping_address")),
        "customer_ip_address": order.get("browser_ip") or "",
        "customer_user_agent": (order.get("client_details") or {}).get("user_agent") or "",
        "order_key": f"wc_order_{_digest('order_key', order['id'])[:13]}",
        "cart_hash": order.get("cart_token") or "",
        "customer_note": next((a["value"] for a in order.get("note_attributes") or []), ""),
        "payment_method": "stripe", "payment_method_title": "Credit Card (Stripe)",
        "transaction_id": f"ch_{_digest('charge', order['id'])[:24]}",
        "meta_data": meta,
        "line_items": [{"id": li["id"], "name": li["title"], "quantity": li["quantity"],
                        "subtotal": money(g), "total": money(t), "sku": li["sku"], "price": float(li["price"])}
                       for li, g, t in zip(order["line_items"], gross, totals, strict=True)],
        "coupon_lines": [{"id": order["id"] * 100 + i, "code": d["code"], "discount": d["amount"]}
                         for i, d in enumerate(order.get("discount_codes") or [])],
        "refunds": [{"id": r["id"], "refund": r["reason"], "total": money(-Decimal(r["amount"]))} for r in refunds],
    }
    return woo, refunds


def _woo_address(address: dict | None) -> dict:
    """A Shopify address in WooCommerce's billing/shipping shape."""
    a = address or {}
    return {"first_name": a.get("first_name") or "", "last_name": a.get("last_name") or "", "company": "",
            "address_1": a.get("address1") or "", "address_2": a.get("address2") or "",
            "city": a.get("city") or "", "state": a.get("province_code") or "", "postcode": a.get("zip") or "",
            "country": a.get("country_code") or ""}


def _safe_ts(text: object) -> datetime:
    try:
        return parse_ts(str(text))
    except (ValueError, TypeError):
        return WINDOW_START


# --- generation ------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, config: AllianceConfig, seed: int) -> None:
        self.rng = random.Random(seed)
        self.config = config
        self.storefronts = [p for p in config.partners if p.platform in ("shopify", "shopify_graphql", "woocommerce")]
        self.partner_ids = [p.id for p in config.partners]
        self.codes = {p.id: list(p.referral_codes) for p in config.partners}
        self.networks = [n.id for n in config.referral_networks]
        self.specs: dict[str, list[dict]] = {p.id: [] for p in self.storefronts}
        self.clicks: list[dict] = []
        self.scenarios: dict[str, list[dict]] = {}
        self.next_scenario_customer = 0

    # helpers -------------------------------------------------------------------------------------------
    def email(self, index: int, *, vary: bool = True) -> str:
        plain = f"shopper{index:03d}@example.test"
        if not vary:
            return plain
        roll = self.rng.random()
        if roll < 0.65:
            return plain
        if roll < 0.75:
            return f"Shopper{index:03d}@Example.TEST"
        if roll < 0.83:
            return f"  {plain} "
        if roll < 0.90:
            return f"\t{plain.upper()}"
        return f"{plain}\u00a0"

    def others(self, destination: str) -> list[str]:
        return [p for p in self.partner_ids if p != destination and self.codes.get(p)] or [
            p for p in self.partner_ids if p != destination
        ]

    def code_of(self, partner_id: str, style: str | None = None) -> str:
        code = self.rng.choice(self.codes[partner_id])
        style = style or self.rng.choice(["upper", "lower", "title"])
        return {"upper": code.upper(), "lower": code.lower(), "title": code.capitalize()}[style]

    def click(self, referrer: str, destination: str, at: datetime, customer: int | None, *,
              code: bool | None = None, click_id: str | None = None) -> dict:
        with_code = self.rng.random() < 0.4 if code is None else code
        record = {
            "Id": click_id,
            "ReferrerPartnerId": referrer,
            "DestinationPartnerId": destination,
            "EventDate": utc_z(at),
            "ReferralCode": self.code_of(referrer, "upper") if with_code and self.codes.get(referrer) else None,
            "CustomerEmail": self.email(customer) if customer is not None else None,
        }
        who = person(customer, int(_digest(referrer, destination, at.isoformat())[:6], 16))
        record.update({"IpAddress": who["ip"], "UserAgent": who["user_agent"],
                       "ReferringUrl": f"https://{referrer}.example.test/picks?visitor={who['first']}+{who['last']}"})
        self.clicks.append(record)
        return record

    def spec(self, destination: str, created: datetime, customer: int | None, **kw: Any) -> dict:
        spec = {"destination": destination, "created": created, "customer": customer, "discounts": [],
                "ref": None, "cancelled_at": None, "voided": False, "test": False, "refunds": [],
                "late_update": None, "scenario": None}
        spec.update(kw)
        self.specs[destination].append(spec)
        return spec

    def scenario_customer(self) -> int:
        index = self.next_scenario_customer % SCENARIO_CUSTOMERS
        self.next_scenario_customer += 1
        return index

    def tag(self, name: str, spec_or_click: dict) -> None:
        spec_or_click.setdefault("_tags", []).append(name)

    # scenarios --------------------------------------------------------------------------------------
    def hand_made(self) -> None:
        """The cases of PRODUCT.md §6 that random data might miss, on each storefront in turn."""
        if not self.storefronts:
            return
        fronts = [p.id for p in self.storefronts]

        def front(i: int) -> str:
            return fronts[i % len(fronts)]

        def at(day: str, hh: int = 14, mm: int = 0) -> datetime:
            return datetime.fromisoformat(day).replace(hour=hh, minute=mm, tzinfo=UTC)

        d = front(0)
        p1, p2 = (self.others(d) * 2)[:2]
        c = self.scenario_customer()
        self.tag("code_discount", self.spec(d, at("2026-10-02"), c, discounts=[self.code_of(p1, "lower")]))
        c = self.scenario_customer()
        self.tag("code_landing_ref", self.spec(d, at("2026-10-03"), c, ref=self.code_of(p2, "title")))
        c = self.scenario_customer()
        self.click(p2, d, at("2026-10-04", 10), c, code=False)
        self.tag("code_beats_click", self.spec(d, at("2026-10-04", 16), c, discounts=[self.code_of(p1)]))
        c = self.scenario_customer()
        self.tag("discount_before_ref", self.spec(
            d, at("2026-10-05"), c, discounts=["FREESHIP", self.code_of(p1, "lower")], ref=self.code_of(p2)))
        c = self.scenario_customer()
        self.tag("own_code_ignored", self.spec(d, at("2026-10-06"), c, discounts=[self.code_of(d, "lower")]))
        c = self.scenario_customer()
        self.click(p1, d, at("2026-10-01", 9), c, code=True)
        self.tag("own_code_then_click", self.spec(d, at("2026-10-07"), c, discounts=[self.code_of(d)]))
        c = self.scenario_customer()
        self.tag("unknown_code_then_ref", self.spec(
            d, at("2026-10-08"), c, discounts=["WELCOME5"], ref=self.code_of(p2, "lower")))
        c = self.scenario_customer()
        self.click(p1, d, at("2026-10-06", 11), c)
        self.click(p2, d, at("2026-10-09", 8), c)
        self.tag("click_only", self.spec(d, at("2026-10-09", 20), c))
        c = self.scenario_customer()
        t = at("2026-10-20", 12)
        self.click(p2, d, t - LOOKBACK, c)
        self.tag("click_window_edge_inclusive", self.spec(d, t, c))
        c = self.scenario_customer()
        t = at("2026-10-21", 12)
        self.click(p1, d, t - LOOKBACK - timedelta(seconds=1), c)
        self.tag("click_outside_window", self.spec(d, t, c))
        c = self.scenario_customer()
        t = at("2026-10-22", 12)
        self.click(p1, d, t - timedelta(days=3), c)
        self.click(p2, d, t + timedelta(minutes=5), c)
        self.tag("click_after_order", self.spec(d, t, c))
        c = self.scenario_customer()
        t = at("2026-10-23", 12)
        tie = t - timedelta(days=2)
        self.tag("click_tie", self.click(p1, d, tie, c, click_id="999"))
        self.tag("click_tie", self.click(p2, d, tie, c, click_id="1000"))
        self.tag("click_tie", self.spec(d, t, c))
        c = self.scenario_customer()
        t = at("2026-10-24", 12)
        self.click(p1, d, t - timedelta(days=4), c)
        self.click(d, d, t - timedelta(days=1), c)  # self-referral: never credited
        self.tag("self_referral_click", self.spec(d, t, c))

        # repeat customer: credit resets after each purchase
        d2 = front(1)
        q1, q2 = (self.others(d2) * 2)[:2]
        c = self.scenario_customer()
        self.click(q1, d2, at("2026-09-20"), c)
        self.tag("repeat_customer_first", self.spec(d2, at("2026-09-25"), c))
        self.tag("repeat_customer_second", self.spec(d2, at("2026-10-05"), c))
        self.click(q2, d2, at("2026-10-08"), c)
        self.tag("repeat_customer_third", self.spec(d2, at("2026-10-10"), c))
        c = self.scenario_customer()
        self.click(q1, d2, at("2026-10-10"), c)
        self.tag("cancelled", self.spec(d2, at("2026-10-12"), c, cancelled_at=at("2026-10-13"), discounts=[
            self.code_of(q2)]))
        self.tag("cancelled_first_then_click", self.spec(d2, at("2026-10-15"), c))
        c = self.scenario_customer()
        self.tag("cancelled_after_lock", self.spec(
            d2, at("2026-09-10"), c, discounts=[self.code_of(q1)], cancelled_at=at("2026-11-05")))
        c = self.scenario_customer()
        self.tag("voided", self.spec(d2, at("2026-10-16"), c, discounts=[self.code_of(q2)], voided=True))

        d3 = front(2)
        r1 = self.others(d3)[0]
        c = self.scenario_customer()
        self.tag("test_order", self.spec(d3, at("2026-10-11"), c, discounts=[self.code_of(r1)], test=True))
        c = self.scenario_customer()
        self.tag("refund_before_lock", self.spec(
            d3, at("2026-10-03"), c, discounts=[self.code_of(r1)], refunds=[("line", at("2026-10-20"))]))
        c = self.scenario_customer()
        self.tag("refund_after_lock", self.spec(
            d3, at("2026-09-12"), c, discounts=[self.code_of(r1)],
            refunds=[("line", at("2026-09-20")), ("line", at("2026-11-03"))]))
        c = self.scenario_customer()
        self.tag("refund_shipping_only", self.spec(
            d3, at("2026-10-08"), c, discounts=[self.code_of(r1)], refunds=[("shipping", at("2026-10-12"))]))
        c = self.scenario_customer()
        self.tag("updated_after_creation", self.spec(
            d3, at("2026-10-14"), c, discounts=[self.code_of(r1)], late_update=at("2026-11-18", 9, 30)))
        self.tag("guest", self.spec(d3, at("2026-10-15"), None, ref=self.code_of(r1)))
        c = self.scenario_customer()
        # 23:30 in New York / 01:30 next day elsewhere: the UTC date differs from the local date
        self.click(p1, d, datetime(2026, 10, 27, 1, 0, tzinfo=UTC), c)
        self.tag("utc_date_differs", self.spec(d, datetime(2026, 10, 31, 3, 30, tzinfo=UTC), c))
        self.woocommerce_cases(at)

    def woocommerce_cases(self, at: Any) -> None:
        """WooCommerce-only cases (PRODUCT.md §3), on the first woocommerce storefront only (so an all-Shopify
        world stays byte-identical): `trash` and `failed` cancel the order at the version's date_modified_gmt, a
        trash after the lock date leaves the commission standing, and refunds past the whole subtotal (served by
        the `/orders/{id}/refunds` endpoint) leave a percent commission at zero and a negative net amount."""
        woo = [p.id for p in self.storefronts if p.platform == "woocommerce"]
        if not woo:
            return
        w = woo[0]
        s1, s2 = (self.others(w) * 2)[:2]
        c = self.scenario_customer()
        self.click(s2, w, at("2026-10-03"), c)
        self.tag("woo_trash", self.spec(w, at("2026-10-06"), c, discounts=[self.code_of(s1)], woo_status="trash",
                                        cancelled_at=at("2026-10-09")))
        self.tag("woo_after_trash_click", self.spec(w, at("2026-10-12"), c))  # the trashed order reset nothing
        c = self.scenario_customer()
        self.tag("woo_failed", self.spec(w, at("2026-10-13"), c, ref=self.code_of(s1), woo_status="failed",
                                         cancelled_at=at("2026-10-13", 15)))
        c = self.scenario_customer()
        self.tag("woo_trash_after_lock", self.spec(w, at("2026-09-08"), c, discounts=[self.code_of(s2)],
                                                   woo_status="trash", cancelled_at=at("2026-11-06")))
        c = self.scenario_customer()
        self.tag("refund_past_zero", self.spec(w, at("2026-10-14"), c, ref=self.code_of(s1),
                                               refunds=[("line", at("2026-10-16")), ("over", at("2026-10-18"))]))
        # Before the window: the only order of its (referrer, destination, month), refunded past zero before the
        # lock: a partner_balances row of commission 0.00 and a KPI day on which the destination only owes 0.00.
        c = self.scenario_customer()
        self.tag("only_order_of_month_refunded", self.spec(w, at("2026-08-20"), c, discounts=[self.code_of(s1)],
                                                           refunds=[("over", at("2026-08-25"))]))

    def alert_cases(self) -> None:
        """What the demo's alert rules are there to catch, on the world's last day (WORLD_AS_OF; issue 23): a
        referrer whose refund rate jumps - the last four orders of a storefront are moved to 14 November, carry the
        referrer's code and three of them are returned line by line within days.

        Only those four specs change (their time keeps them last, and rendering draws the same random numbers for
        any discount or refund), so every other order, id and click of the world is what it was before."""
        with_codes = [p for p in self.config.partners if p.referral_codes]
        fronts = [p.id for p in self.storefronts]
        if not with_codes or not fronts:
            return
        referrer = next((p.id for p in reversed(with_codes) if p.id not in fronts), with_codes[-1].id)
        code = self.codes[referrer][0].upper()
        last_day = WINDOW_END - timedelta(days=1)
        for destination in (f for f in fronts if f != referrer):
            tail = sorted(self.specs[destination], key=lambda sp: sp["created"])[-4:]
            if len(tail) < 4 or any(sp.get("_tags") or sp["cancelled_at"] or sp["test"] or sp["voided"]
                                    for sp in tail):
                continue
            earlier = last_day
            for i, spec in enumerate(tail):
                earlier = max(spec["created"], last_day + timedelta(hours=8 + 2 * i), earlier + timedelta(minutes=1))
                spec.update(created=earlier, discounts=[code], ref=None, late_update=None,
                            refunds=[("line", earlier + timedelta(days=2, hours=h)) for h in range(3)] if i < 3 else [])
                self.tag("refund_rate_jump", spec)
            return

    # bulk -------------------------------------------------------------------------------------------
    def bulk(self) -> None:
        rng = self.rng
        span = (WINDOW_END - WINDOW_START).total_seconds()
        for front in self.storefronts:
            d = front.id
            others = self.others(d)
            missing = max(0, ORDERS_PER_STOREFRONT - len(self.specs[d]))
            for _ in range(missing):
                t = WINDOW_START + timedelta(seconds=int(rng.random() * span))
                customer = None if rng.random() < 0.1 else rng.randrange(SCENARIO_CUSTOMERS, CUSTOMERS)
                kw: dict[str, Any] = {}
                roll = rng.random()
                if others and roll < 0.22:
                    if rng.random() < 0.7:
                        kw["discounts"] = [self.code_of(rng.choice(others))]
                    else:
                        kw["ref"] = self.code_of(rng.choice(others))
                elif roll < 0.27:
                    kw["discounts"] = [self.code_of(d)]
                    if customer is not None and others and rng.random() < 0.5:
                        self.click(rng.choice(others), d, max(WINDOW_START, t - timedelta(hours=rng.randint(1, 600))),
                                   customer)
                elif others and roll < 0.57 and customer is not None:
                    for _ in range(rng.randint(1, 3)):
                        back = timedelta(seconds=rng.randint(60, int(LOOKBACK.total_seconds())))
                        self.click(rng.choice(others), d, max(WINDOW_START, t - back), customer)
                if others and customer is not None and rng.random() < 0.2 and t - timedelta(days=45) > WINDOW_START:
                    self.click(rng.choice(others), d, t - timedelta(days=rng.randint(31, 45)), customer)
                if rng.random() < 0.12:
                    kw.setdefault("discounts", []).insert(0, rng.choice(PROMO_CODES))
                if rng.random() < 0.03:
                    kw["cancelled_at"] = t + timedelta(days=rng.randint(0, 5), hours=rng.randint(1, 20))
                if rng.random() < 0.02:
                    kw["test"] = True
                if rng.random() < 0.12:
                    kw["refunds"] = [("line" if rng.random() < 0.85 else "shipping",
                                      t + timedelta(days=rng.randint(1, 60), hours=rng.randint(0, 23)))]
                if rng.random() < 0.15:
                    kw["late_update"] = t + timedelta(days=rng.randint(1, 10), minutes=rng.randint(0, 600))
                self.spec(d, t, customer, **kw)
        # noise: anonymous browsing and clicks that never convert, about 5 clicks per order overall
        orders = sum(len(v) for v in self.specs.values())
        target = orders * 5
        fronts = [p.id for p in self.storefronts]
        while fronts and len(self.clicks) < target:
            destination = rng.choice(fronts)
            referrer = destination if rng.random() < 0.03 else rng.choice(self.others(destination) or [destination])
            customer = None if rng.random() < 0.45 else rng.randrange(SCENARIO_CUSTOMERS, CUSTOMERS)
            t = WINDOW_START + timedelta(seconds=int(rng.random() * span))
            self.click(referrer, destination, t, customer)

    # rendering ---------------------------------------------------------------------------------------
    def render_orders(self) -> tuple[dict[str, list[dict]], dict[str, int]]:
        rng = self.rng
        out: dict[str, list[dict]] = {}
        zones: dict[str, int] = {}
        for s, front in enumerate(self.storefronts):
            zones[front.id] = s
            out[front.id] = []
            specs = sorted(self.specs[front.id], key=lambda sp: sp["created"])
            order_id = 5_100_000_000 + s * 10_000_000 + rng.randint(1000, 9000)
            counts: dict[int, int] = {}
            for n, spec in enumerate(specs):
                order_id += rng.randint(1, 40)
                if spec["customer"] is not None:
                    counts[spec["customer"]] = counts.get(spec["customer"], 0) + 1
                order = self.render_order(front.id, front.currency, s, order_id, 1001 + n, spec,
                                          counts.get(spec["customer"], 0))
                for name in spec.get("_tags", []):
                    self.scenarios.setdefault(name, []).append({"partner_id": front.id, "order_id": order_id})
                out[front.id].append(order)
        return out, zones

    def render_order(self, partner_id: str, currency: str, zone: int, order_id: int, number: int, spec: dict,
                     orders_count: int) -> dict:
        rng = self.rng
        created: datetime = spec["created"]
        lines = []
        line_total = Decimal("0")
        for i in range(rng.randint(1, 3)):
            title, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            qty = rng.randint(1, 2)
            lines.append({
                "id": order_id * 10 + i, "title": title, "name": title, "quantity": qty, "price": money(price),
                "sku": title.upper().replace(" ", "-")[:12], "total_discount": "0.00", "taxable": True,
                "requires_shipping": True, "fulfillable_quantity": qty, "gift_card": False,
            })
            line_total += price * qty
        discount_codes = []
        discount_total = Decimal("0")
        for code in spec["discounts"]:
            if code.upper() in {c.upper() for c in PROMO_CODES}:
                amount, kind = Decimal("5.00"), "fixed_amount"
            else:
                amount, kind = (line_total * Decimal("0.10")).quantize(CENT, rounding=ROUND_HALF_UP), "percentage"
            amount = min(amount, line_total - discount_total)
            discount_total += amount
            discount_codes.append({"code": code, "amount": money(amount), "type": kind})
        subtotal = line_total - discount_total
        shipping = Decimal("0.00") if subtotal >= 75 else Decimal("6.50")
        tax = (subtotal * Decimal("0.08")).quantize(CENT, rounding=ROUND_HALF_UP)
        landing = rng.choice(["/", "/collections/all", "/products/trail-jacket", "/pages/about"])
        query = []
        if rng.random() < 0.3:
            query.append("utm_source=newsletter")
        if spec["ref"]:
            query.append(f"ref={spec['ref']}")
        if query:
            landing += "?" + "&".join(query)
        if rng.random() < 0.5:
            landing = f"https://{partner_id}.example.test{landing}"
        refunds = []
        changes = [created + timedelta(minutes=rng.randint(0, 90))]
        refunded = Decimal("0")
        for r, (kind, when) in enumerate(spec["refunds"]):
            when = min(when, LATEST_CHANGE - timedelta(hours=1))
            changes.append(when)
            refund_id = order_id * 100 + r
            if kind == "shipping":
                refunds.append({
                    "id": refund_id, "order_id": order_id, "created_at": local_iso(when, zone),
                    "processed_at": local_iso(when, zone), "note": "shipping refunded", "restock": False,
                    "refund_line_items": [],
                    "order_adjustments": [{"id": refund_id, "kind": "shipping_refund", "amount": money(-shipping),
                                           "tax_amount": "0.00", "reason": "Shipping refund"}],
                    "transactions": [{"id": refund_id, "kind": "refund", "status": "success",
                                      "amount": money(shipping), "currency": currency}],
                })
                continue
            line = lines[r % len(lines)]
            sub = min(Decimal(line["price"]), subtotal - refunded)
            if kind == "over":  # a goodwill refund past what is left: the refunds exceed the subtotal
                sub = subtotal - refunded + Decimal("5.00")
            refunded += sub
            refunds.append({
                "id": refund_id, "order_id": order_id, "created_at": local_iso(when, zone),
                "processed_at": local_iso(when, zone), "note": "returned", "restock": True,
                "refund_line_items": [{
                    "id": refund_id * 10, "quantity": 1, "line_item_id": line["id"], "restock_type": "return",
                    "subtotal": money(sub), "total_tax": money((sub * Decimal("0.08")).quantize(CENT)),
                    "line_item": {"id": line["id"], "title": line["title"], "price": line["price"]},
                }],
                "order_adjustments": [],
                "transactions": [{"id": refund_id, "kind": "refund", "status": "success", "amount": money(sub),
                                  "currency": currency}],
            })
        cancelled_at = None
        if spec["cancelled_at"] is not None:
            cancelled = min(spec["cancelled_at"], LATEST_CHANGE - timedelta(hours=1))
            changes.append(cancelled)
            cancelled_at = local_iso(cancelled, zone)
        if spec["late_update"] is not None:
            changes.append(min(spec["late_update"], LATEST_CHANGE))
        updated = min(max(changes) + timedelta(minutes=rng.randint(0, 30)), LATEST_CHANGE)
        if cancelled_at or spec["voided"]:
            status = "voided" if spec["voided"] else "refunded"
        elif refunds and refunded >= subtotal and refunded > 0:
            status = "refunded"
        elif refunds:
            status = "partially_refunded"
        else:
            status = "paid"
        customer_index = spec["customer"]
        email = self.email(customer_index) if customer_index is not None else None
        customer = None
        if customer_index is not None:
            first = FIRST_NAMES[customer_index % len(FIRST_NAMES)]
            last = LAST_NAMES[customer_index % len(LAST_NAMES)]
            customer_id = 6_000_000_000 + zone * 100_000 + customer_index
            customer = {
                "id": customer_id,
                "email": self.email(customer_index),
                "first_name": first, "last_name": last,
                "created_at": local_iso(WINDOW_START - timedelta(days=customer_index + 1), zone),
                "updated_at": local_iso(created, zone),
                "orders_count": orders_count, "state": "enabled", "verified_email": True, "tags": "",
                "currency": currency, "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
            }
            who = person(customer_index, order_id)
            customer.update({"phone": who["phone"], "note": f"VIP: {first} {last}",
                             "default_address": dict(who["address"], id=customer_id, customer_id=customer_id)})
        extra = {"_woo_status": spec["woo_status"]} if spec.get("woo_status") else {}
        return {
            **extra,
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{number}",
            "number": number - 1000,
            "order_number": number,
            "email": email,
            "contact_email": email,
            "created_at": local_iso(created, zone),
            "updated_at": local_iso(updated, zone),
            "processed_at": local_iso(created, zone),
            "closed_at": None,
            "cancelled_at": cancelled_at,
            "cancel_reason": "customer" if cancelled_at else None,
            "currency": currency,
            "presentment_currency": currency,
            "financial_status": status,
            "fulfillment_status": None,
            "test": bool(spec["test"]),
            "confirmed": True,
            "taxes_included": False,
            "total_line_items_price": money(line_total),
            "total_discounts": money(discount_total),
            "subtotal_price": money(subtotal),
            "total_tax": money(tax),
            "total_shipping_price_set": {"shop_money": {"amount": money(shipping), "currency_code": currency}},
            "total_price": money(subtotal + tax + shipping),
            "discount_codes": discount_codes,
            "landing_site": landing,
            "landing_site_ref": None,
            "referring_site": rng.choice(["", "https://www.google.com/", "https://brightpath.example.test/review"]),
            "source_name": "web",
            "tags": "",
            "line_items": lines,
            "shipping_lines": [{"id": order_id, "title": "Standard", "price": money(shipping), "code": "STD"}],
            "refunds": refunds,
            "customer": customer,
            **order_pii(partner_id, order_id, customer_index),
        }

    def render_clicks(self) -> dict[str, list[dict]]:
        rng = self.rng
        ordered = sorted(self.clicks, key=lambda c: c["EventDate"])
        next_id = 7
        for click in ordered:
            if click["Id"] is None:
                next_id += rng.randint(1, 9)
                while next_id in (999, 1000):
                    next_id += 1
                click["Id"] = str(next_id)
        out: dict[str, list[dict]] = {n: [] for n in self.networks}
        if not self.networks:
            return out
        for click in ordered:
            tags = click.pop("_tags", [])
            network = self.networks[0] if tags or len(self.networks) == 1 else rng.choice(self.networks)
            for name in tags:
                self.scenarios.setdefault(name, []).append({"network_id": network, "click_id": click["Id"]})
            out[network].append(click)
        return out


def build_world(config: AllianceConfig, seed: int = 42) -> World:
    """Generate the alliance world for `config`; the same config and seed give byte-identical JSON."""
    builder = _Builder(config, seed)
    builder.hand_made()
    builder.bulk()
    builder.alert_cases()
    orders, zones = builder.render_orders()
    clicks = builder.render_clicks()
    refunds: dict[str, dict[str, list[dict]]] = {}
    for front in builder.storefronts:
        if front.platform == "woocommerce":
            converted = [to_woocommerce(o) for o in orders[front.id]]
            orders[front.id] = [w for w, _ in converted]
            refunds[front.id] = {str(w["id"]): r for w, r in converted}
    tokens = {p.id: shopify_token(p.id) if p.platform.startswith("shopify") else woocommerce_credentials(p.id)
              for p in builder.storefronts}
    tokens.update({n: NETWORK_TOKEN for n in builder.networks})
    partners = {p.id: {"platform": p.platform, "currency": p.currency, "referral_codes": list(p.referral_codes)}
                for p in config.partners}
    scenarios = {name: builder.scenarios[name] for name in sorted(builder.scenarios)}
    return World(seed=seed, partners=partners, orders=orders, clicks=clicks, tokens=tokens,
                 scenarios=scenarios, zones=zones, refunds=refunds)
