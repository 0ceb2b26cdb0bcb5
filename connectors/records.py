"""What a validated record is, and the small checks every platform's validator is made of.

Why a module of its own: each platform file (connectors/shopify.py, woocommerce.py, network.py) says which of
its fields the models read; how a timestamp, an amount or an id is checked, and how a reason is worded, is the
same for all of them. Reasons name the record (partner/network, id or page position), the field and the rule,
and at most the JSON type of what was found: never the value, which may be a customer's (PRODUCT.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from connectors.minimise import Spec, apply
from connectors.pii import scrub_to_json


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


def timestamp(value: object, what: str, required: bool = True) -> datetime | None:
    """An ISO-8601 timestamp with a UTC offset, in UTC."""
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


def gmt_timestamp(value: object, what: str, required: bool = True) -> datetime | None:
    """An ISO-8601 timestamp that is UTC without a zone suffix (WooCommerce `*_gmt`); a suffix is honoured."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(f"{what} is not an ISO-8601 timestamp (found {kind_of(value)})") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def amount(value: object, what: str) -> Decimal:
    """A finite decimal, given as a number or as text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"{what} is not a number (found {kind_of(value)})")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise RecordError(f"{what} is not a number (found {kind_of(value)})") from None
    if not parsed.is_finite():
        raise RecordError(f"{what} is not a finite number")
    return parsed


def record_id(value: object, kind: str, position: int) -> str:
    """The record's id as text; the reason names its position on the page, since it has no usable id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(f"{kind} at position {position} of the page: missing id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RecordError(f"{kind} at position {position} of the page: id is not an integer or string "
                          f"(found {kind_of(value)})")
    return str(value).strip()


def optional_text(record: dict, key: str, field: str | None = None) -> None:
    """`record[key]` is absent, null or text; the reason names `field` (default: the key)."""
    if record.get(key) is not None and not isinstance(record[key], str):
        raise RecordError(f"{field or key} is not text (found {kind_of(record[key])})")


def order_identity(record: object, position: int) -> tuple[str, str]:
    """The order's id and the `order <id>` prefix of its quarantine reasons, or why it has none."""
    if not isinstance(record, dict):
        raise RecordError(f"order at position {position} of the page is {type(record).__name__}, not an object")
    order_id = record_id(record.get("id"), "order", position)
    return order_id, f"order {order_id}"


def currency(value: object) -> None:
    if not isinstance(value, str) or len(value.strip()) != 3:
        raise RecordError(f"currency is not a 3-letter code (found {kind_of(value)})")


def objects(record: dict, key: str, where: str) -> list:
    """`record[key]` as a list of objects (absent or null: empty)."""
    items = record.get(key) or []
    if not isinstance(items, list):
        raise RecordError(f"{where}{key} is not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RecordError(f"{where}{key}[{i}] is not an object")
    return items


def stored_json(spec: Spec, record: dict, salt: str) -> str:
    """The record as it may be kept: its allow-listed fields only (connectors/minimise.py), e-mails as keys."""
    return scrub_to_json(apply(spec, record), salt)


def version_dates(record: dict, created: str, updated: str, refunds: str, refund_created: str
                  ) -> tuple[tuple[str, datetime], ...]:
    """A valid order version's dates that must not lie in the future (PRODUCT.md §7), by the platform's field
    names: its creation, its update, each refund's creation; a missing one is skipped."""
    fields = [(created, record.get(created)), (updated, record.get(updated))]
    fields += [(f"{refunds}[{i}].{refund_created}", refund.get(refund_created))
               for i, refund in enumerate(record.get(refunds) or [])]
    return tuple((name, at) for name, value in fields if value is not None
                 and (at := timestamp(value, name)) is not None)
