"""Shopify through the GraphQL Admin API, in one file: `orders(query: "updated_at:>='…'", sortKey: UPDATED_AT)` with
cursor paging, the calculated-cost throttle kept from biting, refund line items completed by paginated queries,
what a valid GraphQL `Order` is, and how it becomes the record the REST connector lands (connectors/shopify.py).

Why the same landed record: `order_id` is `legacyResourceId` (the REST id) and the stored payload has REST's field
names, so a partner switched from `shopify` to `shopify_graphql` keeps its rows, its cursor and its dbt staging
(stg_shopify__*): nothing reloads, nothing duplicates. The README's "Shopify GraphQL" section maps each field and
cites the documentation page.

Throttling (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): every answer carries
`extensions.cost` with `requestedQueryCost` and `throttleStatus {maximumAvailable, currentlyAvailable,
restoreRate}`. `CostBudget` keeps that reading and waits, on the injected clock, until the bucket has restored enough
for the next query's cost; a `THROTTLED` answer (HTTP 200, an error code, no data) waits the same way and retries;
HTTP 429 and 5xx are retried with Retry-After or backoff. A query may not cost more than 1000 points: the page size
is chosen from the cost Shopify reported for the last page, and halved if `MAX_COST_EXCEEDED` comes back anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import requests

from connectors.clock import SYSTEM_CLOCK, Clock
from connectors.errors import SourceError, SourceRef, bare_url, check_response, describe_transport_error
from connectors.minimise import KEEP, Spec
from connectors.paging import Page
from connectors.pii import customer_key, mask_addresses
from connectors.platform import Platform
from connectors.records import RecordError, ValidRecord, amount, currency, kind_of, stored_json, timestamp
from connectors.shopify import ORDER as REST_ORDER

log = logging.getLogger("alliance.ingest")

API_VERSION = "2025-10"
MAX_QUERY_COST = 1000  # a single query may not cost more (MAX_COST_EXCEEDED)
MAX_FIRST = 250
REFUND_LINES_FIRST = 3  # refund line items asked for with the order; more come from RefundLines pages
REFUND_LINES_PAGE = 200  # 2 + 200 x 4 points stays under 1000
INITIAL_ORDER_COST = 60  # a generous guess of one order's points (about 41 in the sandbox) until Shopify reports it
THROTTLE_RETRIES = 10
HIDDEN_AFTER = timedelta(days=60)  # without read_all_orders, Shopify shows only the last 60 days of orders

MONEY = "shopMoney { amount currencyCode }"
REFUND_LINE = f"id quantity subtotalSet {{ {MONEY} }} lineItem {{ id }}"
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
REFUND_LINES_QUERY = f"""query AllianceRefundLines($id: ID!, $after: String, $first: Int!) {{
  node(id: $id) {{
    ... on Refund {{ refundLineItems(first: $first, after: $after) {{ pageInfo {{ hasNextPage endCursor }}
                     nodes {{ {REFUND_LINE} }} }} }}
  }}
}}"""
ORDER_LINES_QUERY = """query AllianceOrderLines($id: ID!, $after: String, $first: Int!) {
  node(id: $id) {
    ... on Order { lineItems(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id quantity } } }
  }
}"""
SCOPES_QUERY = "query AllianceScopes { currentAppInstallation { accessScopes { handle } } }"


def graphql_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/admin/api/{API_VERSION}/graphql.json"


def search_since(since: datetime) -> str:
    """Shopify's search syntax for "changed at or after": `updated_at:>='2026-10-01T00:00:00Z'` (quoted date)."""
    return f"updated_at:>='{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"


# --- the cost bucket ---------------------------------------------------------------------------------------------

class CostBudget:
    """What Shopify last said about the cost bucket, and the wait before a query of a given cost fits in it."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._seen: tuple[float, float, float, float] | None = None  # (available, restore/s, maximum, when)
        self._lock = threading.Lock()
        self.waited: list[float] = []  # every wait, for tests and the bench

    def observe(self, cost: object) -> None:
        """Read `extensions.cost.throttleStatus`; numbers may come as floats (`2000.0`); unreadable: keep the last."""
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(status, dict):
            return
        try:
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"])
            maximum = float(status["maximumAvailable"])
        except (KeyError, TypeError, ValueError):
            return
        if restore > 0:
            with self._lock:
                self._seen = (available, restore, maximum, self.clock.monotonic())

    @property
    def maximum(self) -> float | None:
        """The bucket's size as last reported (None before the first answer)."""
        with self._lock:
            return self._seen[2] if self._seen else None

    def delay(self, cost: float) -> float:
        """Seconds until the bucket holds `cost` points (0 when it does, or when nothing is known yet)."""
        with self._lock:
            if self._seen is None:
                return 0.0
            available, restore, maximum, when = self._seen
        now_available = min(maximum, available + (self.clock.monotonic() - when) * restore)
        if now_available >= cost:
            return 0.0
        # a point more than needed: both sides restore in floating point, and a query refused costs a round trip
        return (min(cost + 1, maximum) - now_available) / restore

    def wait(self, cost: float) -> float:
        seconds = self.delay(cost)
        if seconds > 0:
            self.waited.append(seconds)
            self.clock.sleep(seconds)
        return seconds


# --- one GraphQL call ---------------------------------------------------------------------------------------------

class GraphqlError(SourceError):
    """The API answered `errors` (or `userErrors`) that a retry does not cure; str() names the partner."""

    def __init__(self, message: str, codes: tuple[str, ...] = (), cost: int | None = None) -> None:
        super().__init__(message)
        self.codes, self.cost = codes, cost


@dataclass
class GraphqlClient:
    """POSTs queries for one partner: waits for the cost bucket, retries THROTTLED, 429 and 5xx on the clock."""

    session: requests.Session
    base_url: str
    token: str
    ref: SourceRef
    budget: CostBudget = field(default_factory=CostBudget)
    retries: int = 6
    backoff: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def for_session(cls, session: requests.Session, base_url: str, token: str, ref: SourceRef) -> GraphqlClient:
        policy = getattr(session, "policy", None)
        if policy is None:
            return cls(session, base_url, token, ref)
        return cls(session, base_url, token, ref, CostBudget(policy.clock), policy.retries, policy.backoff_factor,
                   policy.backoff_max)

    @property
    def clock(self) -> Clock:
        return self.budget.clock

    def query(self, query: str, variables: dict | None = None, expected_cost: float = 0) -> tuple[dict, dict]:
        """(data, extensions.cost) of a query; GraphqlError for errors a retry does not cure."""
        throttled = 0
        while True:
            self.budget.wait(expected_cost)
            body = self._post({"query": query, "variables": variables or {}})
            cost = (body.get("extensions") or {}).get("cost") if isinstance(body.get("extensions"), dict) else None
            self.budget.observe(cost)
            errors = body.get("errors")
            if errors:
                codes = _error_codes(errors)
                requested = _int(cost.get("requestedQueryCost")) if isinstance(cost, dict) else None
                bucket = self.budget.maximum
                never_fits = bucket is not None and requested is not None and requested > bucket
                if "THROTTLED" in codes and throttled < THROTTLE_RETRIES and not never_fits:
                    throttled += 1
                    expected_cost = max(expected_cost, requested or 0)
                    continue
                if "MAX_COST_EXCEEDED" in codes:
                    requested = requested or _max_cost_of(errors)
                raise GraphqlError(self._describe(errors, codes), codes, requested)
            data = body.get("data")
            if not isinstance(data, dict):
                raise SourceError(f"{self.ref.source_id}: {bare_url(self.url)} answered without `data`: check "
                                  "base_url in the config (the shop's /admin/api/<version>/graphql.json)")
            return data, cost if isinstance(cost, dict) else {}

    @property
    def url(self) -> str:
        return graphql_url(self.base_url)

    def _post(self, payload: dict) -> dict:
        attempt = 0
        while True:
            try:
                response = self.session.post(self.url, json=payload, headers={
                    "X-Shopify-Access-Token": self.token, "Content-Type": "application/json"})
            except requests.RequestException as exc:
                raise describe_transport_error(exc, self.url, self.ref) from None
            if response.status_code in (429, 500, 502, 503, 504) and attempt < self.retries:
                attempt += 1
                self.clock.sleep(_retry_after(response) or min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))
                continue
            check_response(response, self.ref)
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise SourceError(f"{self.ref.source_id}: the answer from {bare_url(response.url)} is not JSON: "
                                  "check base_url in the config") from None
            if not isinstance(body, dict):
                raise SourceError(f"{self.ref.source_id}: the answer from {bare_url(response.url)} is not a "
                                  "GraphQL response object")
            return body

    def _describe(self, errors: object, codes: tuple[str, ...]) -> str:
        messages = []
        for error in errors if isinstance(errors, list) else [errors]:
            text = error.get("message") if isinstance(error, dict) else str(error)
            messages.append(mask_addresses(str(text))[:200])
        code = f" ({', '.join(codes)})" if codes else ""
        fix = {"ACCESS_DENIED": f"the token in {self.ref.credentials_env} lacks a scope (read_orders)",
               "THROTTLED": "still throttled after retries; rerun later (ingestion resumes from the stored cursor)",
               "MAX_COST_EXCEEDED": "a single query may not cost more than 1000 points"}
        hint = next((fix[c] for c in codes if c in fix), "the GraphQL Admin API refused the query")
        return f"{self.ref.source_id}: GraphQL errors from {bare_url(self.url)}{code}: {'; '.join(messages)}: {hint}"


def _error_codes(errors: object) -> tuple[str, ...]:
    codes = []
    for error in errors if isinstance(errors, list) else []:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(ext, dict) and isinstance(ext.get("code"), str):
            codes.append(ext["code"])
    return tuple(codes)


def _max_cost_of(errors: object) -> int | None:
    for error in errors if isinstance(errors, list) else []:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(ext, dict) and ext.get("code") == "MAX_COST_EXCEEDED":
            return _int(ext.get("cost"))
    return None


def _int(value: object) -> int | None:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", "")), 120.0))
    except ValueError:
        return None


# --- paging -------------------------------------------------------------------------------------------------------

@dataclass
class CostPagedOrders:
    """`orders(first, after, query: updated_at:>=since, sortKey: UPDATED_AT)`, page by page, oldest change first.

    Each page's size keeps the query under 1000 points (from the cost Shopify reported for the last page); refunds
    whose line items did not fit are completed with RefundLines pages before the page is yielded, so an order lands
    only with its refunds whole.
    """

    page_size: int = MAX_FIRST
    warnings: list[str] = field(default_factory=list)

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        client = GraphqlClient.for_session(session, base_url, credentials, ref)
        self.warn_if_orders_hidden(client, since)
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
            requested = _int(cost.get("requestedQueryCost"))
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
        if since is not None and since > datetime.now(UTC) - HIDDEN_AFTER:
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
        _complete(client, order, "lineItems", ORDER_LINES_QUERY, 2 + REFUND_LINES_PAGE * 1)
        for refund in order.get("refunds") if isinstance(order.get("refunds"), list) else []:
            if isinstance(refund, dict):
                _complete(client, refund, "refundLineItems", REFUND_LINES_QUERY, 2 + REFUND_LINES_PAGE * 4)


def _complete(client: GraphqlClient, node: dict, key: str, query: str, cost: float) -> None:
    """Follow `node[key]`'s pageInfo with `query` (a `node(id:)` page of that connection) until it has no next page."""
    lines = node.get(key)
    if not isinstance(lines, dict) or not isinstance(lines.get("nodes"), list):
        return
    info = lines.get("pageInfo") or {}
    while isinstance(info, dict) and info.get("hasNextPage") and info.get("endCursor"):
        data, _ = client.query(query, {"id": node.get("id"), "after": info["endCursor"], "first": REFUND_LINES_PAGE},
                               expected_cost=cost)
        more = (data.get("node") or {}).get(key) or {}
        lines["nodes"].extend(more.get("nodes") or [])
        info = more.get("pageInfo") or {}
    lines["pageInfo"] = {"hasNextPage": False, "endCursor": None}


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
        refunds = record.get("refunds") or []
        if not isinstance(refunds, list):
            raise RecordError("refunds is not a list")
        for i, refund in enumerate(refunds):
            if not isinstance(refund, dict):
                raise RecordError(f"refunds[{i}] is not an object")
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
    fields = [("createdAt", record.get("createdAt")), ("updatedAt", record.get("updatedAt"))]
    fields += [(f"refunds[{i}].createdAt", refund.get("createdAt"))
               for i, refund in enumerate(record.get("refunds") or [])]
    return tuple((name, at) for name, value in fields if value is not None
                 and (at := timestamp(value, name)) is not None)


def carries_cancelled_status(record: dict) -> bool:
    """`cancelledAt` set, or `displayFinancialStatus` VOIDED (REST's `voided`)."""
    return bool(record.get("cancelledAt")) or record.get("displayFinancialStatus") == "VOIDED"


def refunded_subtotal(record: dict) -> Decimal:
    """The sum of every refund line item's subtotal (tests and the bench check what landed against it)."""
    return sum((Decimal(str(_path(item, "subtotalSet", "shopMoney", "amount")))
                for i, refund in enumerate(record.get("refunds") or []) for item in _refund_lines(refund, i)),
               Decimal(0))


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
    # Shopify sends webhooks in the REST shape whichever API the app reads: a shopify_graphql partner's webhooks are
    # not routed yet (README "Shopify GraphQL", what is not done)
)
