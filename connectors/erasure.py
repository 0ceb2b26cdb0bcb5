"""Erasure of one customer (PRODUCT.md §4): `alliance forget` and Shopify's `customers/redact` / `shop/redact`.

Every order and click of the customer gets one random surrogate `customer_key` (no mapping kept) and loses what
is left of its payload's customer fields; amounts, attribution and commissions do not change. The landed rows'
loaded_at moves so the next transform (and publish) carries the erasure into `analytics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class ErasureResult:
    orders: int
    clicks: int


def erase_customer(conn: psycopg.Connection, customer_key: str, *, partner_id: str | None = None) -> ErasureResult:
    """Erase the customer with `customer_key` (at one storefront when `partner_id` is given), in the caller's
    transaction."""
    raise NotImplementedError("lands with the erasure change")


def erase_storefront_customers(conn: psycopg.Connection, partner_id: str) -> ErasureResult:
    """`shop/redact`: erase every customer of one storefront, in the caller's transaction."""
    raise NotImplementedError("lands with the erasure change")
