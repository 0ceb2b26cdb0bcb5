"""Erasure of one customer (PRODUCT.md §4): `alliance forget` and Shopify's `customers/redact` / `shop/redact`.

Every order and click of the customer gets one random surrogate `customer_key` (no mapping kept) and loses what
is left of its payload's customer fields; amounts, attribution and commissions do not change. The landed rows'
loaded_at moves so the next transform (and publish) carries the erasure into `analytics`.

Why one surrogate for all their rows: attribution (same key on click and order) and first-order status (same key
on the customer's orders at a storefront) stay exactly as they were, yet nothing links the rows to the person any
more: the surrogate is random, not a hash, so knowing the address no longer finds them, and a later order by the
same address hashes to the old key, which no row holds: a new customer.

Raw payloads hold the key wherever an e-mail was (`email`, `customer.email`, `CustomerEmail`, an address inside
`landing_site`...), so the key is replaced in the payload text; the platform's customer id (`customer`,
`customer_id`) is removed. Quarantined records and webhook inbox bodies that hold the key get the same surrogate.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

import psycopg
from psycopg import sql

log = logging.getLogger("alliance.erasure")

_KEY = re.compile(r"^[0-9a-f]{64}$")
# the payload fields that identify the customer at the platform, beyond the e-mail (now the key): Shopify's
# `customer` object (id + key after minimisation), WooCommerce's `customer_id`
_WITHOUT_CUSTOMER_FIELDS = "- 'customer' - 'customer_id'"
# tables besides raw.orders / raw.clicks that may hold a customer's key inside a payload (present or not)
_OTHER_TABLES = (("raw", "quarantine"), ("raw", "webhook_inbox"))


class ErasureError(ValueError):
    """The erasure request cannot be carried out as given."""


@dataclass(frozen=True)
class ErasureResult:
    orders: int
    clicks: int
    other_rows: int = 0  # quarantine and inbox rows that held the key

    @property
    def total(self) -> int:
        return self.orders + self.clicks + self.other_rows


def new_surrogate() -> str:
    """A random key shaped like a customer_key (64 hex characters), unrelated to any address or salt."""
    return secrets.token_hex(32)


def erase_customer(conn: psycopg.Connection, customer_key: str, *, partner_id: str | None = None) -> ErasureResult:
    """Erase the customer with `customer_key` (at one storefront when `partner_id` is given), in the caller's
    transaction.

    With `partner_id` (Shopify `customers/redact` of that shop) only that storefront's orders and the clicks sent to
    it change, so attribution at other storefronts is untouched too. Logged with the key's first 8 characters only.
    """
    if not isinstance(customer_key, str) or not _KEY.match(customer_key):
        raise ErasureError("a customer key is 64 lower-case hex characters (sha256 of the salted e-mail)")
    surrogate = new_surrogate()
    params = {"new": surrogate, "old": customer_key, "pattern": f"%{customer_key}%", "partner": partner_id}
    # their own orders get the surrogate and lose the platform's customer id; another customer's order that merely
    # mentions the address (in a note-like field) keeps its customer and only has the key replaced in its text
    orders = conn.execute(
        "update raw.orders set "
        "  customer_key = case when customer_key = %(old)s then %(new)s else customer_key end, "
        "  payload = case when customer_key = %(old)s "
        f"                then replace(payload::text, %(old)s, %(new)s)::jsonb {_WITHOUT_CUSTOMER_FIELDS} "
        "                else replace(payload::text, %(old)s, %(new)s)::jsonb end, "
        "  loaded_at = now() "
        "where (customer_key = %(old)s or payload::text like %(pattern)s) "
        "  and (%(partner)s::text is null or partner_id = %(partner)s)",
        params,
    ).rowcount
    clicks = conn.execute(
        "update raw.clicks set customer_key = case when customer_key = %(old)s then %(new)s else customer_key end, "
        "  payload = replace(payload::text, %(old)s, %(new)s)::jsonb, loaded_at = now() "
        "where (customer_key = %(old)s or payload::text like %(pattern)s) "
        "  and (%(partner)s::text is null "
        "       or lower(trim(payload ->> 'DestinationPartnerId')) = %(partner)s)",
        params,
    ).rowcount
    other = _replace_in_other_tables(conn, customer_key, surrogate, partner_id)
    _relabel_derived(conn, customer_key, surrogate, partner_id)
    result = ErasureResult(max(orders, 0), max(clicks, 0), other)
    log.info("erased customer %s…%s: %d order(s), %d click(s), %d other row(s)", customer_key[:8],
             f" at {partner_id}" if partner_id else "", result.orders, result.clicks, result.other_rows)
    return result


def erase_storefront_customers(conn: psycopg.Connection, partner_id: str) -> ErasureResult:
    """`shop/redact`: erase every customer of one storefront, in the caller's transaction.

    Each customer of the storefront gets their own surrogate (so first-order status and click attribution at the
    storefront stay as they were); the clicks sent to the storefront follow their customer's surrogate."""
    keys = [row[0] for row in conn.execute(
        "select distinct customer_key from raw.orders where partner_id = %(p)s and customer_key is not null "
        "union select distinct customer_key from raw.clicks "
        "where lower(trim(payload ->> 'DestinationPartnerId')) = %(p)s and customer_key is not null",
        {"p": partner_id},
    ).fetchall()]
    orders = clicks = other = 0
    for key in keys:
        if not _KEY.match(key):  # not a customer_key this pipeline wrote; leave it to a person to look at
            continue
        result = erase_customer(conn, key, partner_id=partner_id)
        orders, clicks, other = orders + result.orders, clicks + result.clicks, other + result.other_rows
    # orders that never had a key (guests) still lose the platform's customer id
    orders += max(conn.execute(
        f"update raw.orders set payload = payload {_WITHOUT_CUSTOMER_FIELDS}, loaded_at = now() "
        "where partner_id = %s and customer_key is null and (payload ? 'customer' or payload ? 'customer_id')",
        (partner_id,),
    ).rowcount, 0)
    log.info("erased every customer of storefront %s: %d order(s), %d click(s)", partner_id, orders, clicks)
    return ErasureResult(orders, clicks, other)


def _replace_in_other_tables(conn: psycopg.Connection, old: str, new: str, partner_id: str | None) -> int:
    """Replace the key in every text/json column of raw.quarantine and raw.webhook_inbox (if they exist)."""
    changed = 0
    for schema, table in _OTHER_TABLES:
        columns = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s and data_type in ('text', 'json', 'jsonb') "
            "order by ordinal_position", (schema, table),
        ).fetchall()
        if not columns:
            continue
        names = {name for name, _ in columns}
        scope = sql.SQL("true")
        if partner_id is not None:
            source = next((c for c in ("source_id", "partner_id") if c in names), None)
            if source is not None:
                scope = sql.SQL("{} = %(partner)s").format(sql.Identifier(source))
        sets = sql.SQL(", ").join(
            sql.SQL("{col} = replace({col}::text, %(old)s, %(new)s)::{kind}").format(
                col=sql.Identifier(name), kind=sql.SQL(kind))
            for name, kind in columns)
        holds = sql.SQL(" or ").join(
            sql.SQL("{}::text like %(pattern)s").format(sql.Identifier(name)) for name, _ in columns)
        changed += max(conn.execute(
            sql.SQL("update {}.{} set {} where ({}) and {}").format(
                sql.Identifier(schema), sql.Identifier(table), sets, holds, scope),
            {"old": old, "new": new, "pattern": f"%{old}%", "partner": partner_id},
        ).rowcount, 0)
    return changed


def _relabel_derived(conn: psycopg.Connection, old: str, new: str, partner_id: str | None) -> None:
    """Give the surrogate to the key in the transform's own tables (build, work and `analytics_prev` schemas).

    Why: the transform keeps earlier state there (an order's previous customer, the rollback snapshot), which would
    otherwise hold the old key long after raw and `analytics` lost it. Relabelling one opaque key everywhere at once
    changes no result: the next incremental build sees the same customers, only under another name. `analytics`
    itself is left to the next publish (it changes by publish only).
    """
    rows = conn.execute(
        "select c.table_schema, c.table_name, c.column_name, "
        "  (select array_agg(p.column_name::text) from information_schema.columns p "
        "   where p.table_schema = c.table_schema and p.table_name = c.table_name "
        "     and p.column_name in ('destination_partner_id', 'partner_id')) "
        "from information_schema.columns c join information_schema.tables t "
        "  on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE' "
        "where (c.column_name = 'customer_key' or c.column_name like '%%\\_customer\\_key') "
        "  and c.data_type = 'text' "
        "  and c.table_schema not in ('raw', 'analytics', 'information_schema') "
        "  and c.table_schema not like 'pg\\_%%' "
        "order by 1, 2, 3"
    ).fetchall()
    for schema, table, column, scopes in rows:
        scope = sql.SQL("true")
        if partner_id is not None:
            scope_column = next((c for c in ("destination_partner_id", "partner_id") if c in (scopes or [])), None)
            if scope_column is None:
                continue
            scope = sql.SQL("{} = %(partner)s").format(sql.Identifier(scope_column))
        conn.execute(
            sql.SQL("update {}.{} set {col} = %(new)s where {col} = %(old)s and {scope}").format(
                sql.Identifier(schema), sql.Identifier(table), col=sql.Identifier(column), scope=scope),
            {"old": old, "new": new, "partner": partner_id},
        )
