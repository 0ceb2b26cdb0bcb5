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
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

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
    ... on Order {
      lineItems(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id quantity } }
    }
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
    """Every order changed at or after `since`, oldest change first: by a bulk operation for a first load or a pull
    reaching back more than `bulk_after` (a backfill: `alliance ingest --since`), else by cost-paged queries.

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

    def pages(self, session: requests.Session, base_url: str, credentials: str, ref: SourceRef,
              since: datetime | None) -> Iterator[Page]:
        client = GraphqlClient.for_session(session, base_url, credentials, ref)
        self.warn_if_orders_hidden(client, since)
        if self.bulk_after is not None and (since is None or self.now() - since > self.bulk_after):
            yield from BulkOrders(client, self.page_size, self.bulk_poll_seconds, self.warnings).pages(since)
            return
        yield from self.paged(client, since)

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


# --- bulk operations: a backfill in one query ------------------------------------------------------------------

BULK_ORDER_FIELDS = """
      id legacyResourceId name createdAt updatedAt processedAt closedAt cancelledAt cancelReason test email
      currencyCode presentmentCurrencyCode displayFinancialStatus
      subtotalPriceSet { shopMoney { amount currencyCode } }
      currentSubtotalPriceSet { shopMoney { amount currencyCode } } totalPriceSet { shopMoney { amount currencyCode } }
      discountCodes landingPageUrl
      customerJourneySummary { ready lastVisit { landingPage } }
      customer { legacyResourceId defaultEmailAddress { emailAddress } }
      refunds { id legacyResourceId createdAt }
      lineItems { edges { node { id quantity } } }"""
RUN_BULK = """mutation AllianceBulk($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: false) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""
BULK_STATUS = """query AllianceBulkStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount fileSize url partialDataUrl query } }
}"""
CURRENT_BULK = "query AllianceCurrentBulk { currentBulkOperation(type: QUERY) { id status query } }"
REFUNDS_BY_ID = f"""query AllianceRefunds($ids: [ID!]!, $first: Int!) {{
  nodes(ids: $ids) {{ ... on Refund {{ id
    refundLineItems(first: $first) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {REFUND_LINE} }} }} }} }}
}}"""
REFUNDS_PER_QUERY = 20  # 20 refunds x (1 + 2 + 10 x 4) points stays under 1000
REFUND_LINES_IN_BATCH = 10
BULK_POLL_MAX_SECONDS = 30.0
BULK_WAIT_LIMIT = 6 * 3600.0  # seconds of polling before giving up (Shopify times a bulk query out long before)
BULK_DONE = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
LINE_ERROR = "__alliance_line_error"  # a JSONL line that could not be read, handed to landing to quarantine


def bulk_query(since: datetime | None) -> str:
    """The bulk query: every order changed since `since`, its refunds inline (a plain list: Shopify refuses a
    connection inside it), its line items as child lines."""
    search = f'(query: "{search_since(since)}", sortKey: UPDATED_AT)' if since is not None else "(sortKey: UPDATED_AT)"
    return f"{{ orders{search} {{ edges {{ node {{{BULK_ORDER_FIELDS}\n    }} }} }} }}"


class BulkOrders:
    """One bulk query operation, read as pages of whole orders, oldest change first.

    Shopify runs the query, we poll (`node(id:)`, on the injected clock), then stream the JSONL from its presigned
    URL (another host: fetched with a bare session, never the shop's token) into a SQLite file on disk: memory stays
    flat however large the shop, and child lines (line items, `__parentId`) may come anywhere after their parent.
    Pages are then read back in `updatedAt` order, so the cursor moves page by page exactly as with paged queries.
    Refund line items cannot be in a bulk query (a connection inside the `refunds` list is refused): they are
    fetched for each page's refunds by `nodes(ids:)` queries before the page is yielded.

    A run killed while Shopify works finds the operation again (`OPERATION_IN_PROGRESS`, then
    `currentBulkOperation` carrying our query) and adopts it; one killed while landing restarts from the cursor the
    last landed page left. A FAILED / CANCELED / EXPIRED operation is a clear error; a partial result is landed
    without moving the cursor, then reported, so a rerun reads it all again.
    """

    def __init__(self, client: GraphqlClient, page_size: int, poll_seconds: float, warnings: list[str]) -> None:
        self.client, self.page_size = client, max(1, page_size)
        self.poll_seconds, self.warnings = poll_seconds, warnings

    @property
    def partner(self) -> str:
        return self.client.ref.source_id

    def pages(self, since: datetime | None) -> Iterator[Page]:
        query = bulk_query(since)
        operation = self.wait(self.start(query))
        status = operation.get("status")
        url, partial = operation.get("url"), operation.get("partialDataUrl")
        what = f"bulk operation {operation.get('id')}"
        if status != "COMPLETED" and not (status == "FAILED" and partial):
            fix = {"EXPIRED": "its results expired (7 days): rerun to start a new one",
                   "CANCELED": "it was canceled in the shop: rerun to start a new one"}.get(
                str(status), "rerun later (ingestion resumes from the stored cursor)")
            code = f" ({operation.get('errorCode')})" if operation.get("errorCode") else ""
            raise SourceError(f"{self.partner}: {what} ended {status}{code}: {fix}")
        if status == "COMPLETED" and not url:
            return  # nothing matched the query
        with tempfile.TemporaryDirectory(prefix="alliance-bulk-") as folder:
            staged = BulkFile(Path(folder) / "bulk.sqlite3")
            self.download(partial if status == "FAILED" else url, staged)
            yield from self.read(staged, hold=status == "FAILED")
            staged.close()
        if status == "FAILED":
            raise SourceError(f"{self.partner}: {what} FAILED ({operation.get('errorCode')}) after a partial result; "
                              "the partial result was landed and the cursor left where it was: rerun to read it all")

    def start(self, query: str) -> dict:
        """Start the bulk query, or adopt the shop's running one when it is ours (a killed run's)."""
        for _ in range(int(BULK_WAIT_LIMIT // max(self.poll_seconds, 1.0)) + 1):
            data, _ = self.client.query(RUN_BULK, {"query": query}, expected_cost=10)
            payload = data.get("bulkOperationRunQuery") or {}
            errors = payload.get("userErrors") or []
            if not errors and isinstance(payload.get("bulkOperation"), dict):
                return payload["bulkOperation"]
            codes = {e.get("code") for e in errors if isinstance(e, dict)}
            if "OPERATION_IN_PROGRESS" not in codes:
                messages = "; ".join(mask_addresses(str(e.get("message")))[:200] for e in errors
                                     if isinstance(e, dict)) or "no bulk operation was created"
                raise GraphqlError(f"{self.partner}: bulkOperationRunQuery refused: {messages}", tuple(
                    c for c in codes if isinstance(c, str)))
            current, _ = self.client.query(CURRENT_BULK, expected_cost=1)
            running = current.get("currentBulkOperation") or {}
            if running.get("query") and _same_query(running["query"], query):
                log.info("%s: adopting bulk operation %s (a previous run's)", self.partner, running.get("id"))
                return running
            log.info("%s: another bulk query is running in the shop (%s); waiting for it", self.partner,
                     running.get("id"))
            if running.get("id"):
                self.wait(running)
            else:
                self.client.clock.sleep(self.poll_seconds)
        raise SourceError(f"{self.partner}: the shop kept another bulk query running; rerun later")

    def wait(self, operation: dict) -> dict:
        """Poll until the operation is done (Shopify's `bulk_operations/finish` webhook is not guaranteed)."""
        waited, delay = 0.0, self.poll_seconds
        while operation.get("status") not in BULK_DONE:
            if waited > BULK_WAIT_LIMIT:
                raise SourceError(f"{self.partner}: bulk operation {operation.get('id')} still "
                                  f"{operation.get('status')} after {int(waited)} s: rerun later (it will be adopted)")
            self.client.clock.sleep(delay)
            waited += delay
            delay = min(BULK_POLL_MAX_SECONDS, delay * 1.5)
            data, _ = self.client.query(BULK_STATUS, {"id": operation.get("id")}, expected_cost=1)
            found = data.get("node")
            if not isinstance(found, dict):
                raise SourceError(f"{self.partner}: bulk operation {operation.get('id')} is gone from the shop")
            operation = found
        return operation

    def download(self, url: str, staged: BulkFile) -> None:
        """Stream the JSONL into `staged`, line by line. A bare session: the URL is presigned on another host, and
        the shop's token must never go there. A malformed line is kept as an error for landing to quarantine."""
        try:
            with requests.Session() as bare, bare.get(url, stream=True, timeout=(10, 120)) as response:
                if not response.ok:
                    raise SourceError(f"{self.partner}: the bulk result at {bare_url(url)} answered "
                                      f"{response.status_code}: it may have expired; rerun to start a new operation")
                for number, line in enumerate(response.iter_lines(), start=1):
                    if line.strip():
                        staged.add(number, line)
        except requests.RequestException as exc:
            raise SourceError(f"{self.partner}: downloading the bulk result from {bare_url(url)} failed "
                              f"({type(exc).__name__}): rerun (ingestion resumes from the stored cursor)") from None
        staged.commit()
        if staged.orphans():
            self.warnings.append(f"{self.partner}: {staged.orphans()} child line(s) of the bulk result named no order "
                                 "in it and were ignored")

    def read(self, staged: BulkFile, hold: bool) -> Iterator[Page]:
        number = 0
        for records in staged.orders(self.page_size):
            self.complete_refunds(records)
            number += 1
            yield Page(number=number, url=f"bulk result page {number}", records=records, hold_cursor=hold)

    def complete_refunds(self, orders: list) -> None:
        """Each refund's line items by `nodes(ids:)` (a bulk query cannot reach them), then their next pages."""
        refunds = {r["id"]: r for o in orders if isinstance(o, dict) for r in o.get("refunds") or []
                   if isinstance(r, dict) and isinstance(r.get("id"), str)}
        ids = list(refunds)
        for start in range(0, len(ids), REFUNDS_PER_QUERY):
            batch = ids[start:start + REFUNDS_PER_QUERY]
            data, _ = self.client.query(REFUNDS_BY_ID, {"ids": batch, "first": REFUND_LINES_IN_BATCH},
                                        expected_cost=len(batch) * (3 + REFUND_LINES_IN_BATCH * 4))
            for node in data.get("nodes") or []:
                if isinstance(node, dict) and node.get("id") in refunds:
                    refunds[node["id"]]["refundLineItems"] = node.get("refundLineItems")
            missing = [i for i in batch if "refundLineItems" not in refunds[i]]
            if missing:
                raise SourceError(f"{self.partner}: refunds {', '.join(missing[:3])} were not found by id; the orders "
                                  "holding them were not landed: rerun")
        for refund in refunds.values():
            _complete(self.client, refund, "refundLineItems", REFUND_LINES_QUERY, 2 + REFUND_LINES_PAGE * 4)


def _same_query(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


class BulkFile:
    """A bulk result staged on disk (SQLite): orders by `updatedAt`, child lines by their parent's id."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(
            "create table parents (gid text primary key, updated text, legacy text, line integer, doc text);"
            "create table children (parent text, line integer, doc text);"
            "create table bad (line integer, reason text);")

    def add(self, number: int, raw: bytes) -> None:
        try:
            node = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.db.execute("insert into bad values (?, ?)", (number, f"bulk result line {number} is not JSON"))
            return
        if not isinstance(node, dict):
            self.db.execute("insert into bad values (?, ?)",
                            (number, f"bulk result line {number} is {kind_of(node)}, not an object"))
        elif node.get("__parentId"):
            self.db.execute("insert into children values (?, ?, ?)", (str(node["__parentId"]), number, raw))
        elif not isinstance(node.get("id"), str):
            self.db.execute("insert into bad values (?, ?)", (number, f"bulk result line {number} has no `id`"))
        else:  # a repeated id keeps its last line
            updated = node.get("updatedAt") if isinstance(node.get("updatedAt"), str) else ""
            self.db.execute("insert or replace into parents values (?, ?, ?, ?, ?)",
                            (node["id"], _sortable(updated), str(node.get("legacyResourceId")), number, raw))

    def commit(self) -> None:
        self.db.execute("create index children_parent on children (parent, line)")
        self.db.commit()

    def orphans(self) -> int:
        return self.db.execute("select count(*) from children c where not exists "
                               "(select 1 from parents p where p.gid = c.parent)").fetchone()[0]

    def orders(self, size: int) -> Iterator[list]:
        """Pages of whole orders (line items regrouped under `lineItems.nodes`), oldest change first; unreadable
        lines first, as records landing quarantines."""
        bad = [{LINE_ERROR: reason} for _, reason in self.db.execute("select line, reason from bad order by line")]
        for start in range(0, len(bad), size):
            yield bad[start:start + size]
        rows = self.db.execute("select gid, doc from parents order by updated, length(legacy), legacy, line")
        while True:
            chunk = rows.fetchmany(size)
            if not chunk:
                return
            orders = []
            for gid, doc in chunk:
                order = orjson.loads(doc)
                lines = [orjson.loads(c) for (c,) in self.db.execute(
                    "select doc from children where parent = ? order by line", (gid,))]
                for line in lines:
                    line.pop("__parentId", None)
                order["lineItems"] = {"nodes": [c for c in lines if str(c.get("id", "")).startswith(
                    "gid://shopify/LineItem/")], "pageInfo": {"hasNextPage": False, "endCursor": None}}
                orders.append(order)
            yield orders

    def close(self) -> None:
        self.db.close()


def _sortable(value: str) -> str:
    """An ISO timestamp as sortable UTC text (offsets differ); unreadable ones sort first (landing refuses them)."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return ""


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
