"""Data minimisation at the door (PRODUCT.md §4): how an allow-list of the fields alliance uses is written and
applied. Each platform's lists live in its own file (connectors/shopify.py, woocommerce.py, network.py);
`connectors.platforms.minimise(platform, entity, record)` finds the right one.

Why an allow-list: a deny-list misses whatever a platform adds next (a new address block, a tracking token);
keeping only named fields means a payload field nobody listed never reaches `raw`.

Every record is minimised before it is scrubbed and stored, by the polls (the stored payload and the quarantine
payload) and by the webhook inbox. Validate the record as received first, then minimise what is stored: a listed
scalar field holding an object or list is dropped (None), as is a listed object field holding a scalar, since
neither shape is one alliance reads.

The lists keep what the dbt staging models read (dbt_project/models/staging/*.sql) and the fields PRODUCT.md §3
names, plus ids, timestamps, amounts, currency, statuses, line-item amounts, quantities and product ids. A
customer object keeps its id and e-mail (the e-mail becomes the customer_key in connectors/pii.py). Names,
addresses, phones, IPs, user agents, tokens, notes, order-status URLs, order keys and payment details are not
listed, so they never land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

KEEP = True  # a scalar field kept as it is
IDS = "ids"  # a list of scalars (order ids) kept as it is; anything else in it is dropped (None)


@dataclass(frozen=True)
class Entries:
    """A list of objects of which only the entries whose `key_field` is in `keys` are kept (WooCommerce meta_data:
    only `_alliance_ref` is alliance's; the other entries are plugin data, often personal)."""

    key_field: str
    keys: frozenset[str]
    fields: dict[str, Any] = field(default_factory=dict)


# A spec maps a field name to KEEP (a scalar), IDS (a list of scalars), a nested spec (an object, or each object
# of a list of objects) or Entries (a list of objects filtered by a key).
Spec = dict[str, Union[bool, str, "Spec", Entries]]

# A webhook body deleting an order names the order, nothing else (Shopify orders/delete, WooCommerce order.deleted).
ORDER_DELETION: Spec = {"id": KEEP}


def apply(spec: Spec, record: Any) -> Any:
    """`record` with only the fields `spec` allows. A list of records is minimised record by record; a record
    that is not an object is returned unchanged (landing quarantines it and stores no value of it)."""
    if isinstance(record, list):
        return [_object(item, spec) if isinstance(item, dict) else item for item in record]
    return _object(record, spec) if isinstance(record, dict) else record


def _object(record: dict, spec: Spec) -> dict:
    out: dict[str, Any] = {}
    for key, rule in spec.items():
        if key in record:
            out[key] = _value(record[key], rule)
    return out


def _value(value: Any, rule: Any) -> Any:
    if rule is KEEP:
        return None if isinstance(value, (dict, list)) else value
    if rule == IDS:
        if not isinstance(value, list):
            return None
        return [None if isinstance(item, (dict, list)) else item for item in value]
    if isinstance(rule, Entries):
        if not isinstance(value, list):
            return None
        return [_object(item, rule.fields) for item in value
                if isinstance(item, dict) and isinstance(item.get(rule.key_field), str)
                and item[rule.key_field] in rule.keys]
    if isinstance(value, dict):
        return _object(value, rule)
    if isinstance(value, list):  # a list of objects under an object rule; anything else in it says nothing
        return [_object(item, rule) if isinstance(item, dict) else None for item in value]
    return None
