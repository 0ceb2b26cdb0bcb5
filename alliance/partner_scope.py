"""Row-level security on the published tables: a partner's login sees only the rows naming it (PRODUCT.md §9.3).

Which columns name a partner is declared once per model, in dbt YAML (`_marts.yml`, the model's
`config: meta: partner_scope: {columns: [...]}`): a row is the partner's when one of those columns holds its id.
`apply_row_security(conn, schema)` gives every published table of `schema` row-level security and two SELECT
policies: members of `alliance_partner` see their rows (`ops.current_partner_id()`, migration 0016), `alliance_bi`
sees every row; the owner (the transformer that builds and publishes) is not subject to them. The publish applies
them to the build schema before the swap, so they travel with the tables: the snapshot kept for a rollback already
has them, a full refresh is published the same way, and an incrementally updated table keeps them.

A published table (the exposure's list, alliance/schemas.py) without a declared scope stops the publish: a table
nobody thought about must not be readable by partners, nor silently left out of what they may read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from alliance.schemas import EXPOSURES_FILE, PUBLISHED_EXPOSURE, PUBLISHED_TABLES

PARTNER_ROLE = "alliance_partner"  # NOLOGIN group of the partner logins (migration 0016)
READ_ALL_ROLES = ("alliance_bi",)  # readers of analytics that see every row
MARTS_FILE = EXPOSURES_FILE.with_name("_marts.yml")
PARTNER_POLICY = "partner_rows"
READ_ALL_POLICY = "all_rows"
SCOPE_KEY = "partner_scope"


class PartnerScopeError(ValueError):
    """A published table's partner scope is missing or wrong in dbt YAML; the message says what to write."""


def declared_scopes(path: Path = MARTS_FILE) -> dict[str, tuple[str, ...]]:
    """model -> the columns naming its partner(s), from each model's `config.meta.partner_scope.columns`."""
    scopes: dict[str, tuple[str, ...]] = {}
    for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
        name = model.get("name")
        meta = {**(model.get("meta") or {}), **((model.get("config") or {}).get("meta") or {})}
        if SCOPE_KEY not in meta:
            continue
        columns = (meta[SCOPE_KEY] or {}).get("columns") if isinstance(meta[SCOPE_KEY], dict) else None
        if not columns or not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns):
            raise PartnerScopeError(f"{path}: model {name}: meta.{SCOPE_KEY}.columns must be a list of column names, "
                                    f"e.g. {{columns: [partner_id]}}")
        known = {c.get("name") for c in model.get("columns") or []}
        unknown = [c for c in columns if known and c not in known]
        if unknown:
            raise PartnerScopeError(f"{path}: model {name}: meta.{SCOPE_KEY} names column(s) {', '.join(unknown)} "
                                    "that the model does not document")
        scopes[name] = tuple(columns)
    return scopes


def missing_scopes(tables: Iterable[str] = PUBLISHED_TABLES, path: Path = MARTS_FILE) -> list[str]:
    """One message per published table without a declared scope, saying exactly what to add where."""
    scopes = declared_scopes(path)
    return [
        f"{path}: published table {table} (exposure {PUBLISHED_EXPOSURE}) declares no partner scope; add to model "
        f"{table}'s `config:`\n      meta:\n        {SCOPE_KEY}: {{columns: [referrer_partner_id, "
        "destination_partner_id]}}  # or {columns: [partner_id]} for a single-partner table"
        for table in tables if table not in scopes
    ]


def published_scopes(tables: Iterable[str] = PUBLISHED_TABLES, path: Path = MARTS_FILE) -> dict[str, tuple[str, ...]]:
    """The scope of every published table; PartnerScopeError naming each table that has none."""
    tables = tuple(tables)
    missing = missing_scopes(tables, path)
    if missing:
        raise PartnerScopeError("\n".join(missing))
    scopes = declared_scopes(path)
    return {table: scopes[table] for table in tables}


def _signature(columns: tuple[str, ...]) -> str:
    """Kept as the partner policy's comment: an applied policy is recognised and left alone."""
    return f"{SCOPE_KEY}: {', '.join(columns)}"


def _in_place(conn: psycopg.Connection, schema: str, table: str, columns: tuple[str, ...]) -> bool:
    """Row security on, both policies present, the partner policy for these columns, the partners' SELECT grant."""
    row = conn.execute(
        """
        select c.relrowsecurity and not c.relforcerowsecurity
               and has_table_privilege(%(partner)s, c.oid, 'select')
               and obj_description(p.oid, 'pg_policy') is not distinct from %(signature)s
               and exists (select 1 from pg_policy a where a.polrelid = c.oid and a.polname = %(all)s)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        left join pg_policy p on p.polrelid = c.oid and p.polname = %(policy)s
        where n.nspname = %(schema)s and c.relname = %(table)s
        """,
        {"partner": PARTNER_ROLE, "signature": _signature(columns), "all": READ_ALL_POLICY, "policy": PARTNER_POLICY,
         "schema": schema, "table": table},
    ).fetchone()
    return bool(row and row[0])


def apply_row_security(conn: psycopg.Connection, schema: str) -> list[str]:
    """Give every published table of `schema` its partner policies (idempotent); the tables it changed.

    Partners keep no SELECT on any other table of `schema` (alerts, run manifest, a model no longer published).
    """
    scopes = published_scopes()
    changed = []
    kinds = dict(conn.execute(
        "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s", (schema,)).fetchall())
    for table, columns in scopes.items():
        if table not in kinds:  # publish checks the build has every table; an old snapshot rolled back may not
            continue
        if kinds[table] not in ("r", "p"):  # a view would show partners its base tables' rows unfiltered
            raise PartnerScopeError(f"published relation {schema}.{table} is not a table (materialize it as a table): "
                                    "row-level security protects tables only")
        if _in_place(conn, schema, table, columns):
            continue
        target = sql.Identifier(schema, table)
        partner_id = sql.SQL("(select ops.current_partner_id())")
        conn.execute(sql.SQL("alter table {} enable row level security").format(target))
        conn.execute(sql.SQL("alter table {} no force row level security").format(target))
        for policy in (PARTNER_POLICY, READ_ALL_POLICY):
            conn.execute(sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(policy), target))
        conn.execute(sql.SQL("create policy {} on {} as permissive for select to {} using ({} in ({}))").format(
            sql.Identifier(PARTNER_POLICY), target, sql.Identifier(PARTNER_ROLE), partner_id,
            sql.SQL(", ").join(sql.Identifier(c) for c in columns)))
        conn.execute(sql.SQL("comment on policy {} on {} is {}").format(
            sql.Identifier(PARTNER_POLICY), target, sql.Literal(_signature(columns))))
        conn.execute(sql.SQL("create policy {} on {} as permissive for select to {} using (true)").format(
            sql.Identifier(READ_ALL_POLICY), target, sql.SQL(", ").join(sql.Identifier(r) for r in READ_ALL_ROLES)))
        conn.execute(sql.SQL("grant select on {} to {}").format(target, sql.Identifier(PARTNER_ROLE)))
        changed.append(table)
    others = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') and not (c.relname = any(%s))"
        " and has_table_privilege(%s, c.oid, 'select')", (schema, list(scopes), PARTNER_ROLE)).fetchall()
    for (table,) in others:
        conn.execute(sql.SQL("revoke all on {} from {}").format(sql.Identifier(schema, table),
                                                                 sql.Identifier(PARTNER_ROLE)))
        changed.append(table)
    return changed
