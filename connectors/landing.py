"""Land pages into raw.* idempotently: validate, quarantine, COPY, upsert and move the cursor in one transaction.

Why: a rerun, or a run killed halfway, must lose nothing and duplicate nothing (PRODUCT.md §7). Each page
is one transaction holding its rows AND the cursor that covers them, so a crash between pages leaves the
warehouse at the end of the last whole page. Upserts keep the latest version of an order; clicks are
immutable events keyed by (network_id, click_id).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import psycopg

from alliance.migrate import migrate
from connectors.minimise import minimise
from connectors.pii import customer_key, scrub, scrub_to_json


class RecordError(ValueError):
    """A record that cannot be read; the message is the quarantine reason."""

    def __init__(self, reason: str, record_key: str | None = None) -> None:
        super().__init__(reason)
        self.record_key = record_key


@dataclass(frozen=True)
class ValidRecord:
    key: str
    timestamp: datetime  # updated_at for orders, EventDate for clicks (UTC)
    customer_key: str | None
    payload_json: str  # the record as JSON, e-mails replaced by their customer_key
    dates: tuple[tuple[str, datetime], ...] = ()  # every date of the version that must not be in the future
    cancelled: bool = False  # the version carries the platform's cancelled status (orders)


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


# --- validation -----------------------------------------------------------------------------------------
# Reasons name the record (partner/network, id or page position), the field and the rule, and at most the JSON
# type of what was found: never the value, which may be a customer's (PRODUCT.md §4).

def kind_of(value: object) -> str:
    """The JSON type of `value` (`text`, `number`, ...): what a reason may say about a bad value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "blank text" if not value.strip() else "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _timestamp(value: object, what: str, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{what} has no UTC offset")
    return parsed.astimezone(UTC)


def _amount(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"{what} is not a number (found {kind_of(value)})")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RecordError(f"{what} is not a number (found {kind_of(value)})") from None
    if not amount.is_finite():
        raise RecordError(f"{what} is not a finite number")
    return amount


def _record_id(value: object, kind: str, position: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(f"{kind} at position {position} of the page: missing id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RecordError(f"{kind} at position {position} of the page: id is not an integer or string "
                          f"(found {kind_of(value)})")
    return str(value).strip()


def _optional_text(record: dict, key: str, field: str | None = None) -> None:
    """`record[key]` is absent, null or text; the reason names `field` (default: the key)."""
    if record.get(key) is not None and not isinstance(record[key], str):
        raise RecordError(f"{field or key} is not text (found {kind_of(record[key])})")


def first_email(order: dict) -> str | None:
    """The order's customer e-mail: `email`, else `contact_email`, else `customer.email`."""
    customer = order.get("customer") if isinstance(order.get("customer"), dict) else {}
    for value in (order.get("email"), order.get("contact_email"), customer.get("email")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _order_identity(record: object, position: int) -> tuple[str, str]:
    """The order's id and the `order <id>` prefix of its quarantine reasons, or why it has none."""
    if not isinstance(record, dict):
        raise RecordError(f"order at position {position} of the page is {type(record).__name__}, not an object")
    order_id = _record_id(record.get("id"), "order", position)
    return order_id, f"order {order_id}"


def _currency(currency: object) -> None:
    if not isinstance(currency, str) or len(currency.strip()) != 3:
        raise RecordError(f"currency is not a 3-letter code (found {kind_of(currency)})")


def validate_shopify_order(record: object, position: int, salt: str) -> ValidRecord:
    """Check every field the models read; the first problem becomes the quarantine reason."""
    order_id, where = _order_identity(record, position)
    try:
        updated = _timestamp(record.get("updated_at"), "updated_at")
        _timestamp(record.get("created_at"), "created_at")
        _timestamp(record.get("cancelled_at"), "cancelled_at", required=False)
        _amount(record.get("subtotal_price"), "subtotal_price")
        _currency(record.get("currency"))
        if "test" in record and not isinstance(record["test"], bool):
            raise RecordError(f"test is not true/false (found {kind_of(record['test'])})")
        for key in ("email", "contact_email", "landing_site", "financial_status"):
            _optional_text(record, key)
        customer = record.get("customer")
        if customer is not None and not isinstance(customer, dict):
            raise RecordError(f"customer is not an object (found {kind_of(customer)})")
        codes = record.get("discount_codes") or []
        if not isinstance(codes, list):
            raise RecordError("discount_codes is not a list")
        for i, code in enumerate(codes):
            if not isinstance(code, dict) or not isinstance(code.get("code"), str):
                raise RecordError(f"discount_codes[{i}] has no text `code`")
        refunds = record.get("refunds") or []
        if not isinstance(refunds, list):
            raise RecordError("refunds is not a list")
        for i, refund in enumerate(refunds):
            if not isinstance(refund, dict):
                raise RecordError(f"refunds[{i}] is not an object")
            _timestamp(refund.get("created_at"), f"refunds[{i}].created_at")
            items = refund.get("refund_line_items") or []
            if not isinstance(items, list):
                raise RecordError(f"refunds[{i}].refund_line_items is not a list")
            for j, item in enumerate(items):
                if not isinstance(item, dict):
                    raise RecordError(f"refunds[{i}].refund_line_items[{j}] is not an object")
                what = f"refunds[{i}].refund_line_items[{j}]"
                if item.get("subtotal") is not None:
                    _amount(item["subtotal"], f"{what}.subtotal")
                else:  # older API versions: no subtotal, the refunded quantity of the line item's price
                    line = item.get("line_item") if isinstance(item.get("line_item"), dict) else {}
                    _amount(item.get("quantity"), f"{what}.quantity (no subtotal)")
                    _amount(line.get("price"), f"{what}.line_item.price (no subtotal)")
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", order_id) from None
    assert updated is not None
    return ValidRecord(order_id, updated, customer_key(first_email(record), salt),
                       stored_json("shopify", "orders", record, salt))


def _gmt(value: object, what: str, required: bool = True) -> datetime | None:
    """WooCommerce `*_gmt`: UTC without a zone suffix (a suffix, if present, is honoured)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _items(record: dict, key: str, where: str) -> list:
    items = record.get(key) or []
    if not isinstance(items, list):
        raise RecordError(f"{where}{key} is not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RecordError(f"{where}{key}[{i}] is not an object")
    return items


def validate_woocommerce_order(record: object, position: int, salt: str) -> ValidRecord:
    """WooCommerce order (with fetched refunds under `alliance_refunds`): every field the models read."""
    order_id, where = _order_identity(record, position)
    try:
        updated = _gmt(record.get("date_modified_gmt"), "date_modified_gmt")
        _gmt(record.get("date_created_gmt"), "date_created_gmt")
        _currency(record.get("currency"))
        if not isinstance(record.get("status"), str):
            raise RecordError(f"status is not text (found {kind_of(record.get('status'))})")
        billing = record.get("billing")
        if billing is not None and not isinstance(billing, dict):
            raise RecordError(f"billing is not an object (found {kind_of(billing)})")
        if isinstance(billing, dict):
            _optional_text(billing, "email", "billing.email")
        customer_id = record.get("customer_id")
        if customer_id is not None and (isinstance(customer_id, bool) or not isinstance(customer_id, (int, str))):
            raise RecordError(f"customer_id is not an id (found {kind_of(customer_id)})")
        for i, item in enumerate(_items(record, "line_items", "")):
            _amount(item.get("total"), f"line_items[{i}].total")
        for i, coupon in enumerate(_items(record, "coupon_lines", "")):
            if not isinstance(coupon.get("code"), str):
                raise RecordError(f"coupon_lines[{i}] has no text `code`")
        for i, meta in enumerate(_items(record, "meta_data", "")):
            if meta.get("key") == "_alliance_ref" and meta.get("value") is not None \
                    and not isinstance(meta.get("value"), str):
                raise RecordError(f"meta_data[{i}] _alliance_ref is not text (found {kind_of(meta.get('value'))})")
        for i, refund in enumerate(_items(record, "alliance_refunds", "")):
            _gmt(refund.get("date_created_gmt"), f"refunds[{i}].date_created_gmt")
            for j, item in enumerate(_items(refund, "line_items", f"refunds[{i}].")):
                _amount(item.get("total"), f"refunds[{i}].line_items[{j}].total")
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", order_id) from None
    assert updated is not None
    billing = record.get("billing") if isinstance(record.get("billing"), dict) else {}
    return ValidRecord(order_id, updated, customer_key(billing.get("email"), salt),
                       stored_json("woocommerce", "orders", record, salt))


VALIDATORS = {"shopify": validate_shopify_order, "woocommerce": validate_woocommerce_order}


def validate_click(record: object, position: int, salt: str) -> ValidRecord:
    if not isinstance(record, dict):
        raise RecordError(f"click at position {position} of the page is {type(record).__name__}, not an object")
    click_id = _record_id(record.get("Id"), "click", position)
    where = f"click {click_id}"
    try:
        event = _timestamp(record.get("EventDate"), "EventDate")
        for key in ("ReferrerPartnerId", "DestinationPartnerId"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise RecordError(f"{key} is not a partner id (found {kind_of(value)})")
        for key in ("ReferralCode", "CustomerEmail"):
            _optional_text(record, key)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}", click_id) from None
    assert event is not None
    email = record.get("CustomerEmail")
    return ValidRecord(click_id, event, customer_key(email, salt),
                       stored_json("referral_network", "clicks", record, salt))


# --- what is stored -------------------------------------------------------------------------------------

def stored_json(platform: str, entity: str, record: dict, salt: str) -> str:
    """The record as it may be kept: allow-listed fields only (connectors/minimise.py), e-mails as keys."""
    return scrub_to_json(minimise(platform, entity, record), salt)


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


# --- clock and cancellation facts of a version (PRODUCT.md §3 cancellation time, §7 future-dated records) ---------

FUTURE_TOLERANCE = timedelta(minutes=10)
CANCELLED_WOOCOMMERCE_STATUSES = frozenset({"cancelled", "failed", "trash"})


def version_dates(entity: str, platform: str, record: dict) -> tuple[tuple[str, datetime], ...]:
    """The dates of a validated version that must not lie in the future: created, modified, each refund's; a click's.

    Named as the platform names them, so a quarantine reason can say which field was ahead.
    """
    if entity == "clicks":
        return (("EventDate", _timestamp(record.get("EventDate"), "EventDate")),)
    if platform == "woocommerce":
        fields = [("date_created_gmt", record.get("date_created_gmt")),
                  ("date_modified_gmt", record.get("date_modified_gmt"))]
        fields += [(f"refunds[{i}].date_created_gmt", refund.get("date_created_gmt"))
                   for i, refund in enumerate(record.get("alliance_refunds") or [])]
        parse = _gmt
    else:
        fields = [("created_at", record.get("created_at")), ("updated_at", record.get("updated_at"))]
        fields += [(f"refunds[{i}].created_at", refund.get("created_at"))
                   for i, refund in enumerate(record.get("refunds") or [])]
        parse = _timestamp
    return tuple((name, at) for name, value in fields if value is not None
                 and (at := parse(value, name)) is not None)


def carries_cancelled_status(platform: str, record: dict) -> bool:
    """Shopify `cancelled_at` set or financial status `voided`; WooCommerce status cancelled, failed or trash."""
    if platform == "woocommerce":
        return record.get("status") in CANCELLED_WOOCOMMERCE_STATUSES
    return bool(record.get("cancelled_at")) or record.get("financial_status") == "voided"


def with_version_facts(entity: str, platform: str, record: dict, valid: ValidRecord) -> ValidRecord:
    """A validated record with the facts landing needs beyond its key and time: its dates and cancelled status."""
    cancelled = entity == "orders" and carries_cancelled_status(platform, record)
    return replace(valid, dates=version_dates(entity, platform, record), cancelled=cancelled)


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


def _split(records: list, validate, salt: str) -> tuple[list[ValidRecord], list[tuple[RecordError, object]]]:  # noqa: ANN001
    good: list[ValidRecord] = []
    bad: list[tuple[RecordError, object]] = []
    for position, record in enumerate(records, start=1):
        try:
            good.append(validate(record, position, salt))
        except RecordError as exc:
            bad.append((exc, record))
    return good, bad


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


@dataclass
class PreparedPage:
    """A page validated and serialised, ready to land (prepared off the landing thread)."""

    good: list[ValidRecord]
    bad: list[tuple[RecordError, object]]


def prepare_page(entity: str, platform: str, records: list, salt: str) -> PreparedPage:
    validate = validate_click if entity == "clicks" else VALIDATORS[platform]

    def checked(record: object, position: int, salt: str) -> ValidRecord:
        return with_version_facts(entity, platform, record, validate(record, position, salt))  # type: ignore[arg-type]

    good, bad = _split(records, checked, salt)
    return PreparedPage(good, bad)


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
                     as_of: datetime | None = None) -> PageOutcome:
    """One page of orders in one transaction: quarantine, COPY, upsert latest version, move cursor.

    `as_of` replaces the warehouse clock for the future-dated check (tests); production reads now() once per page.
    """
    page = records if isinstance(records, PreparedPage) else prepare_page("orders", platform, records, salt)
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
        cursor = _move_cursor(conn, partner_id, "orders", load_id, good,
                              cursor_cap if held_from is None else min(cursor_cap, held_from))
        _count_page(conn, load_id, landed, quarantined)
    return PageOutcome(landed, quarantined, cursor, held_from)


def land_clicks_page(conn: psycopg.Connection, load_id: uuid.UUID, network_id: str, records: list | PreparedPage, *,
                     salt: str, cursor_cap: datetime, as_of: datetime | None = None) -> PageOutcome:
    """One page of clicks in one transaction; a click already landed is left as it is (events are immutable)."""
    page = records if isinstance(records, PreparedPage) else prepare_page("clicks", "referral_network", records, salt)
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
