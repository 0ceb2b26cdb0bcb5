"""Referral network clicks: `StartDate` increments, `@nextpageuri` paging resolved per RFC 3986."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urljoin

import requests

from connectors.errors import SourceError, SourceRef, bare_url, get_json
from connectors.paging import Page

MAX_PAGE_SIZE = 1000


def clicks_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/Clicks"


def split_credentials(value: str, ref: SourceRef) -> tuple[str, str]:
    """`sid:token` -> (sid, token); a value without a colon is a config mistake."""
    sid, sep, token = value.partition(":")
    if not sep or not sid or not token:
        raise SourceError(f"{ref.source_id}: {ref.credentials_env} must hold `sid:token` (account sid, a colon, "
                          "the auth token)")
    return sid, token


def iter_click_pages(session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
                     start: datetime | None, page_size: int = MAX_PAGE_SIZE) -> Iterator[Page]:
    """Every click with EventDate at or after `start`, page by page."""
    auth = split_credentials(credentials, ref)
    params: dict[str, str | int] = {"PageSize": min(page_size, MAX_PAGE_SIZE)}
    if start is not None:
        params["StartDate"] = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    url: str | None = clicks_url(base_url)
    number = 0
    while url:
        body, response = get_json(session, url, ref, params=params if number == 0 else None, auth=auth)
        number += 1
        if not isinstance(body, dict) or not isinstance(body.get("clicks"), list):
            raise SourceError(f"{ref.source_id}: {bare_url(response.url)} answered without a `clicks` list: "
                              "check base_url in the config")
        yield Page(number=number, url=bare_url(response.url), records=body["clicks"])
        next_uri = body.get("@nextpageuri")
        url = urljoin(base_url, next_uri) if next_uri else None
