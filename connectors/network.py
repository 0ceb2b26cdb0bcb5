"""Referral network clicks (impact.com's REST shape): `StartDate` increments, `@nextpageuri` paging.

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
from datetime import UTC, datetime
from urllib.parse import urljoin

import requests

from connectors.errors import SourceError, SourceRef, bare_url, foreign_origin_error, get_json
from connectors.http import same_origin
from connectors.paging import Page

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


def iter_click_pages(session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
                     start: datetime | None, page_size: int = MAX_PAGE_SIZE) -> Iterator[Page]:
    """Every click with EventDate at or after `start`, page by page."""
    auth = split_credentials(credentials, ref)
    params: dict[str, str | int] = {"PageSize": min(page_size, MAX_PAGE_SIZE)}
    if start is not None:
        params["StartDate"] = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url: str | None = clicks_url(base_url)
    seen: set[str] = set()
    number = 0
    while url:
        body, response = get_json(session, url, ref, params=params if number == 0 else None, auth=auth)
        number += 1
        if not isinstance(body, dict) or not isinstance(body.get(LIST_KEY), list):
            raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a `{LIST_KEY}` list "
                              f"(impact.com's shape is {{\"@page\": \"1\", ..., \"{NEXT_KEY}\": \"...\", "
                              f"\"{LIST_KEY}\": [...]}}): check that base_url in the config is the network's API "
                              "root for this account (the path the Clicks resource hangs off)")
        yield Page(number=number, url=bare_url(response.url), records=body[LIST_KEY])
        seen.add(response.url)
        url = next_page_url(body, base_url, ref)
        if url is not None and url in seen:
            raise SourceError(f"{ref.source_id}: `{NEXT_KEY}` of page {number} points back to a page already "
                              f"read ({bare_url(url)}): the network's paging loops; rerun later or ask the network")
