"""Shopify bulk query operations: a backfill of every order in one query, read back as pages of whole orders.

See `BulkOrders`; connectors/shopify_graphql.py decides when a pull is a backfill (and is the platform's file).
Documentation: https://shopify.dev/docs/api/usage/bulk-operations/queries and
https://shopify.dev/docs/api/admin-graphql/2025-10/objects/BulkOperation.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

from connectors.errors import SourceError, bare_url
from connectors.paging import Page
from connectors.pii import mask_addresses
from connectors.records import kind_of
from connectors.shopify_graphql_client import (
    CONNECTION_PAGE,
    REFUND_LINE,
    REFUND_LINES_QUERY,
    GraphqlClient,
    GraphqlError,
    complete_connection,
    search_since,
)

log = logging.getLogger("alliance.ingest")

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
REFUNDS_PER_QUERY = 60  # 60 refunds x (1 + 2 + 3 x 4) points stays under 1000
REFUND_LINES_IN_BATCH = 3  # most refunds have few lines; more come from RefundLines pages
BULK_POLL_MAX_SECONDS = 10.0
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
    `currentBulkOperation` carrying our query) and adopts it. Each page carries the operation's id, which landing
    keeps with the cursor until the last page: a run killed while landing reads the same result again (`resume`).
    A FAILED / CANCELED / EXPIRED operation is a clear error; a partial result is landed without moving the cursor,
    then reported, so a rerun reads it all again.
    """

    def __init__(self, client: GraphqlClient, page_size: int, poll_seconds: float, warnings: list[str]) -> None:
        self.client, self.page_size = client, max(1, page_size)
        self.poll_seconds, self.warnings = poll_seconds, warnings

    @property
    def partner(self) -> str:
        return self.client.ref.source_id

    def pages(self, since: datetime | None, resume: str | None = None) -> Iterator[Page]:
        """Pages of the bulk result for changes since `since`; `resume`: the operation a killed run was landing
        (kept with the cursor), whose result is read again if Shopify still has it."""
        query = bulk_query(since)
        operation = self.resumed(resume) if resume else None
        staged_from_resume = operation is not None
        operation = operation or self.wait(self.start(query))
        status = operation.get("status")
        url, partial = operation.get("url"), operation.get("partialDataUrl")
        what = f"bulk operation {operation.get('id')}"
        if status != "COMPLETED" and not (status == "FAILED" and partial):
            fix = {"EXPIRED": "its results expired (7 days): rerun to start a new one",
                   "CANCELED": "it was canceled in the shop: rerun to start a new one"}.get(
                str(status), "rerun later (ingestion resumes from the stored cursor)")
            code = f" ({operation.get('errorCode')})" if operation.get("errorCode") else ""
            raise SourceError(f"{self.partner}: {what} ended {status}{code}: {fix}")
        kept = operation.get("id") if status == "COMPLETED" else None  # kept with the cursor while it lands
        with tempfile.TemporaryDirectory(prefix="alliance-bulk-") as folder:
            staged = BulkFile(Path(folder) / "bulk.sqlite3")
            if url or partial:
                try:
                    self.download(partial if status == "FAILED" else url, staged)
                except SourceError:
                    if not staged_from_resume:
                        raise
                    log.info("%s: the result of %s is gone; starting a new bulk operation", self.partner, what)
                    yield from self.pages(since)
                    return
            else:
                staged.commit()  # nothing matched the query
            yield from self.read(staged, hold=status == "FAILED", operation=kept)
            staged.close()
        if status == "FAILED":
            raise SourceError(f"{self.partner}: {what} FAILED ({operation.get('errorCode')}) after a partial result; "
                              "the partial result was landed and the cursor left where it was: rerun to read it all")

    def resumed(self, operation_id: str) -> dict | None:
        """The kept operation if Shopify still has its result (COMPLETED, not expired), else None: start anew."""
        data, _ = self.client.query(BULK_STATUS, {"id": operation_id}, expected_cost=1)
        found = data.get("node")
        if isinstance(found, dict) and found.get("status") == "COMPLETED":
            log.info("%s: resuming the result of bulk operation %s", self.partner, operation_id)
            return found
        return None

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
            delay = min(BULK_POLL_MAX_SECONDS, delay * 1.25)
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

    def read(self, staged: BulkFile, hold: bool, operation: str | None) -> Iterator[Page]:
        """The staged result's pages; each carries the operation's id (kept with the cursor), and a last, empty page
        clears it once everything has landed."""
        number = 0
        for records in staged.orders(self.page_size):
            self.complete_refunds(records)
            number += 1
            yield Page(number=number, url=f"bulk result page {number}", records=records, hold_cursor=hold,
                       bulk_operation=operation)
        if operation:
            yield Page(number=number + 1, url="bulk result: done", records=[], bulk_operation=operation,
                       bulk_done=True)

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
            complete_connection(self.client, refund, "refundLineItems", REFUND_LINES_QUERY, 2 + CONNECTION_PAGE * 4)


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
