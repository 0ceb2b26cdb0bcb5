"""WooCommerce, in one file: REST v3 orders with `modified_after` + `dates_are_gmt=true` increments and `page` +
`X-WP-TotalPages` paging, the refund look-up, the `consumer_key:consumer_secret` credentials, what a valid order
is, which of its fields may be kept, and how WooCommerce sends webhooks.

Why this walk and not plain page numbers: numbered pages over a set that changes while we read it skip
records (an order edited mid-sync jumps to the end and everything behind it shifts one place left). So
we sort by modification time ascending and, after each page, restart at page 1 from the newest
modification time seen (minus one second, because WooCommerce's `modified_after` is exclusive and has
second precision). A record edited mid-sync moves behind the window and is read later; nothing shifts
under us. Only when a whole page shares one second do we step to the next page number. The walk ends on the page
`X-WP-TotalPages` names or, without that header, on an empty page (one request more than trusting a short page).

Refunds are not in the order body (only their ids and totals): each order with a non-empty `refunds`
list gets `GET /orders/{id}/refunds`, stored in the order under `alliance_refunds` (PRODUCT.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from connectors.errors import SourceError, SourceRef, bare_url, get_json
from connectors.minimise import KEEP, ORDER_DELETION, Entries, Spec
from connectors.paging import Page
from connectors.pii import customer_key
from connectors.platform import Platform, WebhookScheme
from connectors.records import (
    RecordError,
    ValidRecord,
    amount,
    currency,
    gmt_timestamp,
    kind_of,
    objects,
    optional_text,
    order_identity,
    stored_json,
)

MAX_PER_PAGE = 100
# `any` alone leaves trashed orders out (WordPress's WP_Query excludes `trash` from `any`); trash cancels an order
# (PRODUCT.md §3), so it is listed too (woocommerce/woocommerce#21595 made `status=trash` queryable).
STATUSES = "any,trash"
REFUNDS_KEY = "alliance_refunds"


def orders_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/wp-json/wc/v3/orders"


def split_key_secret(value: str, ref: SourceRef) -> tuple[str, str]:
    key, sep, secret = value.partition(":")
    if not sep or not key or not secret:
        raise SourceError(f"{ref.source_id}: {ref.credentials_env} must hold `consumer_key:consumer_secret` "
                          "(the WooCommerce REST key, a colon, the secret)")
    return key, secret


def gmt(value: object) -> datetime | None:
    """WooCommerce `*_gmt` fields are UTC without a zone suffix; a suffix, if any, is honoured."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _wire(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class ModifiedWindowPaginator:
    """Page numbers with `X-WP-TotalPages`, restarted at page 1 from the newest modification time seen (the
    module docstring says why); `modified_after` is exclusive with second precision, so it steps back 1 s."""

    page_size: int = MAX_PER_PAGE

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        auth = split_key_secret(credentials, ref)
        per_page = max(1, min(self.page_size, MAX_PER_PAGE))
        url = orders_url(base_url)
        lower = since.astimezone(UTC).replace(microsecond=0) if since else None
        page_number = 1
        number = 0
        while True:
            params: dict[str, str | int] = {"per_page": per_page, "page": page_number, "orderby": "modified",
                                            "order": "asc", "status": STATUSES, "dates_are_gmt": "true"}
            if lower is not None:
                params["modified_after"] = _wire(lower - timedelta(seconds=1))  # exclusive upstream: step back 1 s
            body, response = get_json(session, url, ref, params=params, auth=auth)
            if not isinstance(body, list):
                raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a list of orders: "
                                  "check base_url in the config")
            number += 1
            attach_refunds(session, base_url, credentials, ref, body)
            yield Page(number=number, url=bare_url(response.url), records=body)
            total_pages = _total_pages(response)
            if not body or (total_pages is not None and page_number >= total_pages):
                return  # without X-WP-TotalPages (a proxy dropped it), only an empty page is the last one: a
                # plugin that hides orders from REST answers, or a host that caps per_page, makes short pages
            newest = max((t for t in (gmt(o.get("date_modified_gmt")) for o in body if isinstance(o, dict)) if t),
                         default=None)
            if newest is not None and (lower is None or newest > lower):
                lower, page_number = newest, 1
            else:
                page_number += 1  # a whole page within one second (or unreadable dates): step through it


def _total_pages(response: requests.Response) -> int | None:
    """`X-WP-TotalPages` (WordPress sends it on every collection), or None when absent or unreadable."""
    try:
        return int(response.headers["X-WP-TotalPages"])
    except (KeyError, ValueError):
        return None


def attach_refunds(session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
                   orders: list) -> None:
    """Fetch each listed refund's dates and amounts into the order (the poll and the webhook receiver both)."""
    auth = split_key_secret(credentials, ref)
    url = orders_url(base_url)
    for order in orders:
        if not isinstance(order, dict) or not order.get("refunds") or order.get("id") in (None, ""):
            continue
        refunds, response = get_json(session, f"{url}/{order['id']}/refunds", ref, auth=auth)
        if not isinstance(refunds, list):
            raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a list of refunds")
        order[REFUNDS_KEY] = refunds


# --- what a valid order is ------------------------------------------------------------------------------

def billing_email(order: dict) -> str | None:
    """The order's customer e-mail: `billing.email`."""
    billing = order.get("billing")
    value = billing.get("email") if isinstance(billing, dict) else None
    return value if isinstance(value, str) else None


def validate_order(record: object, position: int, salt: str) -> ValidRecord:
    """WooCommerce order (with fetched refunds under `alliance_refunds`): every field the models read."""
    order_id, where = order_identity(record, position)
    try:
        updated = gmt_timestamp(record.get("date_modified_gmt"), "date_modified_gmt")
        gmt_timestamp(record.get("date_created_gmt"), "date_created_gmt")
        currency(record.get("currency"))
        if not isinstance(record.get("status"), str):
            raise RecordError(f"status is not text (found {kind_of(record.get('status'))})")
        billing = record.get("billing")
        if billing is not None and not isinstance(billing, dict):
            raise RecordError(f"billing is not an object (found {kind_of(billing)})")
        if isinstance(billing, dict):
            optional_text(billing, "email", "billing.email")
        customer_id = record.get("customer_id")
        if customer_id is not None and (isinstance(customer_id, bool) or not isinstance(customer_id, (int, str))):
            raise RecordError(f"customer_id is not an id (found {kind_of(customer_id)})")
        for i, item in enumerate(objects(record, "line_items", "")):
            amount(item.get("total"), f"line_items[{i}].total")
        for i, coupon in enumerate(objects(record, "coupon_lines", "")):
            if not isinstance(coupon.get("code"), str):
                raise RecordError(f"coupon_lines[{i}] has no text `code`")
        for i, meta in enumerate(objects(record, "meta_data", "")):
            if meta.get("key") == "_alliance_ref" and meta.get("value") is not None \
                    and not isinstance(meta.get("value"), str):
                raise RecordError(f"meta_data[{i}] _alliance_ref is not text (found {kind_of(meta.get('value'))})")
        for i, refund in enumerate(objects(record, REFUNDS_KEY, "")):
            gmt_timestamp(refund.get("date_created_gmt"), f"refunds[{i}].date_created_gmt")
            for j, item in enumerate(objects(refund, "line_items", f"refunds[{i}].")):
                amount(item.get("total"), f"refunds[{i}].line_items[{j}].total")
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", order_id) from None
    assert updated is not None
    billing = record.get("billing") if isinstance(record.get("billing"), dict) else {}
    return ValidRecord(order_id, updated, customer_key(billing.get("email"), salt), stored_json(ORDER, record, salt))


def version_dates(record: dict) -> tuple[tuple[str, datetime], ...]:
    """A valid version's dates that must not lie in the future: created, modified, each fetched refund's."""
    fields = [("date_created_gmt", record.get("date_created_gmt")),
              ("date_modified_gmt", record.get("date_modified_gmt"))]
    fields += [(f"refunds[{i}].date_created_gmt", refund.get("date_created_gmt"))
               for i, refund in enumerate(record.get(REFUNDS_KEY) or [])]
    return tuple((name, at) for name, value in fields if value is not None
                 and (at := gmt_timestamp(value, name)) is not None)


CANCELLED_STATUSES = frozenset({"cancelled", "failed", "trash"})


def carries_cancelled_status(record: dict) -> bool:
    """Status cancelled, failed or trash."""
    return record.get("status") in CANCELLED_STATUSES


# --- what may be kept (PRODUCT.md §4, connectors/minimise.py) -------------------------------------------

_LINE: Spec = {"id": KEEP, "product_id": KEEP, "variation_id": KEEP, "quantity": KEEP, "price": KEEP,
               "subtotal": KEEP, "total": KEEP}

# WooCommerce REST v3 order (GET /orders, order.created / order.updated webhooks), with the refunds alliance
# fetched from /orders/{id}/refunds under `alliance_refunds`.
ORDER: Spec = {
    "id": KEEP, "parent_id": KEEP, "number": KEEP, "status": KEEP, "currency": KEEP,
    "date_created_gmt": KEEP, "date_modified_gmt": KEEP, "date_paid_gmt": KEEP, "date_completed_gmt": KEEP,
    "customer_id": KEEP,
    "billing": {"email": KEEP},  # replaced by the customer_key before storing
    "discount_total": KEEP, "shipping_total": KEEP, "total": KEEP, "total_tax": KEEP, "prices_include_tax": KEEP,
    "line_items": _LINE,
    "coupon_lines": {"id": KEEP, "code": KEEP, "discount": KEEP},
    "meta_data": Entries("key", frozenset({"_alliance_ref"}), {"id": KEEP, "key": KEEP, "value": KEEP}),
    "refunds": {"id": KEEP, "total": KEEP},
    REFUNDS_KEY: {"id": KEEP, "date_created_gmt": KEEP, "amount": KEEP, "line_items": _LINE},
}

# --- webhooks --------------------------------------------------------------------------------------------

WEBHOOKS = WebhookScheme(
    "woocommerce", "x-wc-webhook-signature", "x-wc-webhook-delivery-id", "x-wc-webhook-topic",
    record_topics=frozenset({"order.created", "order.updated", "order.restored"}),
    delete_topics=frozenset({"order.deleted"}),
    unsigned_ping=re.compile(rb"webhook_id=\d{1,20}"),  # sent unsigned when a webhook is created
)

PLATFORM = Platform(
    name="woocommerce", entity="orders",
    paginator=ModifiedWindowPaginator, page_size_option="woocommerce_page_size",
    validate=validate_order, dates=version_dates, cancelled=carries_cancelled_status, customer_email=billing_email,
    allow_lists={"orders": ORDER, "order.created": ORDER, "order.updated": ORDER, "order.restored": ORDER,
                 "order.deleted": ORDER_DELETION,
                 "refunds": ORDER[REFUNDS_KEY]},  # type: ignore[dict-item]
    webhooks=WEBHOOKS,
    refund_lookup=attach_refunds, refunds_key=REFUNDS_KEY,
)
