"""Land pages into raw.* idempotently: quarantine, COPY, upsert and move the cursor in one transaction.

What a valid record is belongs to its platform (connectors/shopify.py, woocommerce.py, network.py, reached
through connectors/platforms.py); this module only stores what they accepted and quarantines what they refused.

Why: a rerun, or a run killed halfway, must lose nothing and duplicate nothing (PRODUCT.md §7). Each page
is one transaction holding its rows AND the cursor that covers them, so a crash between pages leaves the
warehouse at the end of the last whole page. Upserts keep the latest version of an order; clicks are
immutable events keyed by (network_id, click_id).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from alliance.migrate import migrate
from connectors.pii import scrub
from connectors.platforms import PreparedPage, minimise, prepare_page
from connectors.records import RecordError, ValidRecord, kind_of


@dataclass
class PageOutcome:
    landed: int
    quarantined: int
    cursor: datetime | None  # the cursor stored after this page, if it moved
    held_from: datetime | None = None  # earliest time of a future-dated record held back: later pages stop there


# --- schema, cursors, load rows ---------------------------------------------------------------------------

def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """The landing tables exist: the warehouse's migrations are applied (alliance/migrate.py, foundation)."""
    migrate(conn)


def try_lock_source(conn: psycopg.Connection, source_id: str, entity: str) -> bool:
    """One loader per source and entity at a time (session advisory lock, released on disconnect)."""
    row = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (f"alliance.ingest:{source_id}:{entity}",))
    got = bool(row.fetchone()[0])
    conn.commit()
    return got


def read_cursor(conn: psycopg.Connection, source_id: str, entity: str) -> datetime | None:
    row = conn.execute(
        "select cursor_value from raw.cursors where source_id = %s and entity = %s", (source_id, entity)
    ).fetchone()
    conn.commit()
    return row[0] if row else None


def read_bulk_operation(conn: psycopg.Connection, source_id: str, entity: str) -> str | None:
    """The bulk operation whose result `source_id` was landing when its last run stopped (None: none)."""
    row = conn.execute("select bulk_operation_id from raw.cursors where source_id = %s and entity = %s",
                       (source_id, entity)).fetchone()
    conn.commit()
    return row[0] if row else None


def _keep_bulk_operation(conn: psycopg.Connection, source_id: str, entity: str, operation: str | None) -> None:
    conn.execute("update raw.cursors set bulk_operation_id = %s where source_id = %s and entity = %s",
                 (operation, source_id, entity))


def start_load(conn: psycopg.Connection, source_id: str, entity: str, platform: str,
               cursor_from: datetime | None) -> uuid.UUID:
    """A raw.loads row in status running, committed at once so a crash still leaves a trace."""
    load_id = uuid.uuid4()
    with conn.transaction():
        conn.execute(
            "update raw.loads set status = 'failed', finished_at = now(), "
            "error = 'interrupted: the run stopped before recording its end' "
            "where source_id = %s and entity = %s and status = 'running'",
            (source_id, entity),
        )
        conn.execute(
            "insert into raw.loads (load_id, source_id, entity, platform, cursor_from) values (%s, %s, %s, %s, %s)",
            (load_id, source_id, entity, platform, cursor_from),
        )
    return load_id


def finish_load(conn: psycopg.Connection, load_id: uuid.UUID, status: str, error: str | None = None) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    with conn.transaction():
        conn.execute(
            "update raw.loads set status = %s, error = %s, finished_at = now(), "
            "cursor_to = (select cursor_value from raw.cursors c where c.source_id = loads.source_id "
            "             and c.entity = loads.entity) "
            "where load_id = %s",
            (status, error, load_id),
        )


# --- quarantine ---------------------------------------------------------------------------------------

def quarantine_payload(platform: str, entity: str, record: object, salt: str, reason: str = "") -> str:
    """What a quarantine row keeps of a bad record: its allow-listed fields with e-mails as keys, the field the
    reason names replaced by its JSON type (a value that broke the rules may be anything, a customer's name
    included), or only its type when the record is not an object."""
    if not isinstance(record, dict):
        return json.dumps({"not_an_object": kind_of(record)})
    kept = minimise(platform, entity, record)
    _mask_field(kept, reason.split(": ", 1)[-1].split(" ", 1)[0])
    return json.dumps(scrub(kept, salt), sort_keys=True, ensure_ascii=False, default=str)


def _mask_field(doc: dict, path: str) -> None:
    """Replace the value at `path` (`subtotal_price`, `refunds[0].created_at`...) by `<its JSON type>`, if present."""
    steps = [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path)]
    node: object = doc
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            if last:
                node[step] = f"<{kind_of(node[step])}>"
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict) and step in node:
            if last:
                node[step] = f"<{kind_of(node[step])}>"
            node = node[step]
        else:
            return


# --- future-dated versions (PRODUCT.md §7) ---------------------------------------------------------------

FUTURE_TOLERANCE = timedelta(minutes=10)


def warehouse_clock(conn: psycopg.Connection, as_of: datetime | None = None) -> datetime:
    """The warehouse's now() (transaction start: one reading per page), or the injected `as_of` of a test."""
    if as_of is not None:
        return as_of.astimezone(UTC)
    return conn.execute("select now()").fetchone()[0]


def hold_future_dated(source_id: str, kind: str, good: list[ValidRecord], clock: datetime
                      ) -> tuple[list[ValidRecord], list[tuple[RecordError, ValidRecord]]]:
    """Split off the versions with any date more than FUTURE_TOLERANCE ahead of the warehouse clock (§7).

    Why: a storefront whose clock runs fast would otherwise land a version no later (real) version can replace and
    stop the gate's "not in the future" check for the whole alliance. A held version is quarantined with its reason
    (source, field, rule; never a value), moves no cursor, and is fetched again by every run until its time has come.
    """
    limit = clock + FUTURE_TOLERANCE
    kept: list[ValidRecord] = []
    held: list[tuple[RecordError, ValidRecord]] = []
    minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
    for record in good:
        ahead = next((name for name, at in record.dates if at > limit), None)
        if ahead is None:
            kept.append(record)
            continue
        held.append((RecordError(
            f"{source_id} {kind} {record.key}: {ahead} is more than {minutes} minutes ahead of the warehouse clock "
            "at landing (future-dated); held back, it lands on a later run once its time has come",
            record.key), record))
    return kept, held


# --- landing one page -----------------------------------------------------------------------------------

def _quarantine(conn: psycopg.Connection, load_id: uuid.UUID, source_id: str, entity: str, platform: str,
                errors: list[tuple[RecordError, object]], salt: str) -> int:
    """Quarantine records as received: what `quarantine_payload` keeps of each, with its reason."""
    return _insert_quarantine(conn, load_id, source_id, entity, salt, [
        (error, quarantine_payload(platform, entity, record, salt, str(error))) for error, record in errors])


def _insert_quarantine(conn: psycopg.Connection, load_id: uuid.UUID, source_id: str, entity: str, salt: str,
                       rows: list[tuple[RecordError, str]]) -> int:
    """Insert quarantine rows, skipping ones identical to an earlier run's (overlap re-reads them)."""
    for error, payload in rows:
        conn.execute(
            "insert into raw.quarantine (load_id, source_id, entity, record_key, reason, payload) "
            "select %(load)s, %(src)s, %(ent)s, %(key)s, %(reason)s, %(payload)s "
            "where not exists (select 1 from raw.quarantine q where q.source_id = %(src)s and q.entity = %(ent)s "
            "  and q.record_key is not distinct from %(key)s and q.reason = %(reason)s and q.payload = %(payload)s)",
            {"load": load_id, "src": source_id, "ent": entity, "key": scrub(error.record_key, salt),
             "reason": scrub(str(error), salt),  # an id that is an e-mail address stays out too
             "payload": payload},
        )
    return len(rows)


def _move_cursor(conn: psycopg.Connection, source_id: str, entity: str, load_id: uuid.UUID,
                 good: list[ValidRecord], cap: datetime) -> datetime | None:
    if not good:
        return None
    value = min(max(r.timestamp for r in good), cap)
    row = conn.execute(
        "insert into raw.cursors (source_id, entity, cursor_value, load_id) values (%s, %s, %s, %s) "
        "on conflict (source_id, entity) do update set "
        "  cursor_value = greatest(raw.cursors.cursor_value, excluded.cursor_value), "
        "  load_id = excluded.load_id, updated_at = now() "
        "returning cursor_value",
        (source_id, entity, value, load_id),
    ).fetchone()
    return row[0]


def _count_page(conn: psycopg.Connection, load_id: uuid.UUID, landed: int, quarantined: int) -> None:
    conn.execute(
        "update raw.loads set pages = pages + 1, records_landed = records_landed + %s, "
        "records_quarantined = records_quarantined + %s where load_id = %s",
        (landed, quarantined, load_id),
    )


def _held_from(held: list[tuple[RecordError, ValidRecord]]) -> datetime | None:
    return min((r.timestamp for _, r in held), default=None)


def _quarantine_held(conn: psycopg.Connection, load_id: uuid.UUID, source_id: str, entity: str,
                     held: list[tuple[RecordError, ValidRecord]], salt: str) -> int:
    """A held-back version is valid: its stored form (minimised, e-mails as keys) is what the quarantine keeps."""
    return _insert_quarantine(conn, load_id, source_id, entity, salt, [(e, r.payload_json) for e, r in held])


# A newer version of an order whose customer was erased (connectors/erasure.py) keeps the surrogate key the order
# got then, and loses the customer fields again: the storefront still sends the address, and re-landing its key
# would re-link the order to the person (and change their first-order status). A new order by the address is a new
# customer with the address's key, as PRODUCT.md §4 wants. raw.erased_customers holds sha256 of each erased key.
_ERASED_BEFORE = (
    "(p.customer_key is not null and o.customer_key is not null and o.customer_key <> p.customer_key "
    " and exists (select 1 from raw.erased_customers e "
    "             where e.key_hash = encode(sha256(convert_to(p.customer_key, 'UTF8')), 'hex') "
    "               and e.scope in ('*', p.partner_id)))"
)
# what an incoming version stores: itself, or for an erased customer's order the erased form (an overlap re-read of
# the version landed before the erasure is then equal to what is stored, and changes nothing)
_STORED_PAYLOAD = (f"(case when {_ERASED_BEFORE} then replace(p.payload::text, p.customer_key, o.customer_key)::jsonb"
                   " - 'customer' - 'customer_id' else p.payload end)")


def land_orders_page(conn: psycopg.Connection, load_id: uuid.UUID, partner_id: str, platform: str,
                     records: list | PreparedPage, *, salt: str, cursor_cap: datetime,
                     as_of: datetime | None = None, move_cursor: bool = True,
                     bulk_operation: tuple[str, bool] | None = None) -> PageOutcome:
    """One page of orders in one transaction: quarantine, COPY, upsert latest version, move cursor.

    `as_of` replaces the warehouse clock for the future-dated check (tests); production reads now() once per page.
    `move_cursor=False` lands the page and leaves the cursor (a partial bulk result: not every change up to its newest).
    `bulk_operation` (id, last page?) keeps a bulk operation's id with the cursor while its result lands, and clears
    it with the last page, in this page's transaction.
    """
    page = records if isinstance(records, PreparedPage) else prepare_page(platform, records, salt)
    with conn.transaction():
        good, held = hold_future_dated(partner_id, "order", page.good, warehouse_clock(conn, as_of))
        latest: dict[str, ValidRecord] = {}
        for r in good:  # a page may repeat an order: keep its latest version
            if r.key not in latest or r.timestamp > latest[r.key].timestamp:
                latest[r.key] = r
        # one writer per partner's orders at a time, so "is it new?" below cannot race another loader
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"alliance.land:orders:{partner_id}",))
        quarantined = _quarantine(conn, load_id, partner_id, "orders", platform, page.bad, salt)
        quarantined += _quarantine_held(conn, load_id, partner_id, "orders", held, salt)
        existing = dict(conn.execute(
            "select order_id, updated_at from raw.orders where partner_id = %s and order_id = any(%s)",
            (partner_id, list(latest)),
        ).fetchall()) if latest else {}
        new = [r for r in latest.values() if r.key not in existing]
        # §7: a version replaces the stored one when its updated_at is later, or equal with different content
        # (WooCommerce does not always move date_modified when line items change); the SQL below compares content
        newer = [r for r in latest.values() if r.key in existing and r.timestamp >= existing[r.key]]
        # cancelled_seen_at: this version's time when it carries the cancelled status (kept below while later
        # versions stay cancelled: the cancellation time is the FIRST cancelled version's, PRODUCT.md §3)
        columns = "partner_id, order_id, platform, updated_at, customer_key, payload, load_id, cancelled_seen_at"
        if new:  # the common case streams straight into raw.orders: one COPY, each document parsed once
            with conn.cursor().copy(f"copy raw.orders ({columns}) from stdin") as copy:
                for r in new:
                    copy.write_row((partner_id, r.key, platform, r.timestamp, r.customer_key, r.payload_json, load_id,
                                    r.timestamp if r.cancelled else None))
        updated = 0
        if newer:  # newer (or same-time, other-content) versions: through a temp table, replacing only older ones
            conn.execute(
                "create temp table if not exists _page_orders (partner_id text, order_id text, platform text, "
                "updated_at timestamptz, customer_key text, payload jsonb, load_id uuid, "
                "cancelled_seen_at timestamptz) on commit delete rows"
            )
            with conn.cursor().copy(f"copy _page_orders ({columns}) from stdin") as copy:
                for r in newer:
                    copy.write_row((partner_id, r.key, platform, r.timestamp, r.customer_key, r.payload_json, load_id,
                                    r.timestamp if r.cancelled else None))
            updated = max(conn.execute(
                "update raw.orders o set platform = p.platform, updated_at = p.updated_at, "
                f"  customer_key = case when {_ERASED_BEFORE} then o.customer_key else p.customer_key end, "
                f"  payload = {_STORED_PAYLOAD}, "
                "  load_id = p.load_id, loaded_at = now(), "
                "  cancelled_seen_at = case when p.cancelled_seen_at is not null "
                "                           then coalesce(o.cancelled_seen_at, p.cancelled_seen_at) end "
                "from _page_orders p where o.partner_id = p.partner_id and o.order_id = p.order_id "
                "  and (p.updated_at > o.updated_at "
                f"       or (p.updated_at = o.updated_at and {_STORED_PAYLOAD} is distinct from o.payload))"
            ).rowcount, 0)
        landed = len(new) + updated
        held_from = _held_from(held)
        cursor = _move_cursor(conn, partner_id, "orders", load_id, good if move_cursor else [],
                              cursor_cap if held_from is None else min(cursor_cap, held_from))
        if bulk_operation is not None:
            operation, last = bulk_operation
            _keep_bulk_operation(conn, partner_id, "orders", None if last else operation)
        _count_page(conn, load_id, landed, quarantined)
    return PageOutcome(landed, quarantined, cursor, held_from)


def land_clicks_page(conn: psycopg.Connection, load_id: uuid.UUID, network_id: str, records: list | PreparedPage, *,
                     salt: str, cursor_cap: datetime, as_of: datetime | None = None) -> PageOutcome:
    """One page of clicks in one transaction; a click already landed is left as it is (events are immutable)."""
    page = records if isinstance(records, PreparedPage) else prepare_page("referral_network", records, salt)
    with conn.transaction():
        good, held = hold_future_dated(network_id, "click", page.good, warehouse_clock(conn, as_of))
        quarantined = _quarantine(conn, load_id, network_id, "clicks", "referral_network", page.bad, salt)
        quarantined += _quarantine_held(conn, load_id, network_id, "clicks", held, salt)
        conn.execute(
            "create temp table if not exists _page_clicks (network_id text, click_id text, clicked_at timestamptz, "
            "customer_key text, payload jsonb) on commit delete rows"
        )
        with conn.cursor().copy(
            "copy _page_clicks (network_id, click_id, clicked_at, customer_key, payload) from stdin"
        ) as copy:
            for r in good:
                copy.write_row((network_id, r.key, r.timestamp, r.customer_key, r.payload_json))
        cur = conn.execute(
            "insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id) "
            "select distinct on (network_id, click_id) network_id, click_id, clicked_at, customer_key, payload, %s "
            "from _page_clicks order by network_id, click_id, clicked_at desc "
            "on conflict (network_id, click_id) do nothing",
            (load_id,),
        )
        landed = max(cur.rowcount, 0)
        held_from = _held_from(held)
        cursor = _move_cursor(conn, network_id, "clicks", load_id, good,
                              cursor_cap if held_from is None else min(cursor_cap, held_from))
        _count_page(conn, load_id, landed, quarantined)
    return PageOutcome(landed, quarantined, cursor, held_from)


# --- deletions ------------------------------------------------------------------------------------------

def land_order_deletion(conn: psycopg.Connection, partner_id: str, order_id: str, deleted_at: datetime,
                        source: str) -> None:
    """Record that an order was deleted upstream at `deleted_at` (in the caller's transaction).

    The order stays in raw.orders and is treated as cancelled at that time by the staging models (PRODUCT.md §3);
    its loaded_at moves so the next incremental transform re-reads it. The latest deletion of an order wins.
    """
    conn.execute(
        "insert into raw.order_deletions (partner_id, order_id, deleted_at, source) values (%s, %s, %s, %s) "
        "on conflict (partner_id, order_id) do update set deleted_at = excluded.deleted_at, "
        "  source = excluded.source, loaded_at = now() "
        "where raw.order_deletions.deleted_at < excluded.deleted_at",
        (partner_id, order_id, deleted_at.astimezone(UTC), source),
    )
    conn.execute("update raw.orders set loaded_at = now() where partner_id = %s and order_id = %s",
                 (partner_id, order_id))
