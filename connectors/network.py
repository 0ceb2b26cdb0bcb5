"""A referral network, in one file: clicks in impact.com's REST shape with `StartDate` increments and
`@nextpageuri` paging, the `sid:token` credentials, what a valid click is, which of its fields may be kept, and
the click webhook.

A list answer is an object whose list is named for the resource in PascalCase (`Clicks`) beside
`@`-prefixed paging fields, all strings (`@page`, `@numpages`, `@pagesize`, `@total`, `@uri`,
`@firstpageuri`, `@previouspageuri`, `@nextpageuri`, `@lastpageuri`); see
https://integrations.impact.com/impact-publisher/reference/pagination. `@nextpageuri` is usually a
path (`/Mediapartners/<sid>/Clicks?...&Page=2`), resolved against base_url per RFC 3986; it may be an
absolute URL on the same host, and it is `""` or absent on the last page. A next link to another
scheme, host or port is refused: the Basic credentials would follow it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

import requests

from connectors.errors import SourceError, SourceRef, bare_url, foreign_origin_error, get_json
from connectors.http import same_origin
from connectors.minimise import KEEP, Spec
from connectors.paging import Page
from connectors.pii import customer_key
from connectors.platform import Platform, WebhookScheme
from connectors.records import RecordError, ValidRecord, kind_of, optional_text, record_id, stored_json, timestamp

MAX_PAGE_SIZE = 1000
LIST_KEY = "Clicks"
NEXT_KEY = "@nextpageuri"


def clicks_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/Clicks"


def split_credentials(value: str, ref: SourceRef) -> tuple[str, str]:
    """`sid:token` -> (sid, token); a value without a colon is a config mistake."""
    sid, sep, token = value.partition(":")
    if not sep or not sid or not token:
        raise SourceError(f"{ref.source_id}: {ref.credentials_env} must hold `sid:token` (account sid, a colon, "
                          "the auth token)")
    return sid, token


def next_page_url(body: dict, base_url: str, ref: SourceRef) -> str | None:
    """The next page's absolute URL, or None on the last page; refuses one that leaves base_url's origin."""
    value = body.get(NEXT_KEY)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SourceError(f"{ref.source_id}: `{NEXT_KEY}` is a {type(value).__name__}, not a string (a URI or \"\"): "
                          "the network's answer is not in the impact.com shape; check base_url in the config")
    if not value.strip():
        return None
    url = urljoin(base_url, value.strip())
    if not same_origin(url, base_url):
        raise foreign_origin_error(ref, f"the next-page link `{NEXT_KEY}`", url, base_url)
    return url


@dataclass
class NextUriPaginator:
    """impact.com's paging: the first request carries the filters, then `@nextpageuri` is followed until it is
    empty; a next page already read (a loop) or on another origin is refused."""

    page_size: int = MAX_PAGE_SIZE

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        """Every click with EventDate at or after `since`, page by page."""
        auth = split_credentials(credentials, ref)
        params: dict[str, str | int] = {"PageSize": min(self.page_size, MAX_PAGE_SIZE)}
        if since is not None:
            params["StartDate"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        url: str | None = clicks_url(base_url)
        seen: set[str] = set()
        number = 0
        while url:
            body, response = get_json(session, url, ref, params=params if number == 0 else None, auth=auth)
            number += 1
            if not isinstance(body, dict) or not isinstance(body.get(LIST_KEY), list):
                raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a `{LIST_KEY}` list "
                                  f"(impact.com's shape is {{\"@page\": \"1\", ..., \"{NEXT_KEY}\": \"...\", "
                                  f"\"{LIST_KEY}\": [...]}}): check that base_url in the config is the network's "
                                  "API root for this account (the path the Clicks resource hangs off)")
            yield Page(number=number, url=bare_url(response.url), records=body[LIST_KEY])
            seen.add(response.url)
            url = next_page_url(body, base_url, ref)
            if url is not None and url in seen:
                raise SourceError(f"{ref.source_id}: `{NEXT_KEY}` of page {number} points back to a page already "
                                  f"read ({bare_url(url)}): the network's paging loops; rerun later or ask the "
                                  "network")


# --- what a valid click is ------------------------------------------------------------------------------

def customer_email(click: dict) -> str | None:
    value = click.get("CustomerEmail")
    return value if isinstance(value, str) else None


def validate_click(record: object, position: int, salt: str) -> ValidRecord:
    if not isinstance(record, dict):
        raise RecordError(f"click at position {position} of the page is {type(record).__name__}, not an object")
    click_id = record_id(record.get("Id"), "click", position)
    where = f"click {click_id}"
    try:
        event = timestamp(record.get("EventDate"), "EventDate")
        for key in ("ReferrerPartnerId", "DestinationPartnerId"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise RecordError(f"{key} is not a partner id (found {kind_of(value)})")
        for key in ("ReferralCode", "CustomerEmail"):
            optional_text(record, key)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", click_id) from None
    assert event is not None
    email = record.get("CustomerEmail")
    return ValidRecord(click_id, event, customer_key(email, salt), stored_json(CLICK, record, salt))


def version_dates(record: dict) -> tuple[tuple[str, datetime], ...]:
    """A click's one date: EventDate."""
    return (("EventDate", timestamp(record.get("EventDate"), "EventDate")),)


# --- what may be kept (PRODUCT.md §4, connectors/minimise.py) -------------------------------------------

# Referral-network click (impact.com-style Clicks API and the network webhook).
CLICK: Spec = {
    "Id": KEEP, "ReferrerPartnerId": KEEP, "DestinationPartnerId": KEEP, "EventDate": KEEP, "ReferralCode": KEEP,
    "CustomerEmail": KEEP,  # replaced by the customer_key before storing
}

# --- webhooks: our own scheme (one click or a list per delivery, one implicit topic) ----------------------

CLICK_TOPIC = "clicks"
WEBHOOKS = WebhookScheme("network", "x-alliance-signature", "x-alliance-delivery-id", None,
                         record_topics=frozenset({CLICK_TOPIC}))

PLATFORM = Platform(
    name="referral_network", entity="clicks",
    paginator=NextUriPaginator, page_size_option="network_page_size",
    validate=validate_click, dates=version_dates, cancelled=lambda record: False, customer_email=customer_email,
    allow_lists={"clicks": CLICK},
    webhooks=WEBHOOKS,
)
