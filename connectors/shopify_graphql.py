"""Shopify through the GraphQL Admin API, the platform's file: `orders(query: "updated_at:>='…'",
sortKey: UPDATED_AT)` with cursor paging, bulk backfills for first loads and long re-reads, connections completed by
paginated queries, what a valid GraphQL `Order` is, and how it becomes the record the REST connector lands
(connectors/shopify.py).

Why the same landed record: `order_id` is `legacyResourceId` (the REST id) and the stored payload has REST's field
names, so a partner switched from `shopify` to `shopify_graphql` keeps its rows, its cursor and its dbt staging
(stg_shopify__*): nothing reloads, nothing duplicates. The README's "Shopify GraphQL" section maps each field and
cites the documentation page.

The calls themselves (cost bucket, THROTTLED, retries) are connectors/shopify_graphql_client.py; bulk backfills
connectors/shopify_bulk.py. A query may not cost more than 1000 points: the page size is chosen from the cost Shopify
reported for the last page, and halved if `MAX_COST_EXCEEDED` comes back anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from connectors.errors import SourceError, SourceRef, bare_url
from connectors.minimise import KEEP, Spec
from connectors.paging import Page
from connectors.pii import customer_key
from connectors.platform import Platform
from connectors.records import (
    RecordError,
    ValidRecord,
    amount,
    currency,
    kind_of,
    objects,
    stored_json,
    timestamp,
)
from connectors.records import version_dates as dates_of
from connectors.shopify import ORDER as REST_ORDER
from connectors.shopify_bulk import LINE_ERROR, BulkOrders
from connectors.shopify_graphql_client import (
    CONNECTION_PAGE,
    MAX_QUERY_COST,
    MONEY,
    REFUND_LINE,
    REFUND_LINES_QUERY,
    GraphqlClient,
    GraphqlError,
    as_int,
    complete_connection,
    search_since,
)

log = logging.getLogger("alliance.ingest")

MAX_FIRST = 250
REFUND_LINES_FIRST = 3  # refund line items asked for with the order; more come from RefundLines pages
INITIAL_ORDER_COST = 60  # a generous guess of one order's points (about 41 in the sandbox) until Shopify reports it
HIDDEN_AFTER = timedelta(days=60)  # without read_all_orders, Shopify shows only the last 60 days of orders

ORDER_FIELDS = f"""
      id legacyResourceId name createdAt updatedAt processedAt closedAt cancelledAt cancelReason test email
      currencyCode presentmentCurrencyCode displayFinancialStatus
      subtotalPriceSet {{ {MONEY} }} currentSubtotalPriceSet {{ {MONEY} }} totalPriceSet {{ {MONEY} }}
      discountCodes landingPageUrl
      customerJourneySummary {{ ready lastVisit {{ landingPage }} }}
      customer {{ legacyResourceId defaultEmailAddress {{ emailAddress }} }}
      refunds {{
        id legacyResourceId createdAt
        refundLineItems(first: $lines) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {REFUND_LINE} }} }}
      }}
      lineItems(first: $lines) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ id quantity }} }}"""
ORDERS_QUERY = f"""query AllianceOrders($first: Int!, $after: String, $query: String, $lines: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{{ORDER_FIELDS}
    }}
  }}
}}"""
ORDER_LINES_QUERY = """query AllianceOrderLines($id: ID!, $after: String, $first: Int!) {
  node(id: $id) {
    ... on Order {
      lineItems(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id quantity } }
    }
  }
}"""
COUNT_QUERY = "query AllianceCount($query: String) { ordersCount(query: $query) { count precision } }"
SCOPES_QUERY = "query AllianceScopes { currentAppInstallation { accessScopes { handle } } }"


# --- paging -------------------------------------------------------------------------------------------------------

@dataclass
class CostPagedOrders:
    """Every order changed at or after `since`, oldest change first: by a bulk operation for a first load, or for a
    pull reaching back more than `bulk_after` (a backfill: `alliance ingest --since`, a long outage) with at least
    `bulk_min_orders` orders to read (`ordersCount`: a quiet shop whose cursor has not moved for days is paged); else
    by cost-paged queries.

    Paged: `orders(first, after, query: updated_at:>=since, sortKey: UPDATED_AT)`; each page's size keeps the
    query under 1000 points (from the cost Shopify reported for the last page); connections that did not fit
    (refund line items, line items) are completed with `node(id:)` pages before the page is yielded, so an order
    lands only with its refunds whole. Bulk: see `BulkOrders`.
    """

    page_size: int = MAX_FIRST
    warnings: list[str] = field(default_factory=list)
    bulk_after: timedelta | None = timedelta(days=1)  # None: never bulk
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)
    bulk_poll_seconds: float = 1.0
    resume_bulk: str | None = None  # set by the poll loop: the bulk operation a killed run was landing
    bulk_min_orders: int = 1000  # a backfill of fewer orders is paged (4 pages of 250 cost less than an operation)

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        client = GraphqlClient.for_session(session, base_url, credentials, ref)
        self.warn_if_orders_hidden(client, since)
        if self.resume_bulk or self.is_backfill(client, since):
            yield from BulkOrders(client, self.page_size, self.bulk_poll_seconds, self.warnings).pages(
                since, self.resume_bulk)
            return
        yield from self.paged(client, since)

    def is_backfill(self, client: GraphqlClient, since: datetime | None) -> bool:
        """A first load, or a long re-read with enough orders behind it to be worth a bulk operation."""
        if self.bulk_after is None:
            return False
        if since is None:
            return True
        if self.now() - since <= self.bulk_after:
            return False
        data, _ = client.query(COUNT_QUERY, {"query": search_since(since)}, expected_cost=1)
        count = as_int((data.get("ordersCount") or {}).get("count")) or 0
        return count >= self.bulk_min_orders

    def paged(self, client: GraphqlClient, since: datetime | None) -> Iterator[Page]:
        ref = client.ref
        per_order = float(INITIAL_ORDER_COST)
        after: str | None = None
        number = 0
        while True:
            limit = min(MAX_QUERY_COST, client.budget.maximum or MAX_QUERY_COST)  # a smaller bucket: smaller pages
            first = max(1, min(self.page_size, MAX_FIRST, int((limit - 2) // per_order)))
            variables = {"first": first, "after": after, "lines": REFUND_LINES_FIRST,
                         "query": search_since(since) if since is not None else None}
            try:
                data, cost = client.query(ORDERS_QUERY, variables, expected_cost=2 + first * per_order)
            except GraphqlError as exc:
                too_costly = "MAX_COST_EXCEEDED" in exc.codes or "THROTTLED" in exc.codes and exc.cost is not None \
                    and exc.cost > (client.budget.maximum or MAX_QUERY_COST)
                if not too_costly or first == 1:
                    raise
                per_order = max(per_order * 2, ((exc.cost or 0) - 2) / first)  # smaller pages, same place
                continue
            requested = as_int(cost.get("requestedQueryCost"))
            if requested:
                per_order = max(1.0, (requested - 2) / first)
            orders = data.get("orders")
            if not isinstance(orders, dict) or not isinstance(orders.get("nodes"), list):
                raise SourceError(f"{ref.source_id}: {bare_url(client.url)} answered without `orders.nodes`")
            records = orders["nodes"]
            complete_refund_lines(client, records)
            number += 1
            yield Page(number=number, url=bare_url(client.url), records=records)
            info = orders.get("pageInfo") or {}
            after = info.get("endCursor") if isinstance(info, dict) else None
            if not (isinstance(info, dict) and info.get("hasNextPage") and after):
                return

    def warn_if_orders_hidden(self, client: GraphqlClient, since: datetime | None) -> None:
        """A pull reaching back more than 60 days without `read_all_orders` silently misses older orders: say so."""
        if since is not None and since > self.now() - HIDDEN_AFTER:
            return
        data, _ = client.query(SCOPES_QUERY)
        installation = data.get("currentAppInstallation") or {}
        handles = {s.get("handle") for s in installation.get("accessScopes") or [] if isinstance(s, dict)}
        if "read_all_orders" not in handles:
            message = (f"{client.ref.source_id}: the token in {client.ref.credentials_env} lacks the read_all_orders "
                       "scope, so Shopify shows only the last 60 days of orders; older orders were not pulled: "
                       "grant read_all_orders to the app and rerun with --since")
            log.warning("%s", message)
            self.warnings.append(message)


def complete_refund_lines(client: GraphqlClient, orders: list) -> None:
    """Fetch the rest of every refund's `refundLineItems` and every order's `lineItems` that has a next page."""
    for order in orders:
        if not isinstance(order, dict):
            continue
        complete_connection(client, order, "lineItems", ORDER_LINES_QUERY, 2 + CONNECTION_PAGE * 1)
        for refund in order.get("refunds") if isinstance(order.get("refunds"), list) else []:
            if isinstance(refund, dict):
                complete_connection(client, refund, "refundLineItems", REFUND_LINES_QUERY, 2 + CONNECTION_PAGE * 4)


# --- what a valid GraphQL order is, and the REST-shaped record it lands as ----------------------------------------

def _path(record: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _legacy_id(value: object, what: str) -> int:
    """An UnsignedInt64 (`legacyResourceId`), serialised as a string of digits; the REST numeric id."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip().isdigit():
        raise RecordError(f"{what} is not an UnsignedInt64 (found {kind_of(value)})")
    return int(str(value).strip())


def _gid_number(value: object) -> int | str | None:
    """The numeric tail of a global id (`gid://shopify/LineItem/123` -> 123), or the value unchanged."""
    if isinstance(value, str) and value.startswith("gid://"):
        tail = value.rsplit("/", 1)[-1].split("?", 1)[0]
        return int(tail) if tail.isdigit() else tail
    return value  # type: ignore[return-value]


def order_email(order: dict) -> str | None:
    """`email`, else the customer's default e-mail address (`Customer.email` is deprecated)."""
    for value in (order.get("email"), _path(order, "customer", "defaultEmailAddress", "emailAddress")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def landing_page(order: dict) -> str | None:
    """`customerJourneySummary.lastVisit.landingPage`, else the deprecated `landingPageUrl` (PRODUCT.md §3)."""
    value = _path(order, "customerJourneySummary", "lastVisit", "landingPage")
    if isinstance(value, str) and value.strip():
        return value
    value = order.get("landingPageUrl")
    return value if isinstance(value, str) and value.strip() else None


def _money(order: dict, key: str, required: bool = False) -> str | None:
    value = _path(order, key, "shopMoney", "amount")
    if value is None and not required:
        return None
    amount(value, f"{key}.shopMoney.amount")
    return str(value)


def _refund_lines(refund: dict, i: int) -> list:
    connection = refund.get("refundLineItems")
    if connection is None:
        return []
    if not isinstance(connection, dict):
        raise RecordError(f"refunds[{i}].refundLineItems is not a connection (found {kind_of(connection)})")
    if isinstance(connection.get("nodes"), list):
        return connection["nodes"]
    if isinstance(connection.get("edges"), list):
        return [e.get("node") if isinstance(e, dict) else e for e in connection["edges"]]
    raise RecordError(f"refunds[{i}].refundLineItems has neither `nodes` nor `edges`")


def to_landed(order: dict) -> dict:
    """The GraphQL Order as the record the REST connector lands (REST field names; README "Shopify GraphQL")."""
    shop_currency = order.get("currencyCode")
    refunds = []
    for i, refund in enumerate(order.get("refunds") or []):
        lines = []
        for item in _refund_lines(refund, i):
            subtotal = _path(item, "subtotalSet", "shopMoney", "amount")
            lines.append({
                "id": _gid_number(item.get("id")), "quantity": item.get("quantity"),
                "line_item_id": _gid_number(_path(item, "lineItem", "id")), "subtotal": subtotal,
                "subtotal_set": {"shop_money": {"amount": subtotal,
                                                "currency_code": _path(item, "subtotalSet", "shopMoney",
                                                                       "currencyCode")}},
            })
        refunds.append({"id": _gid_number(refund.get("legacyResourceId") or refund.get("id")),
                        "created_at": refund.get("createdAt"), "refund_line_items": lines})
    customer = order.get("customer")
    status = order.get("displayFinancialStatus")
    reason = order.get("cancelReason")
    return {
        "id": int(str(order["legacyResourceId"]).strip()),
        "admin_graphql_api_id": order.get("id"),
        "created_at": order.get("createdAt"), "updated_at": order.get("updatedAt"),
        "processed_at": order.get("processedAt"), "closed_at": order.get("closedAt"),
        "cancelled_at": order.get("cancelledAt"), "cancel_reason": reason.lower() if isinstance(reason, str) else None,
        "currency": shop_currency, "presentment_currency": order.get("presentmentCurrencyCode"),
        "subtotal_price": _path(order, "subtotalPriceSet", "shopMoney", "amount"),
        "subtotal_price_set": {"shop_money": {"amount": _path(order, "subtotalPriceSet", "shopMoney", "amount"),
                                              "currency_code": _path(order, "subtotalPriceSet", "shopMoney",
                                                                     "currencyCode")}},
        "current_subtotal_price": _path(order, "currentSubtotalPriceSet", "shopMoney", "amount"),
        "total_price": _path(order, "totalPriceSet", "shopMoney", "amount"),
        "financial_status": status.lower() if isinstance(status, str) else None,
        "test": order.get("test"),
        "email": order_email(order),
        "landing_site": landing_page(order),
        "discount_codes": [{"code": code} for code in order.get("discountCodes") or []],
        "customer": None if not isinstance(customer, dict) else {
            "id": _gid_number(customer.get("legacyResourceId") or customer.get("id")),
            "email": _path(customer, "defaultEmailAddress", "emailAddress")},
        "refunds": refunds,
        "line_items": [{"id": _gid_number(line.get("id")), "quantity": line.get("quantity")}
                       for line in _connection_nodes(order.get("lineItems")) if isinstance(line, dict)],
    }


def _connection_nodes(connection: object) -> list:
    """The nodes of a connection given as `nodes`, or as `edges[].node`, or (bulk, regrouped) a plain list."""
    if isinstance(connection, list):
        return connection
    if not isinstance(connection, dict):
        return []
    if isinstance(connection.get("nodes"), list):
        return connection["nodes"]
    return [e.get("node") for e in connection.get("edges") or [] if isinstance(e, dict)]


def validate_order(record: object, position: int, salt: str) -> ValidRecord:
    """Check every field the models read, by its GraphQL name; the first problem becomes the quarantine reason."""
    if not isinstance(record, dict):
        raise RecordError(f"order at position {position} of the page is {type(record).__name__}, not an object")
    if LINE_ERROR in record:
        raise RecordError(str(record[LINE_ERROR]))
    raw_id = record.get("legacyResourceId")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise RecordError(f"order at position {position} of the page: missing legacyResourceId")
    where = f"order at position {position} of the page"
    try:
        order_id = str(_legacy_id(raw_id, "legacyResourceId"))
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None
    where = f"order {order_id}"
    try:
        updated = timestamp(record.get("updatedAt"), "updatedAt")
        timestamp(record.get("createdAt"), "createdAt")
        timestamp(record.get("cancelledAt"), "cancelledAt", required=False)
        if _path(record, "subtotalPriceSet", "shopMoney") is None:
            raise RecordError("subtotalPriceSet.shopMoney is null (no commissionable amount)")
        _money(record, "subtotalPriceSet", required=True)
        currency(record.get("currencyCode"))
        if "test" in record and not isinstance(record["test"], bool):
            raise RecordError(f"test is not true/false (found {kind_of(record['test'])})")
        for key in ("email", "landingPageUrl", "displayFinancialStatus", "cancelledAt"):
            if record.get(key) is not None and not isinstance(record[key], str):
                raise RecordError(f"{key} is not text (found {kind_of(record[key])})")
        customer = record.get("customer")
        if customer is not None and not isinstance(customer, dict):
            raise RecordError(f"customer is not an object (found {kind_of(customer)})")
        codes = record.get("discountCodes") or []
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise RecordError("discountCodes is not a list of text")
        for i, refund in enumerate(objects(record, "refunds", "")):
            timestamp(refund.get("createdAt"), f"refunds[{i}].createdAt")
            for j, item in enumerate(_refund_lines(refund, i)):
                if not isinstance(item, dict):
                    raise RecordError(f"refunds[{i}].refundLineItems[{j}] is not an object")
                amount(_path(item, "subtotalSet", "shopMoney", "amount"),
                       f"refunds[{i}].refundLineItems[{j}].subtotalSet.shopMoney.amount")
            info = _path(refund, "refundLineItems", "pageInfo")
            if isinstance(info, dict) and info.get("hasNextPage"):
                raise RecordError(f"refunds[{i}].refundLineItems is incomplete (a next page was not fetched)")
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", order_id) from None
    assert updated is not None
    return ValidRecord(order_id, updated, customer_key(order_email(record), salt),
                       stored_json(REST_ORDER, to_landed(record), salt))


def version_dates(record: dict) -> tuple[tuple[str, datetime], ...]:
    """A valid version's dates that must not lie in the future: created, updated, each refund's."""
    return dates_of(record, "createdAt", "updatedAt", "refunds", "createdAt")


def carries_cancelled_status(record: dict) -> bool:
    """`cancelledAt` set, or `displayFinancialStatus` VOIDED (REST's `voided`)."""
    return bool(record.get("cancelledAt")) or record.get("displayFinancialStatus") == "VOIDED"


# --- what may be kept of a GraphQL order as received (quarantine rows; PRODUCT.md §4) ------------------------------

_MONEY: Spec = {"shopMoney": {"amount": KEEP, "currencyCode": KEEP}}
ORDER: Spec = {
    "id": KEEP, "legacyResourceId": KEEP, "name": KEEP, "createdAt": KEEP, "updatedAt": KEEP, "processedAt": KEEP,
    "closedAt": KEEP, "cancelledAt": KEEP, "cancelReason": KEEP, "test": KEEP, "email": KEEP,
    "currencyCode": KEEP, "presentmentCurrencyCode": KEEP, "displayFinancialStatus": KEEP,
    "subtotalPriceSet": _MONEY, "currentSubtotalPriceSet": _MONEY, "totalPriceSet": _MONEY,
    "discountCodes": "ids", "landingPageUrl": KEEP,
    "customerJourneySummary": {"ready": KEEP, "lastVisit": {"landingPage": KEEP}},
    "customer": {"legacyResourceId": KEEP, "defaultEmailAddress": {"emailAddress": KEEP}},
    "refunds": {"id": KEEP, "legacyResourceId": KEEP, "createdAt": KEEP,
                "refundLineItems": {"nodes": {"id": KEEP, "quantity": KEEP, "subtotalSet": _MONEY,
                                              "lineItem": {"id": KEEP}}}},
}

PLATFORM = Platform(
    name="shopify_graphql", entity="orders",
    paginator=CostPagedOrders, page_size_option="shopify_page_size", token_credentials=True,
    validate=validate_order, dates=version_dates, cancelled=carries_cancelled_status, customer_email=order_email,
    allow_lists={"orders": ORDER, "refunds": ORDER["refunds"]},  # type: ignore[dict-item]
    webhooks_via="shopify",  # Shopify sends webhooks in the REST shape whichever API the app reads
)
