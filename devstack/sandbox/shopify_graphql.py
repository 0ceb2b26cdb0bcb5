"""The sandbox's Shopify GraphQL Admin API: `POST /<partner>/admin/api/2025-10/graphql.json` over the same world data
the REST endpoint serves, with calculated query cost, the leaky-bucket throttle and bulk query operations.

Why a real GraphQL engine (graphql-core) and a schema: the connector's queries are parsed and validated as Shopify
would, so a misspelt field or a wrong argument fails here as it would there, with `errors` in an HTTP 200 answer.

What it models, from shopify.dev (README "Shopify GraphQL" cites each page):
- the schema subset alliance reads: `orders(first, after, query, sortKey, reverse)` (only `updated_at:>=` searches),
  `Order` with money bags (`shopMoney.amount` a Decimal string such as "20.0"), `legacyResourceId` as a string,
  `refunds` a plain list whose `refundLineItems` is a connection, `node(id:)`/`nodes(ids:)`, `currentBulkOperation`,
  `bulkOperationRunQuery`;
- cost (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): scalar and enum 0, object 1, a
  connection 2 + first x its node's cost, a mutation 10; a list field of objects counts its `first` (1 without);
  a query over 1000 points is refused (`MAX_COST_EXCEEDED`); the requested cost is charged up front and what the
  answer did not use is given back (actual cost: 1 per object returned, 2 per connection); the bucket holds `maximum`
  points and restores
  `restore_rate` per second (standard plan: 100/s); a query that does not fit is answered HTTP 200 with
  `errors[0].extensions.code = THROTTLED`, no `data`, and `actualQueryCost` null;
- orders older than 60 days are hidden unless the token has `read_all_orders` (`SandboxOptions.graphql_all_orders`);
- bulk operations: one running query per shop (`OPERATION_IN_PROGRESS`), no connection inside a list field, at most
  five connections nested at most two deep; status moves CREATED -> RUNNING -> COMPLETED over polls; the JSONL has
  one line per node, nested connections' nodes as their own lines with `__parentId`, children after their parent but
  not always right below it; the file is served from a presigned URL on ANOTHER port (no token accepted there).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
)
from graphql.language import FieldNode, OperationDefinitionNode

from devstack.sandbox.world import parse_ts

API_VERSION = "2025-10"
MAX_QUERY_COST = 1000
MUTATION_COST = 10
HIDDEN_AFTER = timedelta(days=60)  # without read_all_orders only the last 60 days of orders are visible

SDL = """
scalar DateTime
scalar Decimal
scalar URL
scalar UnsignedInt64

interface Node { id: ID! }

enum CurrencyCode { USD EUR GBP CAD AUD JPY CHF SEK DKK NOK NZD }
enum OrderDisplayFinancialStatus { AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED }
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }
enum OrderSortKeys { CREATED_AT ID NUMBER PROCESSED_AT RELEVANCE TOTAL_PRICE UPDATED_AT }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationUserErrorCode { INVALID OPERATION_IN_PROGRESS }

type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }

type CustomerVisit implements Node { id: ID! landingPage: URL referralCode: String occurredAt: DateTime! }
type CustomerJourneySummary { ready: Boolean! firstVisit: CustomerVisit lastVisit: CustomerVisit }
type CustomerEmailAddress { emailAddress: String }
type Customer implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  email: String @deprecated(reason: "Use `defaultEmailAddress.emailAddress` instead.")
  defaultEmailAddress: CustomerEmailAddress
}
type LineItem implements Node { id: ID! quantity: Int! }
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }
type RefundLineItem { id: ID! quantity: Int! subtotalSet: MoneyBag! lineItem: LineItem! }
type RefundLineItemEdge { cursor: String! node: RefundLineItem! }
type RefundLineItemConnection { edges: [RefundLineItemEdge!]! nodes: [RefundLineItem!]! pageInfo: PageInfo! }
type Refund implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  createdAt: DateTime
  totalRefundedSet: MoneyBag!
  refundLineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean): RefundLineItemConnection!
}
type Order implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  closedAt: DateTime
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  test: Boolean!
  email: String
  currencyCode: CurrencyCode!
  presentmentCurrencyCode: CurrencyCode!
  displayFinancialStatus: OrderDisplayFinancialStatus
  subtotalPriceSet: MoneyBag
  currentSubtotalPriceSet: MoneyBag!
  totalPriceSet: MoneyBag!
  discountCodes: [String!]!
  landingPageUrl: URL @deprecated(reason: "Use `customerJourneySummary.lastVisit.landingPage` instead.")
  customerJourneySummary: CustomerJourneySummary
  customer: Customer
  refunds(first: Int): [Refund!]!
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean): LineItemConnection!
}
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type BulkOperation implements Node {
  id: ID!
  status: BulkOperationStatus!
  errorCode: BulkOperationErrorCode
  createdAt: DateTime!
  completedAt: DateTime
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  query: String!
  type: BulkOperationType!
}
type BulkOperationUserError { field: [String!] message: String! code: BulkOperationUserErrorCode }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }

type AccessScope { handle: String! }
type AppInstallation implements Node { id: ID! accessScopes: [AccessScope!]! }

enum CountPrecision { AT_LEAST EXACT }
type Count { count: Int! precision: CountPrecision! }

type QueryRoot {
  currentAppInstallation: AppInstallation!
  ordersCount(query: String, limit: Int): Count
  orders(first: Int, after: String, last: Int, before: String, query: String, sortKey: OrderSortKeys,
         reverse: Boolean): OrderConnection!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  currentBulkOperation(type: BulkOperationType): BulkOperation
}
type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean): BulkOperationRunQueryPayload
}
schema { query: QueryRoot mutation: Mutation }
"""

SCHEMA = build_schema(SDL)


def _resolve_node_type(value: Any, *_: Any) -> str:
    return value["__typename"]


SCHEMA.get_type("Node").resolve_type = _resolve_node_type  # type: ignore[union-attr]


# --- the world's orders as GraphQL `Order` objects ------------------------------------------------------------

def decimal_text(value: object) -> str:
    """A Decimal as Shopify's GraphQL serialises it: a string, trailing zeros trimmed to one decimal ("20.0")."""
    number = Decimal(str(value))
    text = format(number.normalize(), "f")
    return text if "." in text else f"{text}.0"


def utc_z(text: object) -> str | None:
    """An ISO timestamp (any offset) as GraphQL's DateTime: UTC with `Z`."""
    if text in (None, ""):
        return None
    return parse_ts(str(text)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: object, currency: str) -> dict:
    money = {"amount": decimal_text(amount), "currencyCode": currency}
    return {"shopMoney": money, "presentmentMoney": dict(money)}


def _gid(kind: str, legacy: object) -> str:
    return f"gid://shopify/{kind}/{legacy}"


def landing_url(partner_id: str, landing_site: object) -> str | None:
    """GraphQL gives the landing page as a full URL; REST's `landing_site` may be a path on the shop."""
    if not isinstance(landing_site, str) or not landing_site.strip():
        return None
    if landing_site.startswith("/"):
        return f"https://{partner_id}.example.test{landing_site}"
    return landing_site


def to_graphql(partner_id: str, order: dict) -> dict:
    """A world (REST-shaped) Shopify order as the GraphQL Admin API's `Order` (every field of the SDL above).

    One order in seven has no journey summary yet (`ready: false`, no visits): only the deprecated `landingPageUrl`
    says where the shopper landed, so a connector must fall back to it.
    """
    currency = order.get("currency") or "USD"
    legacy = order.get("id")
    landing = landing_url(partner_id, order.get("landing_site"))
    journey: dict | None
    if isinstance(legacy, int) and legacy % 7 == 0:
        journey = {"ready": False, "firstVisit": None, "lastVisit": None}
    else:
        visit = {"__typename": "CustomerVisit", "id": _gid("CustomerVisit", legacy), "landingPage": landing,
                 "referralCode": None, "occurredAt": utc_z(order.get("created_at"))}
        journey = {"ready": True, "firstVisit": visit, "lastVisit": visit}
    customer = order.get("customer")
    refunds = []
    for refund in order.get("refunds") or []:
        lines = [{
            "id": _gid("RefundLineItem", item.get("id")), "quantity": item.get("quantity") or 0,
            "subtotalSet": _money(item.get("subtotal") or "0", currency),
            "lineItem": {"__typename": "LineItem", "id": _gid("LineItem", item.get("line_item_id")),
                         "quantity": item.get("quantity") or 0},
        } for item in refund.get("refund_line_items") or []]
        total = sum((Decimal(str(i.get("subtotal") or "0")) for i in refund.get("refund_line_items") or []),
                    Decimal(0))
        refunds.append({"__typename": "Refund", "id": _gid("Refund", refund.get("id")),
                        "legacyResourceId": str(refund.get("id")), "createdAt": utc_z(refund.get("created_at")),
                        "totalRefundedSet": _money(total, currency), "_lines": lines})
    status = order.get("financial_status")
    line_items = [{"__typename": "LineItem", "id": _gid("LineItem", line.get("id")), "quantity": line.get("quantity")}
                  for line in order.get("line_items") or [] if isinstance(line, dict)]
    return {
        "_line_items": line_items,
        "__typename": "Order",
        "id": _gid("Order", legacy),
        "legacyResourceId": str(legacy),
        "name": order.get("name") or f"#{order.get('order_number')}",
        "createdAt": utc_z(order.get("created_at")),
        "updatedAt": utc_z(order.get("updated_at")),
        "processedAt": utc_z(order.get("processed_at") or order.get("created_at")),
        "closedAt": utc_z(order.get("closed_at")),
        "cancelledAt": utc_z(order.get("cancelled_at")),
        "cancelReason": (order.get("cancel_reason") or "").upper() or None,
        "test": bool(order.get("test")),
        "email": order.get("email"),
        "currencyCode": currency,
        "presentmentCurrencyCode": order.get("presentment_currency") or currency,
        "displayFinancialStatus": status.upper() if isinstance(status, str) else None,
        "subtotalPriceSet": _money(order.get("subtotal_price") or "0", currency),
        "currentSubtotalPriceSet": _money(order.get("current_subtotal_price") or order.get("subtotal_price") or "0",
                                          currency),
        "totalPriceSet": _money(order.get("total_price") or "0", currency),
        "discountCodes": [d.get("code") for d in order.get("discount_codes") or [] if isinstance(d, dict)],
        "landingPageUrl": landing,
        "customerJourneySummary": journey,
        "customer": None if not isinstance(customer, dict) else {
            "__typename": "Customer", "id": _gid("Customer", customer.get("id")),
            "legacyResourceId": str(customer.get("id")), "email": customer.get("email"),
            "defaultEmailAddress": {"emailAddress": customer.get("email")},
        },
        "refunds": refunds,
    }


def public(order: dict) -> dict:
    """An Order as a client sees it with every field selected (refund line items as a `nodes` connection)."""
    out = copy.deepcopy(order)
    out.pop("__typename", None)
    out["lineItems"] = {"nodes": [{"id": line["id"], "quantity": line["quantity"]} for line in out.pop("_line_items")],
                        "pageInfo": {"hasNextPage": False, "endCursor": None}}
    for refund in out["refunds"]:
        refund.pop("__typename", None)
        refund["refundLineItems"] = {"nodes": refund.pop("_lines"),
                                     "pageInfo": {"hasNextPage": False, "endCursor": None}}
        for line in refund["refundLineItems"]["nodes"]:
            line["lineItem"].pop("__typename", None)
    if out.get("customer"):
        out["customer"].pop("__typename", None)
    journey = out.get("customerJourneySummary") or {}
    for key in ("firstVisit", "lastVisit"):
        if journey.get(key):
            journey[key].pop("__typename", None)
    return out


# --- connections and search ----------------------------------------------------------------------------------

def _cursor(key: object) -> str:
    import base64
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _uncursor(text: str) -> Any:
    import base64
    try:
        return json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, UnicodeDecodeError):
        raise GraphQLError("Invalid cursor for current pagination sort.") from None


def connection(items: list[tuple[Any, dict]], first: int | None, after: str | None) -> dict:
    """A Relay connection over (sort key, node) pairs already in order (`first` None: all, as in a bulk query)."""
    if first is not None and not 0 <= first <= 250:
        raise GraphQLError("The connection's `first` must be between 0 and 250.")
    if after is not None:
        start = _uncursor(after)
        items = [(k, n) for k, n in items if k > start]
    page = items if first is None else items[:first]
    edges = [{"cursor": _cursor(k), "node": n} for k, n in page]
    return {"edges": edges, "nodes": [n for _, n in page],
            "pageInfo": {"hasNextPage": len(items) > len(page), "hasPreviousPage": after is not None,
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None}}


def search_since(query: str | None) -> datetime | None:
    """The `updated_at:>=` bound of an orders search (quoted or not); other terms are refused as unsupported here."""
    if not query or not query.strip():
        return None
    term = query.strip()
    prefix = "updated_at:>="
    if not term.startswith(prefix):
        raise GraphQLError(f"the sandbox supports only `{prefix}'<ISO time>'` searches")
    value = term[len(prefix):].strip().strip("'\"")
    try:
        return parse_ts(value) if "T" in value else datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise GraphQLError(f"invalid date in search query `{term}`") from None


def _order_sort_key(order: dict) -> list:
    return [order["updatedAt"], int(order["legacyResourceId"])]


# --- cost ------------------------------------------------------------------------------------------------------

def _argument(node: FieldNode, name: str, variables: dict) -> Any:
    for arg in node.arguments or ():
        if arg.name.value == name:
            value = arg.value
            if value.kind == "variable":
                return variables.get(value.name.value)  # type: ignore[attr-defined]
            if value.kind == "int_value":
                return int(value.value)  # type: ignore[attr-defined]
    return None


def _selection_cost(parent: GraphQLObjectType, selections: Any, variables: dict, fragments: dict) -> int:
    total = 0
    for selection in selections or ():
        if selection.kind == "field":
            total += _field_cost(parent, selection, variables, fragments)
        elif selection.kind == "inline_fragment":
            on = SCHEMA.get_type(selection.type_condition.name.value) if selection.type_condition else parent
            total = max(total, _selection_cost(on, selection.selection_set.selections, variables, fragments))
        elif selection.kind == "fragment_spread":
            fragment = fragments[selection.name.value]
            on = SCHEMA.get_type(fragment.type_condition.name.value)
            total += _selection_cost(on, fragment.selection_set.selections, variables, fragments)
    return total


def _field_cost(parent: Any, node: FieldNode, variables: dict, fragments: dict) -> int:
    if node.name.value.startswith("__"):
        return 0
    definition = parent.fields.get(node.name.value) if hasattr(parent, "fields") else None
    if definition is None:
        return 0
    named = get_named_type(definition.type)
    if not hasattr(named, "fields") and not hasattr(named, "resolve_type"):
        return 0  # scalar or enum
    children = node.selection_set.selections if node.selection_set else ()
    if named.name.endswith("Connection"):
        first = _argument(node, "first", variables) or _argument(node, "last", variables) or 0
        per_node = 0
        for child in children:
            if child.kind == "field" and child.name.value in ("edges", "nodes"):
                inner = child.selection_set.selections if child.selection_set else ()
                if child.name.value == "edges":
                    inner = [c for e in inner if e.kind == "field" and e.name.value == "node"
                             for c in (e.selection_set.selections if e.selection_set else ())]
                node_type = SCHEMA.get_type(named.name[: -len("Connection")])
                per_node = max(per_node, 1 + _selection_cost(node_type, inner, variables, fragments))
        return 2 + first * per_node
    element = 1 + _selection_cost(named, children, variables, fragments)
    inner_type = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
    if isinstance(inner_type, GraphQLList):
        return (_argument(node, "first", variables) or 1) * element
    if node.name.value == "nodes" and parent.name == "QueryRoot":
        return len(_argument_list(node, "ids", variables)) * element
    return element


def _argument_list(node: FieldNode, name: str, variables: dict) -> list:
    for arg in node.arguments or ():
        if arg.name.value == name:
            if arg.value.kind == "variable":
                return list(variables.get(arg.value.name.value) or [])  # type: ignore[attr-defined]
            return list(getattr(arg.value, "values", []))
    return []


def requested_cost(document: Any, variables: dict) -> int:
    """The requested cost of a parsed, valid document's first operation (see the module docstring)."""
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    if operation.operation.value == "mutation":
        return MUTATION_COST
    return _selection_cost(SCHEMA.query_type, operation.selection_set.selections, variables, fragments)


def actual_cost(data: Any) -> int:
    """What a result actually cost: 1 per object returned, 2 per connection (rate-limit page: "actual cost")."""
    if isinstance(data, list):
        return sum(actual_cost(item) for item in data)
    if not isinstance(data, dict):
        return 0
    own = 2 if "pageInfo" in data or "edges" in data else 1
    return own + sum(actual_cost(value) for value in data.values())


# --- bulk operations -------------------------------------------------------------------------------------------

@dataclass
class BulkOperation:
    id: str
    query: str
    created_at: datetime
    status: str = "CREATED"
    polls: int = 0
    error_code: str | None = None
    url: str | None = None
    partial_url: str | None = None
    object_count: int = 0
    root_count: int = 0
    file_size: int | None = None
    completed_at: datetime | None = None

    def as_graphql(self) -> dict:
        return {"__typename": "BulkOperation", "id": self.id, "status": self.status, "errorCode": self.error_code,
                "createdAt": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "completedAt": self.completed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.completed_at else None,
                "objectCount": str(self.object_count), "rootObjectCount": str(self.root_count),
                "fileSize": None if self.file_size is None else str(self.file_size),
                "url": self.url, "partialDataUrl": self.partial_url, "query": self.query, "type": "QUERY"}


def bulk_query_problem(document: Any) -> str | None:
    """Why Shopify would refuse this bulk query, or None: a connection inside a list field, more than five
    connections, connections nested more than two deep, or no connection at all."""
    problems: list[str] = []
    count = 0

    def walk(parent: Any, selections: Any, depth: int, in_list: bool) -> None:
        nonlocal count
        for sel in selections or ():
            if sel.kind == "inline_fragment":
                walk(SCHEMA.get_type(sel.type_condition.name.value) if sel.type_condition else parent,
                     sel.selection_set.selections, depth, in_list)
                continue
            if sel.kind != "field" or not hasattr(parent, "fields") or sel.name.value not in parent.fields:
                continue
            definition = parent.fields[sel.name.value]
            named = get_named_type(definition.type)
            inner = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
            children = sel.selection_set.selections if sel.selection_set else ()
            if named.name.endswith("Connection"):
                count += 1
                if in_list:
                    problems.append("Queries that contain a connection field within a list field are not currently "
                                    "supported.")
                if depth + 1 > 2:
                    problems.append("Bulk queries cannot contain connections with a nesting depth greater than 2.")
                node_type = SCHEMA.get_type(named.name[: -len("Connection")])
                for child in children:
                    if child.kind == "field" and child.name.value == "edges":
                        for e in child.selection_set.selections:
                            if e.kind == "field" and e.name.value == "node":
                                walk(node_type, e.selection_set.selections, depth + 1, in_list)
                    elif child.kind == "field" and child.name.value == "nodes":
                        walk(node_type, child.selection_set.selections, depth + 1, in_list)
            elif hasattr(named, "fields"):
                walk(named, children, depth, in_list or isinstance(inner, GraphQLList))

    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    for sel in operation.selection_set.selections:
        if sel.kind == "field" and sel.name.value in ("node", "nodes"):
            return "Bulk queries cannot contain a top level `node` or `nodes` field."
    walk(SCHEMA.query_type, operation.selection_set.selections, 0, False)
    if count == 0:
        return "Bulk queries must contain at least one connection."
    if count > 5:
        return "Bulk queries cannot contain more than 5 connections."
    return problems[0] if problems else None


def jsonl_lines(result: dict, seed: int) -> list[dict]:
    """A bulk query's result as Shopify's JSONL lines: each connection node is one line; nodes of a nested connection
    become lines of their own with `__parentId`, emitted after their parent but interleaved with later parents (as
    without `groupObjects`), deterministically for a seed."""
    roots: list[dict] = []
    children: list[dict] = []

    def flatten(node: dict, parent_id: str | None) -> dict:
        line: dict = {}
        for key, value in node.items():
            if isinstance(value, dict) and ("edges" in value or "nodes" in value) and "pageInfo" not in value \
                    and isinstance(value.get("edges", value.get("nodes")), list):
                items = value.get("nodes") if "nodes" in value else [e["node"] for e in value["edges"]]
                for child in items:
                    children.append(flatten(child, node.get("id")))
            else:
                line[key] = value
        if parent_id is not None:
            line["__parentId"] = parent_id
        return line

    for value in result.values():
        items = value.get("nodes") if "nodes" in value else [e["node"] for e in value.get("edges", [])]
        for node in items:
            roots.append(flatten(node, None))
    # children go out after their parent, some right below it, some a few parents later
    out: list[dict] = []
    pending: list[tuple[int, dict]] = []
    by_parent: dict[str, list[dict]] = {}
    for child in children:
        by_parent.setdefault(child["__parentId"], []).append(child)
    for i, root in enumerate(roots):
        out.append(root)
        for child in by_parent.get(root.get("id"), []):
            delay = int(hashlib.sha256(f"{seed}:{child.get('id')}".encode()).hexdigest(), 16) % 3
            pending.append((i + delay, child))
        due = [c for at, c in pending if at <= i]
        pending = [(at, c) for at, c in pending if at > i]
        out.extend(due)
    out.extend(c for _, c in pending)
    return out


# --- the API ---------------------------------------------------------------------------------------------------

@dataclass
class GraphqlShop:
    """One shop's GraphQL state: its cost bucket and its bulk operations."""

    available: float | None = None
    last: float = 0.0
    bulk: list[BulkOperation] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # presigned token -> JSONL bytes
    lock: threading.Lock = field(default_factory=threading.Lock)


class GraphqlApi:
    """Answers one GraphQL request for one shop: (HTTP status, body). The HTTP plumbing is the sandbox server's."""

    def __init__(self, world: Any, options: Any, file_base: str | None = None) -> None:
        self.world = world
        self.options = options
        self.file_base = file_base  # the presigned-file server's URL (another port), set when it starts
        self.shops: dict[str, GraphqlShop] = {}
        self._lock = threading.Lock()
        self.throttled: dict[str, int] = {}
        self._kept: list[tuple[GraphqlShop, str]] = []
        self._orders: dict[str, list[dict]] = {}  # static_world: each shop's orders, converted once
        self.costs: dict[str, list[int]] = {}  # partner -> requested cost of each answered query (tests, bench)

    def shop(self, partner_id: str) -> GraphqlShop:
        with self._lock:
            return self.shops.setdefault(partner_id, GraphqlShop())

    # the leaky bucket, in points
    def _take(self, shop: GraphqlShop, cost: int) -> tuple[bool, float]:
        opts = self.options
        now = opts.clock.monotonic()
        with shop.lock:
            level = opts.graphql_maximum if shop.available is None else shop.available
            level = round(min(opts.graphql_maximum, level + (now - shop.last) * opts.graphql_restore_rate), 6)
            allowed = cost <= level
            if allowed:
                level -= cost
            shop.available, shop.last = level, now
        return allowed, level

    def _refund(self, shop: GraphqlShop, points: float) -> float:
        """Give back what a query was charged beyond its actual cost (Shopify charges the requested cost up front)."""
        with shop.lock:
            shop.available = min(self.options.graphql_maximum, (shop.available or 0.0) + points)
            return shop.available

    def _cost(self, requested: int | None, actual: int | None, available: float) -> dict:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": float(self.options.graphql_maximum),
                                   "currentlyAvailable": float(int(available)),
                                   "restoreRate": float(self.options.graphql_restore_rate)}}

    def answer(self, partner_id: str, body: object) -> tuple[int, dict]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return 400, {"errors": {"variables": "must be an object"}}
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return 200, {"errors": [exc.formatted]}
        problems = validate(SCHEMA, document)
        if problems:
            return 200, {"errors": [p.formatted for p in problems]}
        shop = self.shop(partner_id)
        cost = requested_cost(document, variables)
        if cost > MAX_QUERY_COST:
            _, available = self._take(shop, 0)
            return 200, {"errors": [{"message": f"Query cost is {cost}, which exceeds the single query max cost "
                                                f"limit ({MAX_QUERY_COST}).",
                                     "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost,
                                                    "maxCost": MAX_QUERY_COST}}],
                         "extensions": {"cost": self._cost(cost, None, available)}}
        allowed, available = self._take(shop, cost)
        if not allowed:
            with self._lock:
                self.throttled[partner_id] = self.throttled.get(partner_id, 0) + 1
            return 200, {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/limits"}}],
                "extensions": {"cost": self._cost(cost, None, available)}}
        with self._lock:
            self.costs.setdefault(partner_id, []).append(cost)
        result = execute_with(document, _Root(self, partner_id), variables)
        out: dict = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        actual = min(cost, actual_cost(result.data))
        available = self._refund(shop, cost - actual)
        out["extensions"] = {"cost": self._cost(cost, actual, available)}
        return 200, out

    # data
    def orders(self, partner_id: str) -> list[dict]:
        """The shop's orders as GraphQL objects, oldest change first, hidden past 60 days without read_all_orders."""
        if self.options.static_world:  # a benchmark's world never changes: convert it once
            with self._lock:
                if partner_id not in self._orders:
                    self._orders[partner_id] = sorted((to_graphql(partner_id, o) for o in
                                                       self.world.orders.get(partner_id, [])), key=_order_sort_key)
                orders = self._orders[partner_id]
            if self.options.graphql_all_orders:
                return orders
        with self.world.lock:
            orders = [to_graphql(partner_id, o) for o in self.world.orders.get(partner_id, [])
                      if isinstance(o, dict) and "id" in o and "date_modified_gmt" not in o]
        if not self.options.graphql_all_orders:
            horizon = self.options.graphql_now() - HIDDEN_AFTER
            orders = [o for o in orders if parse_ts(o["createdAt"]) >= horizon]
        return sorted(orders, key=_order_sort_key)

    def find(self, partner_id: str, gid: str) -> dict | None:
        if gid.startswith("gid://shopify/BulkOperation/"):
            op = next((b for b in self.shop(partner_id).bulk if b.id == gid), None)
            return op.as_graphql() if op else None
        for order in self.orders(partner_id):
            if order["id"] == gid:
                return order
            for refund in order["refunds"]:
                if refund["id"] == gid:
                    return refund
        return None

    # bulk
    def run_bulk(self, partner_id: str, query: str) -> dict:
        shop = self.shop(partner_id)
        try:
            document = parse(query)
        except GraphQLError as exc:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": exc.message,
                                                           "code": "INVALID"}]}
        problems = validate(SCHEMA, document)
        reason = problems[0].message if problems else bulk_query_problem(document)
        if reason:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": reason, "code": "INVALID"}]}
        with shop.lock:
            running = [b for b in shop.bulk if b.status in ("CREATED", "RUNNING")]
            if running:
                return {"bulkOperation": None, "userErrors": [{
                    "field": None, "code": "OPERATION_IN_PROGRESS",
                    "message": f"A bulk query operation for this app and shop is already in progress: "
                               f"{running[0].id}."}]}
            number = sum(len(s.bulk) for s in self.shops.values()) + 1
            op = BulkOperation(f"gid://shopify/BulkOperation/{720000 + number}", query, self.options.graphql_now())
            shop.bulk.append(op)
            if self.options.bulk_background:
                op.status = "RUNNING"
                threading.Thread(target=self._finish, args=(partner_id, op), daemon=True).start()
        return {"bulkOperation": op.as_graphql(), "userErrors": []}

    def poll(self, partner_id: str, op: BulkOperation) -> None:
        """Each poll moves an operation on: CREATED -> RUNNING -> ... -> COMPLETED (or the scripted failure); with
        `bulk_background` the operation runs in a thread from its creation and polls only read its status."""
        if self.options.bulk_background:
            return
        shop = self.shop(partner_id)
        with shop.lock:
            if op.status not in ("CREATED", "RUNNING"):
                return
            op.polls += 1
            if op.polls < self.options.bulk_polls:
                op.status = "RUNNING"
                return
        self._finish(partner_id, op)

    def _finish(self, partner_id: str, op: BulkOperation) -> None:
        """Run the operation's query over the shop's orders and store its JSONL (or the scripted failure)."""
        shop = self.shop(partner_id)
        lines = jsonl_lines(self.bulk_result(partner_id, op.query), self.world.seed)
        data = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
        failure = self.options.bulk_failure  # None | FAILED | EXPIRED | PARTIAL
        token = hashlib.sha256(f"{op.id}:{len(data)}".encode()).hexdigest()[:32]
        with shop.lock:
            op.object_count = len(lines)
            op.root_count = sum(1 for line in lines if "__parentId" not in line)
            op.completed_at = self.options.graphql_now()
            if failure == "FAILED":
                op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            elif failure == "EXPIRED":
                op.status = "EXPIRED"
            elif failure == "PARTIAL":
                self._keep(shop, token, data[: len(data) // 2])
                op.status, op.error_code = "FAILED", "TIMEOUT"
                op.partial_url = self._file_url(token)
            else:
                op.status = "COMPLETED"
                op.file_size = len(data)
                if data:
                    self._keep(shop, token, self.options.bulk_corrupt(data) if self.options.bulk_corrupt else data)
                    op.url = self._file_url(token)

    def _keep(self, shop: GraphqlShop, token: str, data: bytes) -> None:
        """Store a result file; only the newest `bulk_files_kept` of the sandbox stay (Shopify keeps 7 days')."""
        with self._lock:
            self._kept.append((shop, token))
            while len(self._kept) > self.options.bulk_files_kept:
                old_shop, old_token = self._kept.pop(0)
                old_shop.files.pop(old_token, None)
        shop.files[token] = data

    def bulk_result(self, partner_id: str, query: str) -> dict:
        """A bulk query's result, projected straight from the orders (the sandbox's stand-in for Shopify running the
        operation: graphql-core's executor is too slow for a 200k-order history, and the query was validated)."""
        operation = next(d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode))
        root = next(s for s in operation.selection_set.selections if s.kind == "field" and s.name.value == "orders")
        search = next((a.value.value for a in root.arguments or () if a.name.value == "query"), None)
        since = search_since(search)
        orders = [o for o in self.orders(partner_id) if since is None or parse_ts(o["updatedAt"]) >= since]
        node_selection = _node_selection(root.selection_set.selections)
        return {"orders": {"nodes": [_project(o, node_selection) for o in orders]}}

    def _file_url(self, token: str) -> str:
        return f"{self.file_base}/bulk/{token}.jsonl?X-Goog-Signature={token[:16]}"

    def file(self, token: str) -> bytes | None:
        for shop in list(self.shops.values()):
            if token in shop.files:
                return shop.files[token]
        return None


def _node_selection(selections: Any) -> list:
    """The node's selections of a connection field's selection set (`edges { node { ... } }` or `nodes { ... }`)."""
    for sel in selections or ():
        if sel.kind == "field" and sel.name.value == "nodes":
            return list(sel.selection_set.selections)
        if sel.kind == "field" and sel.name.value == "edges":
            for inner in sel.selection_set.selections:
                if inner.kind == "field" and inner.name.value == "node":
                    return list(inner.selection_set.selections)
    return []


_CONNECTIONS = {"lineItems": "_line_items", "refundLineItems": "_lines"}


def _project(value: Any, selections: list) -> Any:
    """`value` (a GraphQL object as a dict) reduced to the selected fields, connections as `{"nodes": [...]}`."""
    if isinstance(value, list):
        return [_project(item, selections) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict = {}
    for sel in selections:
        if sel.kind == "inline_fragment":
            if sel.type_condition is None or sel.type_condition.name.value == value.get("__typename"):
                out.update(_project(value, list(sel.selection_set.selections)))
            continue
        if sel.kind != "field":
            continue
        name = sel.name.value
        key = sel.alias.value if sel.alias else name
        if name in _CONNECTIONS:
            out[key] = {"nodes": [_project(item, _node_selection(sel.selection_set.selections))
                                  for item in value.get(_CONNECTIONS[name], [])]}
        elif sel.selection_set is not None:
            out[key] = _project(value.get(name), list(sel.selection_set.selections))
        else:
            out[key] = value.get(name)
    return out


class _Root:
    """Root resolvers for one request: graphql-core calls these attributes for the root fields."""

    def __init__(self, api: GraphqlApi, partner_id: str, bulk: bool = False) -> None:
        self.api, self.partner_id, self.bulk = api, partner_id, bulk

    def orders(self, _info: Any, first: int | None = None, after: str | None = None, query: str | None = None,
               sortKey: str | None = None, reverse: bool = False, **_: Any) -> dict:  # noqa: N803 - GraphQL name
        if first is None and not self.bulk:
            raise GraphQLError("you must provide one of first or last")
        since = search_since(query)
        orders = self.api.orders(self.partner_id)
        if since is not None:
            orders = [o for o in orders if parse_ts(o["updatedAt"]) >= since]
        if sortKey not in (None, "UPDATED_AT", "ID"):
            raise GraphQLError("the sandbox sorts orders by UPDATED_AT or ID only")
        pairs = [(_order_sort_key(o), _with_connections(o)) for o in orders]
        if reverse:
            pairs.reverse()
        return connection(pairs, first, after)

    def node(self, _info: Any, id: str) -> dict | None:  # noqa: A002 - GraphQL name
        found = self.api.find(self.partner_id, id)
        if found and found.get("__typename") == "BulkOperation":
            op = next(b for b in self.api.shop(self.partner_id).bulk if b.id == id)
            self.api.poll(self.partner_id, op)
            return op.as_graphql()
        return _with_connections(found) if found else None

    def ordersCount(self, _info: Any, query: str | None = None, limit: int | None = 10000) -> dict:  # noqa: N802
        """Shopify counts up to `limit` (10,000 by default) and says AT_LEAST beyond it."""
        since = search_since(query)
        count = sum(1 for o in self.api.orders(self.partner_id) if since is None or parse_ts(o["updatedAt"]) >= since)
        if limit is not None and count > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": count, "precision": "EXACT"}

    def currentAppInstallation(self, _info: Any) -> dict:  # noqa: N802 - GraphQL name
        scopes = ["read_orders"] + (["read_all_orders"] if self.api.options.graphql_all_orders else [])
        return {"__typename": "AppInstallation", "id": "gid://shopify/AppInstallation/1",
                "accessScopes": [{"handle": s} for s in scopes]}

    def nodes(self, _info: Any, ids: list[str]) -> list:
        if len(ids) > 250:
            raise GraphQLError("nodes: at most 250 ids")
        return [self.node(_info, i) for i in ids]

    def currentBulkOperation(self, _info: Any, type: str = "QUERY") -> dict | None:  # noqa: A002, N802
        ops = self.api.shop(self.partner_id).bulk
        if not ops or type != "QUERY":
            return None
        self.api.poll(self.partner_id, ops[-1])
        return ops[-1].as_graphql()

    def bulkOperationRunQuery(self, _info: Any, query: str, groupObjects: bool = False) -> dict:  # noqa: N802, N803
        return self.api.run_bulk(self.partner_id, query)


def _with_connections(node: dict) -> dict:
    """Attach the connection resolvers a node's nested connections need (refund line items)."""
    if node.get("__typename") == "Order":
        node = dict(node, refunds=[_with_connections(r) for r in node["refunds"]])
        return _OrderView(node)
    if node.get("__typename") == "Refund":
        return _RefundView(node)
    return node


class _OrderView(dict):
    """An Order dict whose `refunds(first:)` argument is honoured."""

    def refunds_for(self, first: int | None) -> list:
        return self["refunds"] if first is None else self["refunds"][:first]


class _RefundView(dict):
    """A Refund dict whose `refundLineItems(first, after)` is a connection."""


def _field_resolver(source: Any, info: Any, **args: Any) -> Any:
    """graphql-core's default resolver, plus the connection-valued and argument-taking fields of our dicts."""
    name = info.field_name
    if isinstance(source, _RefundView) and name == "refundLineItems":
        lines = source.get("_lines", [])
        return connection([(i, line) for i, line in enumerate(lines)], args.get("first"), args.get("after"))
    if isinstance(source, _OrderView) and name == "lineItems":
        lines = source.get("_line_items", [])
        return connection([(i, line) for i, line in enumerate(lines)], args.get("first"), args.get("after"))
    if isinstance(source, _OrderView) and name == "refunds":
        return source.refunds_for(args.get("first"))
    if isinstance(source, dict):
        return source.get(name)
    value = getattr(source, name, None)
    return value(info, **args) if callable(value) else value


def execute_with(document: Any, root: Any, variables: dict | None = None) -> Any:
    return execute(SCHEMA, document, root_value=root, variable_values=variables, field_resolver=_field_resolver)


def served_orders(world: Any) -> dict[str, list[dict]]:
    """Every storefront's orders as its API serves them: GraphQL `Order` objects (all fields, refund line items as
    `nodes`) for a shopify_graphql partner, the world's own shape otherwise. What an oracle is given to parse."""
    with world.lock:
        return {partner_id: [public(to_graphql(partner_id, o)) for o in orders]
                if world.partners.get(partner_id, {}).get("platform") == "shopify_graphql" else list(orders)
                for partner_id, orders in world.orders.items()}
