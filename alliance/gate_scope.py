"""What the quality gate validates: the rows an incremental build rewrote, or every row after a full build.

Why: at 1M orders a gate that scans whole tables costs more than the incremental build it checks. An incremental
build rewrites only the orders recomputed (or re-rated) since its snapshot and the clicks taken in since
(alliance/incremental.py records that state in `ops.build_scopes`); every other row is as the last successful build
left it, and that build's gate passed on it with the same code and config (a change of either is a full build,
checked whole). So the gate of an incremental build validates, with the same GX suites:

- the rewritten rows: tables `<table>__scoped`, copied once per gate through the key indexes (whole orders and whole
  clicks, so per-key rules such as "credits sum to one" stay exact), and the raw rows the build took in (landed
  after its work tables' state, less dbt's overlap): views `raw_<table>__scoped` on the `loaded_at` index, not
  copies (their suites read three columns, once each);
- whole-table invariants kept as cheap aggregates: exact row counts against the published snapshot's bounds (kept
  by difference as the rows are written: ops.table_row_counts, migration 0021), the attribution side of the money
  reconciliation read from the kept partner totals (`int_partner_monthly_totals`, maintained by difference) instead
  of a sum over every attribution row, and partner freshness from the (partner_id, loaded_at) index (the suite's
  own query, the same after a full build).

All of it lives in a schema of its own, `<build>_gate`, put first on the GX connection's search_path and dropped
when the gate ends. The suites name `attribution_commission_total`, which this module defines per mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

# tables whose rows an incremental build rewrites in part: GX validates their `__scoped` view instead
ORDER_SCOPED = ("fct_orders", "fct_order_attribution")
CLICK_SCOPED = ("fct_referrals",)
LINES_SCOPED = "partner_statement_lines"
RAW_SCOPED = {"raw_orders": "orders", "raw_clicks": "clicks"}  # GX asset -> table in schema raw
SCOPED_SUFFIX = "__scoped"
# about the order the copies are ready in (two connections: copy_rewritten_orders, copy_rewritten_clicks); the gate
# runs their suites last, in this order, each once its copy is made (the raw rows are views, ready with the schema)
COPY_ORDER = ("fct_referrals", "fct_orders", LINES_SCOPED, "fct_order_attribution")
# random_page_cost of the sessions that read the rewritten rows (the copiers, and GX on a scoped gate): the keys are
# few and their indexes hot; at the default 4 (a spinning disk's) PostgreSQL hashes or scans whole multi-million-row
# tables to find them, 5x slower at 1M orders than the index. A whole gate keeps the default (it reads every row).
INDEX_LOOKUP_PAGE_COST = 1.1


@dataclass(frozen=True)
class GateScope:
    """Everything (a full build, or nothing recorded), or the rows rewritten after a work-table state."""

    orders_after: datetime | None = None
    clicks_after: datetime | None = None
    raw_orders_after: datetime | None = None
    raw_clicks_after: datetime | None = None

    @property
    def whole(self) -> bool:
        return None in (self.orders_after, self.clicks_after, self.raw_orders_after, self.raw_clicks_after)

    def describe(self) -> str:
        if self.whole:
            return "every row (full build)"
        return (f"rows rewritten since the snapshot (orders recomputed after {self.orders_after:%Y-%m-%d %H:%M:%S}Z, "
                f"clicks after {self.clicks_after:%Y-%m-%d %H:%M:%S}Z)")


def gate_schema(build_schema: str) -> str:
    return f"{build_schema}_gate"


def work_schema(build_schema: str) -> str:
    return f"{build_schema}_work"


def recorded_scope(conn: Any, build_schema: str) -> GateScope:
    """The scope alliance/incremental.py recorded for the build schema's last successful build (whole if none)."""
    if conn.execute("select to_regclass('ops.build_scopes')").fetchone()[0] is None:
        return GateScope()
    row = conn.execute("select full_refresh, orders_after, clicks_after, raw_orders_after, raw_clicks_after"
                       " from ops.build_scopes where build_schema = %s", (build_schema,)).fetchone()
    if row is None or row[0]:
        return GateScope()
    return GateScope(*row[1:])


def _exists(conn: Any, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


class _Timed:
    """Runs the gate schema's statements, keeping each one's seconds under a short name (the gate's results show
    them: where a gate's set-up time goes at scale)."""

    def __init__(self, conn: Any, seconds: dict[str, float] | None) -> None:
        self.conn, self.seconds = conn, seconds if seconds is not None else {}

    def __call__(self, name: str, statement: sql.Composable, params: Any = None) -> Any:
        began = time.perf_counter()
        cursor = self.conn.execute(statement, params)
        self.seconds[name] = round(self.seconds.get(name, 0) + time.perf_counter() - began, 3)
        return cursor


def create_gate_schema(conn: Any, build_schema: str, scope: GateScope,
                       seconds: dict[str, float] | None = None) -> None:
    """(Re)create `<build>_gate` with what every suite may read (`attribution_commission_total`), before any suite
    runs; the rewritten rows' copies come after (copy_rewritten_orders and _clicks), while the suites of the other
    tables run. `seconds`: filled with each step's seconds."""
    gate, work = gate_schema(build_schema), work_schema(build_schema)
    ident = sql.Identifier
    timed = _Timed(conn, seconds)
    timed("schema", sql.SQL("drop schema if exists {} cascade").format(ident(gate)))
    timed("schema", sql.SQL("create schema {}").format(ident(gate)))
    if scope.whole:
        timed("commission total", sql.SQL(
            "create view {}.attribution_commission_total as select coalesce(sum(commission_rc), 0) as commission_rc"
            " from {}.fct_order_attribution where is_commission_model and is_commissioned"
        ).format(ident(gate), ident(build_schema)))
    else:
        # the kept aggregate the reconciliation compares balances and KPIs with (maintained by difference by the build)
        timed("commission total", sql.SQL(
            "create view {}.attribution_commission_total as select coalesce(sum(commission_rc), 0) as commission_rc"
            " from {}.int_partner_monthly_totals").format(ident(gate), ident(work)))
        # the raw rows the build took in: views through the loaded_at index, not copies (their suites read few
        # columns once each: at 1M orders, copying 200k raw clicks took longer than their suite on the view)
        for (asset, table), after in zip(RAW_SCOPED.items(), (scope.raw_orders_after, scope.raw_clicks_after),
                                         strict=True):
            timed(asset, sql.SQL("create view {} as select * from {} where loaded_at > {}").format(
                ident(gate, asset + SCOPED_SUFFIX), ident("raw", table), sql.Literal(after)))


def copy_rewritten_orders(conn: Any, build_schema: str, scope: GateScope, seconds: dict[str, float] | None = None,
                          copied: Callable[[str], None] | None = None) -> dict[str, int]:
    """Copy the rewritten orders' rows into `<build>_gate` (`fct_orders`, statement lines, attribution `__scoped`),
    calling `copied(asset)` as each is made (its suite can start); returns the rewritten orders counted (nothing for a
    whole gate, which copies nothing). The clicks and raw rows are copy_rewritten_clicks', on another connection
    at the same time. `seconds`: filled with each step's seconds."""
    if scope.whole:
        return {}
    gate, work, timed, ready = _start_copies(conn, build_schema, seconds, copied)
    ident = sql.Identifier
    rerated = f"{work}.int_order_attribution__rerated"
    counted = {"orders": timed("scope_orders", sql.SQL(
        "create table {gate}.scope_orders as select partner_id, order_id from {work}.int_orders__enriched"
        " where _recomputed_at > %(after)s {rerated}"
    ).format(gate=ident(gate), work=ident(work), rerated=sql.SQL(
        " union select partner_id, order_id from {} where rerated_at > %(after)s").format(
            ident(work, "int_order_attribution__rerated")) if _exists(conn, rerated) else sql.SQL("")),
        {"after": scope.orders_after}).rowcount}  # rows the CREATE TABLE AS wrote (its command tag)
    _key_and_analyze(timed, gate, "scope_orders", ("partner_id", "order_id"))
    # copied once (unlogged, dropped with the schema): GX reads each scoped table several times
    _copy_by_keys(timed, gate, build_schema, "fct_orders", ident(gate, "scope_orders"), ("partner_id", "order_id"))
    ready("fct_orders")
    # the statement lines an incremental build wrote: those of the rewritten orders (by the (destination, order)
    # index), and every line that is not an order's (clawbacks, manual lines, approvals: few, written again each run,
    # found by the model's partial index); their sums are dbt's assert_statement_lines_match_balances, run every build
    timed(LINES_SCOPED, sql.SQL(
        "create unlogged table {copy} as select l.* from {scope} s join {lines} l"
        " on l.destination_partner_id = s.partner_id and l.order_id = s.order_id"
        " where l.line_kind in ('order', 'held', 'rejected') or l.line_kind is null"
        " union all select l.* from {lines} l where l.line_kind not in ('order', 'held', 'rejected')"
    ).format(copy=ident(gate, LINES_SCOPED + SCOPED_SUFFIX), lines=ident(build_schema, LINES_SCOPED),
             scope=ident(gate, "scope_orders")))
    ready(LINES_SCOPED)
    _copy_by_keys(timed, gate, build_schema, "fct_order_attribution", ident(gate, "scope_orders"),
                  ("partner_id", "order_id"))
    ready("fct_order_attribution")
    return counted


def copy_rewritten_clicks(conn: Any, build_schema: str, scope: GateScope, seconds: dict[str, float] | None = None,
                          copied: Callable[[str], None] | None = None) -> dict[str, int]:
    """Copy the rewritten clicks' referrals into `<build>_gate`, as copy_rewritten_orders does the orders' (on
    another connection at the same time); returns the clicks counted. They are found through the `_dbt_run_at` index
    of `int_network__clicks` (the rows this build wrote, one per click) and joined on the referrals' unique key: one
    statement, no key table (fct_referrals is the only table that reads them)."""
    if scope.whole:
        return {}
    gate, work, timed, ready = _start_copies(conn, build_schema, seconds, copied)
    ident = sql.Identifier
    clicks = _copy_by_keys(timed, gate, build_schema, "fct_referrals", ident(work, "int_network__clicks"),
                           ("network_id", "click_id"), sql.SQL(" where s._dbt_run_at > %(after)s"),
                           {"after": scope.clicks_after})
    ready("fct_referrals")
    return {"clicks": clicks}  # one referral per click


def _start_copies(conn: Any, build_schema: str, seconds: dict[str, float] | None,
                  copied: Callable[[str], None] | None) -> tuple[str, str, _Timed, Callable[[str], None]]:
    """What a copier starts from: the gate and work schemas, its timer and `copied` callback; its session plans
    with INDEX_LOOKUP_PAGE_COST."""
    conn.execute(sql.SQL("set random_page_cost = {}").format(sql.Literal(INDEX_LOOKUP_PAGE_COST)))
    return (gate_schema(build_schema), work_schema(build_schema), _Timed(conn, seconds),
            copied or (lambda asset: None))


def _key_and_analyze(timed: _Timed, gate: str, table: str, keys: tuple[str, ...]) -> None:
    """A scope table's primary key and statistics, so its copies are planned as index lookups."""
    ident = sql.Identifier
    timed(table, sql.SQL("alter table {} add primary key ({})").format(
        ident(gate, table), sql.SQL(", ").join(map(ident, keys))))
    timed(table, sql.SQL("analyze {}").format(ident(gate, table)))


def _copy_by_keys(timed: _Timed, gate: str, build_schema: str, table: str, keys_from: sql.Composable,
                  keys: tuple[str, ...], where: sql.Composable | None = None, params: Any = None) -> int:
    """`<gate>.<table>__scoped`: the rows of `table` whose keys are in `keys_from` (a scope table, or the work table
    that recorded them, filtered by `where` on its alias `s`); unlogged, dropped with the schema. Returns the rows
    written (the CREATE TABLE AS's command tag)."""
    ident = sql.Identifier
    return timed(table, sql.SQL("create unlogged table {copy} as select t.* from {keys_from} s join {table} t on {on}"
                                "{where}").format(
        copy=ident(gate, table + SCOPED_SUFFIX), keys_from=keys_from, table=ident(build_schema, table),
        on=sql.SQL(" and ").join(sql.SQL("t.{k} = s.{k}").format(k=ident(k)) for k in keys),
        where=where or sql.SQL("")),
        params).rowcount


def drop_gate_schema(conn: Any, build_schema: str) -> None:
    conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(gate_schema(build_schema))))


def scoped_tables() -> tuple[str, ...]:
    """Build tables an incremental gate validates through their `__scoped` view."""
    return (*ORDER_SCOPED, *CLICK_SCOPED, LINES_SCOPED)


def row_counts(conn: Any, build_schema: str, tables: tuple[str, ...]) -> dict[str, int]:
    """Exact row counts, the whole-table count invariant: read from ops.table_row_counts for a table whose count the
    `keep_row_count` post-hook's triggers keep (all three present and enabled), else counted (and then only read:
    seeding belongs to the post-hook, in the transaction that creates the triggers). Its callers, a scoped gate
    and a publish, run after the migrations (a scope is recorded by them; publish runs them first)."""
    kept = dict(conn.execute(
        """
        select c.relname, k.row_count
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join ops.table_row_counts k on k.table_oid = c.oid
        where n.nspname = %s and c.relname = any(%s)
          and (select count(*) from pg_trigger t where t.tgrelid = c.oid and t.tgenabled <> 'D'
               and t.tgname in ('alliance_row_count_insert', 'alliance_row_count_delete',
                                'alliance_row_count_truncate')) = 3
        """, (build_schema, list(tables))).fetchall())
    return {t: kept[t] if t in kept else conn.execute(
        sql.SQL("select count(*) from {}").format(sql.Identifier(build_schema, t))).fetchone()[0] for t in tables}
