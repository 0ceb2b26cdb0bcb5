"""Data minimisation at the door (PRODUCT.md §4): an allow-list per platform of the fields alliance uses.

Why an allow-list: a deny-list misses whatever a platform adds next (a new address block, a tracking token);
keeping only named fields means a payload field nobody listed never reaches `raw`.

`minimise(platform, entity, record)` is called on every record before it is scrubbed and stored, by the polls
(connectors/landing.py: the stored payload and the quarantine payload) and by the webhook inbox. Validate the
record as received first, then minimise what is stored: a listed scalar field holding an object or list is
dropped (None), as is a listed object field holding a scalar, since neither shape is one alliance reads.

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

_MONEY_SET: Spec = {"shop_money": {"amount": KEEP, "currency_code": KEEP}}
_CUSTOMER: Spec = {"id": KEEP, "email": KEEP}

# Shopify REST Admin API `Order` (orders.json, orders/create and orders/updated webhook bodies).
SHOPIFY_ORDER: Spec = {
    "id": KEEP, "order_number": KEEP,
    "created_at": KEEP, "updated_at": KEEP, "processed_at": KEEP, "closed_at": KEEP,
    "cancelled_at": KEEP, "cancel_reason": KEEP,
    "currency": KEEP, "presentment_currency": KEEP,
    "subtotal_price": KEEP, "subtotal_price_set": _MONEY_SET, "current_subtotal_price": KEEP,
    "total_price": KEEP, "current_total_price": KEEP, "total_line_items_price": KEEP,
    "total_discounts": KEEP, "total_tax": KEEP, "total_shipping_price_set": _MONEY_SET,
    "financial_status": KEEP, "fulfillment_status": KEEP, "test": KEEP,
    "email": KEEP, "contact_email": KEEP,  # replaced by the customer_key before storing
    "landing_site": KEEP,  # its `ref` query parameter is a referral code; addresses in it become keys
    "discount_codes": {"code": KEEP, "amount": KEEP, "type": KEEP},
    "customer": _CUSTOMER,
    "line_items": {"id": KEEP, "product_id": KEEP, "variant_id": KEEP, "quantity": KEEP, "current_quantity": KEEP,
                   "price": KEEP, "total_discount": KEEP},
    "refunds": {
        "id": KEEP, "order_id": KEEP, "created_at": KEEP, "processed_at": KEEP,
        "refund_line_items": {
            "id": KEEP, "line_item_id": KEEP, "quantity": KEEP, "subtotal": KEEP, "subtotal_set": _MONEY_SET,
            "total_tax": KEEP,
            "line_item": {"id": KEEP, "product_id": KEEP, "variant_id": KEEP, "price": KEEP, "quantity": KEEP,
                          "total_discount": KEEP},
        },
        "order_adjustments": {"id": KEEP, "kind": KEEP, "amount": KEEP},
    },
}

_WOO_LINE: Spec = {"id": KEEP, "product_id": KEEP, "variation_id": KEEP, "quantity": KEEP, "price": KEEP,
                   "subtotal": KEEP, "total": KEEP}

# WooCommerce REST v3 order (GET /orders, order.created / order.updated webhooks), with the refunds alliance
# fetched from /orders/{id}/refunds under `alliance_refunds`.
WOOCOMMERCE_ORDER: Spec = {
    "id": KEEP, "parent_id": KEEP, "number": KEEP, "status": KEEP, "currency": KEEP,
    "date_created_gmt": KEEP, "date_modified_gmt": KEEP, "date_paid_gmt": KEEP, "date_completed_gmt": KEEP,
    "customer_id": KEEP,
    "billing": {"email": KEEP},  # replaced by the customer_key before storing
    "discount_total": KEEP, "shipping_total": KEEP, "total": KEEP, "total_tax": KEEP, "prices_include_tax": KEEP,
    "line_items": _WOO_LINE,
    "coupon_lines": {"id": KEEP, "code": KEEP, "discount": KEEP},
    "meta_data": Entries("key", frozenset({"_alliance_ref"}), {"id": KEEP, "key": KEEP, "value": KEEP}),
    "refunds": {"id": KEEP, "total": KEEP},
    "alliance_refunds": {"id": KEEP, "date_created_gmt": KEEP, "amount": KEEP, "line_items": _WOO_LINE},
}

# Referral-network click (impact.com-style Clicks API and the network webhook).
NETWORK_CLICK: Spec = {
    "Id": KEEP, "ReferrerPartnerId": KEEP, "DestinationPartnerId": KEEP, "EventDate": KEEP, "ReferralCode": KEEP,
    "CustomerEmail": KEEP,  # replaced by the customer_key before storing
}

# Webhook bodies other than whole orders: a deletion names the order; Shopify's compliance topics name the shop
# and the customer (id and e-mail, which becomes the key erasure looks for), never the phone they also carry.
ORDER_DELETION: Spec = {"id": KEEP}
SHOPIFY_CUSTOMERS_REDACT: Spec = {"shop_id": KEEP, "shop_domain": KEEP, "customer": _CUSTOMER,
                                  "orders_to_redact": IDS}
SHOPIFY_CUSTOMERS_DATA_REQUEST: Spec = {"shop_id": KEEP, "shop_domain": KEEP, "customer": _CUSTOMER,
                                        "orders_requested": IDS, "data_request": {"id": KEEP}}
SHOPIFY_SHOP_REDACT: Spec = {"shop_id": KEEP, "shop_domain": KEEP}

ALLOW_LISTS: dict[str, dict[str, Spec]] = {
    "shopify": {
        "orders": SHOPIFY_ORDER, "orders/create": SHOPIFY_ORDER, "orders/updated": SHOPIFY_ORDER,
        "orders/delete": ORDER_DELETION,
        "refunds": SHOPIFY_ORDER["refunds"],  # type: ignore[dict-item]
        "customers/redact": SHOPIFY_CUSTOMERS_REDACT, "customers/data_request": SHOPIFY_CUSTOMERS_DATA_REQUEST,
        "shop/redact": SHOPIFY_SHOP_REDACT,
    },
    "woocommerce": {
        "orders": WOOCOMMERCE_ORDER, "order.created": WOOCOMMERCE_ORDER, "order.updated": WOOCOMMERCE_ORDER,
        "order.restored": WOOCOMMERCE_ORDER, "order.deleted": ORDER_DELETION,
        "refunds": WOOCOMMERCE_ORDER["alliance_refunds"],  # type: ignore[dict-item]
    },
    "referral_network": {"clicks": NETWORK_CLICK},
    "network": {"clicks": NETWORK_CLICK},  # the webhook receiver's name for the same source
}


class UnknownEntity(ValueError):
    """No allow-list for this platform and entity: nothing is kept by default (fail closed)."""


def allow_list(platform: str, entity: str) -> Spec:
    try:
        return ALLOW_LISTS[platform][entity]
    except KeyError:
        raise UnknownEntity(f"no data-minimisation allow-list for platform `{platform}`, entity `{entity}`: "
                            f"add one to connectors/minimise.py before landing it") from None


def minimise(platform: str, entity: str, record: Any) -> Any:
    """`record` with only the allow-listed fields of `platform`'s `entity` (orders, refunds, clicks, or a webhook
    topic such as `customers/redact`). A list of records is minimised record by record; a record that is not an
    object is returned unchanged (landing quarantines it and stores no value of it)."""
    spec = allow_list(platform, entity)
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
