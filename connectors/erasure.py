"""Erasure of one customer (PRODUCT.md §4): `alliance forget` and Shopify's `customers/redact` / `shop/redact`.

Every order and click of the customer gets one random surrogate `customer_key` (no mapping kept) and loses what
is left of its payload's customer fields; amounts, attribution and commissions do not change. The landed rows'
loaded_at moves so the next transform (and publish) carries the erasure into `analytics`.

Why one surrogate for all their rows: attribution (same key on click and order) and first-order status (same key
on the customer's orders at a storefront) stay exactly as they were, yet nothing links the rows to the person any
more: the surrogate is random, not a hash, so knowing the address no longer finds them, and a later order by the
same address hashes to the old key, which no row holds: a new customer.

Where the key is replaced, all in the caller's transaction:
- raw.orders / raw.clicks: the `customer_key` column and the payload text (the key stands wherever an e-mail was:
  `email`, `customer.email`, `CustomerEmail`, an address inside `landing_site`); the platform's customer id
  (`customer`, `customer_id`) is removed from the customer's orders.
- raw.quarantine, raw.webhook_inbox and raw.webhook_data_requests (when they exist): any text or JSON column
  holding the key.
- the transform's own tables (build and work schemas, `analytics_prev`, kept for rollback) and the published
  `analytics` snapshot: `*customer_key` columns. This is a rename of one opaque key, not a change of any number:
  every table changes in this one transaction, so a reader sees the old name or the new one, never a mix, and the
  rollback snapshot and the incremental state do not keep the old key alive for another publish.
The temporary old→new table lives only inside the transaction (`on commit drop`): no mapping is kept.
raw.erased_customers keeps sha256 of each erased key (not the key, no link to the surrogate), so a later version of
an erased customer's order keeps its surrogate when the storefront sends it again (connectors/landing.py).
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
_ANY_KEY = re.compile(r"[0-9a-f]{64}")
# the payload fields that identify the customer at the platform beyond the e-mail (now the key): Shopify's
# `customer` object (id + key after minimisation), WooCommerce's `customer_id`
_WITHOUT_CUSTOMER_FIELDS = "- 'customer' - 'customer_id'"
# tables besides raw.orders / raw.clicks that may hold a customer's key inside a payload (present or not)
_OTHER_TABLES = (("raw", "quarantine"), ("raw", "webhook_inbox"), ("raw", "webhook_data_requests"))


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
    result = _erase(conn, [customer_key], partner_id, search_text=True)
    log.info("erased customer %s…%s: %d order(s), %d click(s), %d other row(s)", customer_key[:8],
             f" at {partner_id}" if partner_id else "", result.orders, result.clicks, result.other_rows)
    return result


def erase_storefront_customers(conn: psycopg.Connection, partner_id: str) -> ErasureResult:
    """`shop/redact`: erase every customer of one storefront, in the caller's transaction.

    Each customer gets their own surrogate (so first-order status and click attribution at the storefront stay as
    they were); the clicks sent to the storefront follow their customer's surrogate. Guest orders lose the
    platform's customer fields too."""
    keys = [row[0] for row in conn.execute(
        "select customer_key from raw.orders where partner_id = %(p)s and customer_key is not null "
        "union select customer_key from raw.clicks "
        "where lower(trim(payload ->> 'DestinationPartnerId')) = %(p)s and customer_key is not null",
        {"p": partner_id},
    ).fetchall()]
    result = _erase(conn, [k for k in keys if _KEY.match(k)], partner_id, search_text=False)
    guests = max(conn.execute(
        f"update raw.orders set payload = payload {_WITHOUT_CUSTOMER_FIELDS}, loaded_at = now() "
        "where partner_id = %s and customer_key is null and (payload ? 'customer' or payload ? 'customer_id')",
        (partner_id,),
    ).rowcount, 0)
    result = ErasureResult(result.orders + guests, result.clicks, result.other_rows)
    log.info("erased every customer of storefront %s: %d customer(s), %d order(s), %d click(s)", partner_id,
             len(keys), result.orders, result.clicks)
    return result


def _erase(conn: psycopg.Connection, keys: list[str], partner_id: str | None, *, search_text: bool) -> ErasureResult:
    """Give each key its own surrogate everywhere. `search_text`: also find the key inside other rows' payloads
    (an address quoted in someone else's order), a scan worth doing for one customer, not for a whole shop."""
    if not keys:
        return ErasureResult(0, 0, 0)
    with conn.transaction():  # a savepoint inside the caller's transaction (or one of its own in autocommit)
        conn.execute("create temp table _erasure (old text primary key, new text not null) on commit drop")
        result = _erase_listed(conn, keys, partner_id, search_text)
        conn.execute("drop table _erasure")  # (on failure the savepoint's rollback removes it)
        return result


def _erase_listed(conn: psycopg.Connection, keys: list[str], partner_id: str | None,
                  search_text: bool) -> ErasureResult:
    with conn.cursor().copy("copy _erasure (old, new) from stdin") as copy:
        for key in keys:
            copy.write_row((key, new_surrogate()))
    params = {"partner": partner_id, "pattern": f"%{keys[0]}%" if search_text else None}
    if conn.execute("select to_regclass('raw.erased_customers') is not null").fetchone()[0]:
        conn.execute("insert into raw.erased_customers (key_hash, scope) "
                     "select encode(sha256(convert_to(old, 'UTF8')), 'hex'), coalesce(%(partner)s::text, '*') "
                     "from _erasure on conflict do nothing", params)
    # their own orders get the surrogate and lose the platform's customer id
    orders = max(conn.execute(
        "update raw.orders o set customer_key = e.new, "
        f"  payload = replace(o.payload::text, e.old, e.new)::jsonb {_WITHOUT_CUSTOMER_FIELDS}, loaded_at = now() "
        "from _erasure e where o.customer_key = e.old "
        "  and (%(partner)s::text is null or o.partner_id = %(partner)s)", params).rowcount, 0)
    clicks = max(conn.execute(
        "update raw.clicks c set customer_key = e.new, "
        "  payload = replace(c.payload::text, e.old, e.new)::jsonb, loaded_at = now() "
        "from _erasure e where c.customer_key = e.old "
        "  and (%(partner)s::text is null "
        "       or lower(trim(c.payload ->> 'DestinationPartnerId')) = %(partner)s)", params).rowcount, 0)
    if search_text:  # another customer's row quoting the address keeps its customer; only the text changes
        for table in ("orders", "clicks"):
            count = max(conn.execute(
                sql.SQL("update raw.{} t set payload = replace(t.payload::text, e.old, e.new)::jsonb, "
                        "  loaded_at = now() "
                        "from _erasure e where t.payload::text like %(pattern)s "
                        "  and t.customer_key is distinct from e.new "
                        "  and (%(partner)s::text is null or {} = %(partner)s)").format(
                    sql.Identifier(table),
                    sql.SQL("t.partner_id" if table == "orders"
                            else "lower(trim(t.payload ->> 'DestinationPartnerId'))")),
                params).rowcount, 0)
            if table == "orders":
                orders += count
            else:
                clicks += count
    other = _replace_in_other_tables(conn, partner_id)
    _relabel_derived(conn, partner_id)
    return ErasureResult(orders, clicks, other)


def _replace_in_other_tables(conn: psycopg.Connection, partner_id: str | None) -> int:
    """Replace the keys in every text/JSON column of raw.quarantine and raw.webhook_inbox (when they exist)."""
    mapping = dict(conn.execute("select old, new from _erasure").fetchall())
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
        holds = sql.SQL(" or ").join(
            sql.SQL("exists (select 1 from _erasure e where strpos({}::text, e.old) > 0)").format(sql.Identifier(name))
            for name, _ in columns)
        rows = conn.execute(  # ctid: whatever key the table has (the inbox is another module's), rows are found
            sql.SQL("select ctid::text, {} from {}.{} where ({}) and {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n, _ in columns),
                sql.Identifier(schema), sql.Identifier(table), holds, scope),
            {"partner": partner_id},
        ).fetchall()
        for row in rows:
            values = [_ANY_KEY.sub(lambda m: mapping.get(m.group(0), m.group(0)), v) if v else v for v in row[1:]]
            if values == list(row[1:]):
                continue
            conn.execute(
                sql.SQL("update {}.{} set {} where ctid = %s::tid").format(
                    sql.Identifier(schema), sql.Identifier(table),
                    sql.SQL(", ").join(sql.SQL("{} = %s::{}").format(sql.Identifier(n), sql.SQL(kind))
                                       for n, kind in columns)),
                [*values, row[0]],
            )
            changed += 1
    return changed


def _relabel_derived(conn: psycopg.Connection, partner_id: str | None) -> None:
    """Rename the keys in the transform's tables and the published snapshots (see the module docstring)."""
    rows = conn.execute(
        "select c.table_schema, c.table_name, c.column_name, "
        "  (select array_agg(p.column_name::text) from information_schema.columns p "
        "   where p.table_schema = c.table_schema and p.table_name = c.table_name "
        "     and p.column_name in ('destination_partner_id', 'partner_id')) "
        "from information_schema.columns c join information_schema.tables t "
        "  on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE' "
        "where (c.column_name = 'customer_key' or c.column_name like '%\\_customer\\_key') "
        "  and c.data_type = 'text' "
        "  and c.table_schema not in ('raw', 'information_schema') and c.table_schema not like 'pg\\_%' "
        "order by 1, 2, 3"
    ).fetchall()
    for schema, table, column, scopes in rows:
        scope = sql.SQL("true")
        if partner_id is not None:
            scope_column = next((c for c in ("destination_partner_id", "partner_id") if c in (scopes or [])), None)
            if scope_column is None:
                continue
            scope = sql.SQL("t.{} = %(partner)s").format(sql.Identifier(scope_column))
        conn.execute(
            sql.SQL("update {}.{} t set {col} = e.new from _erasure e where t.{col} = e.old and {scope}").format(
                sql.Identifier(schema), sql.Identifier(table), col=sql.Identifier(column), scope=scope),
            {"partner": partner_id},
        )
