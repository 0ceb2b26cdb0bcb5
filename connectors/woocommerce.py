"""WooCommerce REST v3 orders: `modified_after` + `dates_are_gmt=true` increments, `page` + `X-WP-TotalPages` paging.

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

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import requests

from connectors.errors import SourceError, SourceRef, bare_url, get_json
from connectors.paging import Page

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


def iter_order_pages(session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
                     modified_from: datetime | None, per_page: int = MAX_PER_PAGE) -> Iterator[Page]:
    """Every order modified at or after `modified_from` (inclusive), page by page, oldest change first."""
    auth = split_key_secret(credentials, ref)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    url = orders_url(base_url)
    lower = modified_from.astimezone(UTC).replace(microsecond=0) if modified_from else None
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
        attach_refunds(session, url, ref, auth, body)
        yield Page(number=number, url=bare_url(response.url), records=body)
        total_pages = _total_pages(response)
        if not body or (total_pages is not None and page_number >= total_pages):
            return  # without X-WP-TotalPages (a proxy dropped it), only an empty page is the last one: a plugin
            # that hides orders from REST answers, or a host that caps per_page, makes short pages mid-collection
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


def attach_refunds(session: requests.Session, url: str, ref: SourceRef, auth: tuple[str, str],
                   orders: list) -> None:
    """Fetch each listed refund's dates and amounts into the order (the poll and the webhook receiver both)."""
    for order in orders:
        if not isinstance(order, dict) or not order.get("refunds") or order.get("id") in (None, ""):
            continue
        refunds, response = get_json(session, f"{url}/{order['id']}/refunds", ref, auth=auth)
        if not isinstance(refunds, list):
            raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a list of refunds")
        order[REFUNDS_KEY] = refunds
