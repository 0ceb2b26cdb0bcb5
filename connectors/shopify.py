"""Shopify Admin REST orders: `updated_at_min` (inclusive) increments, `Link: rel="next"` page_info paging,
the call-limit bucket kept from filling.

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
from datetime import datetime
from urllib.parse import urljoin

import requests

from connectors.clock import SYSTEM_CLOCK, Clock
from connectors.errors import SourceError, SourceRef, bare_url, foreign_origin_error, get_json
from connectors.http import same_origin
from connectors.paging import Page

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


def iter_order_pages(session: requests.Session, base_url: str, token: str, ref: SourceRef,
                     updated_at_min: datetime | None, limit: int = MAX_LIMIT,
                     call_limit: CallLimit | None = None) -> Iterator[Page]:
    """Every order updated at or after `updated_at_min`, page by page, oldest update first.

    `order=updated_at asc` matters: landing moves the cursor after each page, which is only safe when
    pages arrive in update order. With page_info, Shopify takes every other filter from the cursor, so
    the next link is followed exactly as given, unless it leaves base_url's scheme, host or port (the
    access token would follow it): that is refused.
    """
    if call_limit is None:
        policy = getattr(session, "policy", None)
        call_limit = CallLimit(policy.clock if policy is not None else SYSTEM_CLOCK)
    params: dict[str, str | int] = {"status": "any", "limit": min(limit, MAX_LIMIT), "order": "updated_at asc"}
    if updated_at_min is not None:
        params["updated_at_min"] = updated_at_min.isoformat()
    headers = {"X-Shopify-Access-Token": token}
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
