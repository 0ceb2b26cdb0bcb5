"""Shopify's GraphQL Admin API, one call at a time: the calculated-cost bucket kept from biting, THROTTLED and HTTP
429/5xx retried on the injected clock, `errors` turned into messages naming the partner, and connections completed
page by page (connectors/shopify_graphql.py and connectors/shopify_bulk.py build on it).

Throttling (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): every answer carries
`extensions.cost` with `requestedQueryCost` and `throttleStatus {maximumAvailable, currentlyAvailable,
restoreRate}`. `CostBudget` keeps that reading and waits, on the injected clock, until the bucket has restored enough
for the next query's cost; a `THROTTLED` answer (HTTP 200, an error code, no data) waits the same way and retries;
HTTP 429 and 5xx are retried with Retry-After or backoff. A single query may not cost more than 1000 points
(`MAX_COST_EXCEEDED`): callers choose page sizes for that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import requests

from connectors.clock import SYSTEM_CLOCK, Clock
from connectors.errors import SourceError, SourceRef, bare_url, check_response, describe_transport_error
from connectors.http import ForeignOriginError
from connectors.pii import mask_addresses

API_VERSION = "2025-10"
MAX_QUERY_COST = 1000  # a single query may not cost more (MAX_COST_EXCEEDED)
THROTTLE_RETRIES = 10
CONNECTION_PAGE = 200  # nodes per page when completing a connection: 2 + 200 x 4 points stays under 1000
MONEY = "shopMoney { amount currencyCode }"
REFUND_LINE = f"id quantity subtotalSet {{ {MONEY} }} lineItem {{ id }}"
REFUND_LINES_QUERY = f"""query AllianceRefundLines($id: ID!, $after: String, $first: Int!) {{
  node(id: $id) {{
    ... on Refund {{ refundLineItems(first: $first, after: $after) {{ pageInfo {{ hasNextPage endCursor }}
                     nodes {{ {REFUND_LINE} }} }} }}
  }}
}}"""


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
                requested = as_int(cost.get("requestedQueryCost")) if isinstance(cost, dict) else None
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
        """One POST, retried on 429/5xx and on connections that fail or answers cut short: every query alliance sends
        reads, and its one mutation (bulkOperationRunQuery) is safe to repeat (a running operation is adopted)."""
        attempt = 0
        while True:
            try:
                response = self.session.post(self.url, json=payload, headers={
                    "X-Shopify-Access-Token": self.token, "Content-Type": "application/json"})
                response.content  # noqa: B018 - read the body now, inside the retry
            except ForeignOriginError as exc:
                raise describe_transport_error(exc, self.url, self.ref) from None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if attempt >= self.retries:
                    raise describe_transport_error(exc, self.url, self.ref) from None
                attempt += 1
                self.clock.sleep(min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))
                continue
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
            return as_int(ext.get("cost"))
    return None


def as_int(value: object) -> int | None:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", "")), 120.0))
    except ValueError:
        return None


def complete_connection(client: GraphqlClient, node: dict, key: str, query: str, cost: float) -> None:
    """Follow `node[key]`'s pageInfo with `query` (a `node(id:)` page of that connection) until it has no next page."""
    lines = node.get(key)
    if not isinstance(lines, dict) or not isinstance(lines.get("nodes"), list):
        return
    info = lines.get("pageInfo") or {}
    while isinstance(info, dict) and info.get("hasNextPage") and info.get("endCursor"):
        data, _ = client.query(query, {"id": node.get("id"), "after": info["endCursor"], "first": CONNECTION_PAGE},
                               expected_cost=cost)
        more = (data.get("node") or {}).get(key) or {}
        lines["nodes"].extend(more.get("nodes") or [])
        info = more.get("pageInfo") or {}
    lines["pageInfo"] = {"hasNextPage": False, "endCursor": None}
