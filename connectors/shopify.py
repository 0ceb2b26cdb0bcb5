"""Shopify Admin REST orders: `updated_at_min` (inclusive) increments, `Link: rel="next"` page_info paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import requests

from connectors.errors import SourceError, SourceRef, bare_url, get_json
from connectors.paging import Page

API_VERSION = "2025-10"
MAX_LIMIT = 250


def orders_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/admin/api/{API_VERSION}/orders.json"


def iter_order_pages(session: requests.Session, base_url: str, token: str, ref: SourceRef,
                     updated_at_min: datetime | None, limit: int = MAX_LIMIT) -> Iterator[Page]:
    """Every order updated at or after `updated_at_min`, page by page, oldest update first.

    `order=updated_at asc` matters: landing moves the cursor after each page, which is only safe when
    pages arrive in update order. With page_info, Shopify takes every other filter from the cursor, so
    the next link is followed exactly as given.
    """
    params: dict[str, str | int] = {"status": "any", "limit": min(limit, MAX_LIMIT), "order": "updated_at asc"}
    if updated_at_min is not None:
        params["updated_at_min"] = updated_at_min.isoformat()
    headers = {"X-Shopify-Access-Token": token}
    url: str | None = orders_url(base_url)
    number = 0
    first = True
    while url:
        body, response = get_json(session, url, ref, params=params if first else None, headers=headers)
        first = False
        number += 1
        if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
            raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without an `orders` list: "
                              "check base_url in the config")
        yield Page(number=number, url=bare_url(response.url), records=body["orders"])
        url = response.links.get("next", {}).get("url")
