"""What a paginator yields (one page of records at a time, so landing can commit page by page) and what it is.

Each paging style is one small class in its platform's file, after dlt's rest_client: `Link: rel="next"`
page_info (connectors/shopify.py), page numbers with `X-WP-TotalPages` over a moving modification window
(connectors/woocommerce.py), and impact.com's `@nextpageuri` (connectors/network.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import requests

    from connectors.errors import SourceRef


@dataclass
class Page:
    number: int  # 1-based
    url: str  # without query, safe to log
    records: list  # raw records as received (may be malformed; landing validates)
    # land the records but leave the cursor where it is: they are not every change up to their newest (a bulk
    # operation's partial result), so a rerun must read from the same place again
    hold_cursor: bool = False
    # a bulk operation's page (connectors/shopify_bulk.py): its id is kept with the cursor while its result lands,
    # and cleared with the last page (`bulk_done`), so a killed run resumes from the same result
    bulk_operation: str | None = None
    bulk_done: bool = False


class Paginator(Protocol):
    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        """Every record changed at or after `since` (None: all), page by page, oldest change first."""
