"""Shopify, in one file: Admin REST orders with `updated_at_min` (inclusive) increments and `Link: rel="next"`
page_info paging, the call-limit bucket kept from filling, what a valid order is, which of its fields may be
kept, and how Shopify sends webhooks. The access token is the whole secret.

Shopify's REST Admin API limits each app per store with a leaky bucket (40 calls, leaking 2 per second on
the standard plan) and reports it on every answer as `X-Shopify-Shop-Api-Call-Limit: used/size`
(https://shopify.dev/docs/api/admin-rest/usage/rate-limits). Waiting for the 429 wastes a call and a
`Retry-After`; we wait before a call instead, whenever used + 1 >= size, until the bucket has leaked
below that. The 429 + Retry-After retry (connectors/http.py) stays as the fallback.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

import requests

from connectors.clock import SYSTEM_CLOCK, Clock
from connectors.errors import SourceError, SourceRef, bare_url, foreign_origin_error, get_json
from connectors.http import same_origin
from connectors.minimise import IDS, KEEP, ORDER_DELETION, Spec
from connectors.paging import Page
from connectors.pii import customer_key
from connectors.platform import Platform, WebhookScheme
from connectors.records import (
    RecordError,
    ValidRecord,
    amount,
    currency,
    kind_of,
    optional_text,
    order_identity,
    stored_json,
    timestamp,
)
from connectors.records import version_dates as dates_of

API_VERSION = "2025-10"
MAX_LIMIT = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
LEAK_PER_SECOND = 2.0  # the standard plan's rate; larger plans leak faster, so this never overfills them
_CALL_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class CallLimit:
    """What Shopify last said about the bucket, and the wait before the next call that keeps it from filling."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, leak_per_second: float = LEAK_PER_SECOND) -> None:
        self.clock = clock
        self.leak_per_second = leak_per_second
        self._seen: tuple[int, int, float] | None = None  # (used, size, when)
        self._lock = threading.Lock()

    def observe(self, header: str | None) -> None:
        """Record `used/size` from a response; an absent or unreadable header keeps the last reading."""
        match = _CALL_LIMIT.match(header or "")
        if match and int(match.group(2)) > 0:
            with self._lock:
                self._seen = (int(match.group(1)), int(match.group(2)), self.clock.monotonic())

    def delay(self) -> float:
        """Seconds to wait now so that used + 1 < size when the call arrives (0 when there is room)."""
        with self._lock:
            if self._seen is None:
                return 0.0
            used, size, when = self._seen
        level = max(0.0, used - (self.clock.monotonic() - when) * self.leak_per_second)
        if level + 1 < size:
            return 0.0
        return max(0.0, (level - max(0, size - 2)) / self.leak_per_second)

    def wait(self) -> float:
        """Sleep (on the injected clock) as long as `delay()` says; returns the seconds waited."""
        seconds = self.delay()
        if seconds > 0:
            self.clock.sleep(seconds)
        return seconds


def orders_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/admin/api/{API_VERSION}/orders.json"


@dataclass
class LinkHeaderPaginator:
    """Shopify's cursor paging: the first request carries the filters, then `Link: rel="next"` (page_info) is
    followed exactly as given, unless it leaves base_url's scheme, host or port (the access token would follow
    it): that is refused.

    `order=updated_at asc` matters: landing moves the cursor after each page, which is only safe when pages
    arrive in update order. With page_info, Shopify takes every other filter from the cursor.
    """

    page_size: int = MAX_LIMIT
    call_limit: CallLimit | None = None

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        call_limit = self.call_limit
        if call_limit is None:
            policy = getattr(session, "policy", None)
            call_limit = CallLimit(policy.clock if policy is not None else SYSTEM_CLOCK)
        params: dict[str, str | int] = {"status": "any", "limit": min(self.page_size, MAX_LIMIT),
                                        "order": "updated_at asc"}
        if since is not None:
            params["updated_at_min"] = since.isoformat()
        headers = {"X-Shopify-Access-Token": credentials}
        url: str | None = orders_url(base_url)
        number = 0
        first = True
        while url:
            call_limit.wait()
            body, response = get_json(session, url, ref, params=params if first else None, headers=headers)
            call_limit.observe(response.headers.get(CALL_LIMIT_HEADER))
            first = False
            number += 1
            if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
                raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without an `orders` list: "
                                  "check base_url in the config")
            yield Page(number=number, url=bare_url(response.url), records=body["orders"])
            url = response.links.get("next", {}).get("url")
            url = urljoin(response.url, url) if url else None
            if url and not same_origin(url, base_url):
                raise foreign_origin_error(ref, 'the next-page link (`Link: rel="next"`)', url, base_url)


# --- what a valid order is ------------------------------------------------------------------------------

def first_email(order: dict) -> str | None:
    """The order's customer e-mail: `email`, else `contact_email`, else `customer.email`."""
    customer = order.get("customer") if isinstance(order.get("customer"), dict) else {}
    for value in (order.get("email"), order.get("contact_email"), customer.get("email")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def validate_order(record: object, position: int, salt: str) -> ValidRecord:
    """Check every field the models read; the first problem becomes the quarantine reason."""
    order_id, where = order_identity(record, position)
    try:
        updated = timestamp(record.get("updated_at"), "updated_at")
        timestamp(record.get("created_at"), "created_at")
        timestamp(record.get("cancelled_at"), "cancelled_at", required=False)
        amount(record.get("subtotal_price"), "subtotal_price")
        currency(record.get("currency"))
        if "test" in record and not isinstance(record["test"], bool):
            raise RecordError(f"test is not true/false (found {kind_of(record['test'])})")
        for key in ("email", "contact_email", "landing_site", "financial_status"):
            optional_text(record, key)
        customer = record.get("customer")
        if customer is not None and not isinstance(customer, dict):
            raise RecordError(f"customer is not an object (found {kind_of(customer)})")
        codes = record.get("discount_codes") or []
        if not isinstance(codes, list):
            raise RecordError("discount_codes is not a list")
        for i, code in enumerate(codes):
            if not isinstance(code, dict) or not isinstance(code.get("code"), str):
                raise RecordError(f"discount_codes[{i}] has no text `code`")
        refunds = record.get("refunds") or []
        if not isinstance(refunds, list):
            raise RecordError("refunds is not a list")
        for i, refund in enumerate(refunds):
            if not isinstance(refund, dict):
                raise RecordError(f"refunds[{i}] is not an object")
            timestamp(refund.get("created_at"), f"refunds[{i}].created_at")
            items = refund.get("refund_line_items") or []
            if not isinstance(items, list):
                raise RecordError(f"refunds[{i}].refund_line_items is not a list")
            for j, item in enumerate(items):
                if not isinstance(item, dict):
                    raise RecordError(f"refunds[{i}].refund_line_items[{j}] is not an object")
                what = f"refunds[{i}].refund_line_items[{j}]"
                if item.get("subtotal") is not None:
                    amount(item["subtotal"], f"{what}.subtotal")
                else:  # older API versions: no subtotal, the refunded quantity of the line item's price
                    line = item.get("line_item") if isinstance(item.get("line_item"), dict) else {}
                    amount(item.get("quantity"), f"{what}.quantity (no subtotal)")
                    amount(line.get("price"), f"{what}.line_item.price (no subtotal)")
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", order_id) from None
    assert updated is not None
    return ValidRecord(order_id, updated, customer_key(first_email(record), salt), stored_json(ORDER, record, salt))


def version_dates(record: dict) -> tuple[tuple[str, datetime], ...]:
    """A valid version's dates that must not lie in the future: created, updated, each refund's."""
    return dates_of(record, "created_at", "updated_at", "refunds", "created_at")


def carries_cancelled_status(record: dict) -> bool:
    """`cancelled_at` set, or financial status `voided`."""
    return bool(record.get("cancelled_at")) or record.get("financial_status") == "voided"


# --- what may be kept (PRODUCT.md §4, connectors/minimise.py) -------------------------------------------

_MONEY_SET: Spec = {"shop_money": {"amount": KEEP, "currency_code": KEEP}}
_CUSTOMER: Spec = {"id": KEEP, "email": KEEP}

# Shopify REST Admin API `Order` (orders.json, orders/create and orders/updated webhook bodies).
ORDER: Spec = {
    "id": KEEP, "order_number": KEEP,
    "created_at": KEEP, "updated_at": KEEP, "processed_at": KEEP, "closed_at": KEEP,
    "cancelled_at": KEEP, "cancel_reason": KEEP,
    "currency": KEEP, "presentment_currency": KEEP,
    "subtotal_price": KEEP, "subtotal_price_set": _MONEY_SET, "current_subtotal_price": KEEP,
    "total_price": KEEP, "current_total_price": KEEP, "total_line_items_price": KEEP,
    "total_discounts": KEEP, "total_tax": KEEP, "total_shipping_price_set": _MONEY_SET,
    "financial_status": KEEP, "fulfillment_status": KEEP, "test": KEEP,
    "email": KEEP, "contact_email": KEEP,  # replaced by the customer_key before storing
    "landing_site": KEEP,  # its `ref` query parameter is a referral code; addresses in it become keys
    "discount_codes": {"code": KEEP, "amount": KEEP, "type": KEEP},
    "customer": _CUSTOMER,
    "line_items": {"id": KEEP, "product_id": KEEP, "variant_id": KEEP, "quantity": KEEP, "current_quantity": KEEP,
                   "price": KEEP, "total_discount": KEEP},
    "refunds": {
        "id": KEEP, "order_id": KEEP, "created_at": KEEP, "processed_at": KEEP,
        "refund_line_items": {
            "id": KEEP, "line_item_id": KEEP, "quantity": KEEP, "subtotal": KEEP, "subtotal_set": _MONEY_SET,
            "total_tax": KEEP,
            "line_item": {"id": KEEP, "product_id": KEEP, "variant_id": KEEP, "price": KEEP, "quantity": KEEP,
                          "total_discount": KEEP},
        },
        "order_adjustments": {"id": KEEP, "kind": KEEP, "amount": KEEP},
    },
}

# Shopify's compliance topics name the shop and the customer (id and e-mail, which becomes the key erasure looks
# for), never the phone they also carry.
CUSTOMERS_REDACT: Spec = {"shop_id": KEEP, "shop_domain": KEEP, "customer": _CUSTOMER, "orders_to_redact": IDS}
CUSTOMERS_DATA_REQUEST: Spec = {"shop_id": KEEP, "shop_domain": KEEP, "customer": _CUSTOMER,
                                "orders_requested": IDS, "data_request": {"id": KEEP}}
SHOP_REDACT: Spec = {"shop_id": KEEP, "shop_domain": KEEP}

# --- webhooks --------------------------------------------------------------------------------------------

WEBHOOKS = WebhookScheme(
    "shopify", "x-shopify-hmac-sha256", "x-shopify-webhook-id", "x-shopify-topic",
    record_topics=frozenset({"orders/create", "orders/updated"}),
    delete_topics=frozenset({"orders/delete"}),
    compliance_topics=frozenset({"customers/redact", "customers/data_request", "shop/redact"}),
)

PLATFORM = Platform(
    name="shopify", entity="orders",
    paginator=LinkHeaderPaginator, page_size_option="shopify_page_size", token_credentials=True,
    validate=validate_order, dates=version_dates, cancelled=carries_cancelled_status, customer_email=first_email,
    allow_lists={"orders": ORDER, "orders/create": ORDER, "orders/updated": ORDER, "orders/delete": ORDER_DELETION,
                 "refunds": ORDER["refunds"],  # type: ignore[dict-item]
                 "customers/redact": CUSTOMERS_REDACT, "customers/data_request": CUSTOMERS_DATA_REQUEST,
                 "shop/redact": SHOP_REDACT},
    webhooks=WEBHOOKS,
)
