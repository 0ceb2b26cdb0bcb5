"""What one platform is to alliance: how it pages, what a valid record is, which fields may be kept, and how it
sends webhooks. Each platform file (connectors/shopify.py, woocommerce.py, network.py) builds one `Platform`;
connectors/platforms.py is the registry the poll loop, the landing and the webhook receiver all read.

Why one object: the platform used to be dispatched in four places (the poll loop, the validators, the
allow-lists, the webhook receiver); adding a platform now means adding one file and one registry line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import requests

from connectors.errors import SourceRef
from connectors.minimise import Spec
from connectors.paging import Paginator
from connectors.records import ValidRecord


@dataclass(frozen=True)
class WebhookScheme:
    """How a platform sends webhooks: `/webhooks/<name>/<id>`, its headers, and the topics alliance handles."""

    name: str  # the route segment: shopify | woocommerce | network
    signature_header: str  # base64(HMAC-SHA256(secret, raw body))
    delivery_header: str
    topic_header: str | None  # None: one implicit topic, the first of `record_topics`
    record_topics: frozenset[str]  # bodies that are the platform's records (orders, clicks), landed like a poll page
    delete_topics: frozenset[str] = frozenset()  # bodies naming a deleted order
    compliance_topics: frozenset[str] = frozenset()  # privacy requests (Shopify's mandatory compliance webhooks)
    unsigned_ping: re.Pattern[bytes] | None = None  # an unsigned body answered 200 and dropped (a creation ping)

    @property
    def topics(self) -> frozenset[str]:
        """Every handled topic; anything else from a verified sender is recorded as ignored."""
        return self.record_topics | self.delete_topics | self.compliance_topics


RefundLookup = Callable[[requests.Session, str, str, SourceRef, list], None]


@dataclass(frozen=True)
class Platform:
    name: str  # as the config and raw.loads name it: shopify | woocommerce | referral_network
    entity: str  # what it serves: orders | clicks
    paginator: Callable[[int], Paginator]  # page size -> the paginator of this platform's paging style
    page_size_option: str  # the IngestOptions field holding the page size
    validate: Callable[[object, int, str], ValidRecord]  # (record, position on the page, salt); RecordError
    dates: Callable[[dict], tuple[tuple[str, datetime], ...]]  # a valid version's dates, by field name
    cancelled: Callable[[dict], bool]  # the version carries the platform's cancelled status
    customer_email: Callable[[dict], str | None]  # the field holding the customer's e-mail (a key once scrubbed)
    allow_lists: Mapping[str, Spec]  # entity (orders, refunds, clicks) or webhook topic -> what may be kept
    webhooks: WebhookScheme | None = None
    token_credentials: bool = False  # the secret is one token: a connection's login is not part of it (Shopify)
    refund_lookup: RefundLookup | None = None  # fetches refunds the order body only lists (WooCommerce) ...
    refunds_key: str | None = None  # ... into this field of the order
    # another platform whose webhook scheme delivers this one's webhooks (Shopify sends REST-shaped bodies whichever
    # API an app reads: a shopify_graphql partner's webhooks are the shopify platform's)
    webhooks_via: str | None = None
