"""Deleted, trashed, restored and re-edited cancelled orders (PRODUCT.md §3 deleted orders and cancellation time, §6.1).

Real parts: the landing functions on the embedded PostgreSQL (what the poll and the webhook inbox call), real dbt
builds (incremental, then a full refresh of the same data, which must agree), and the sandbox WooCommerce API over
loopback HTTP for trash and restore seen by the poll. Run dates are injected; nothing depends on today's date.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from support.ingest import FAST, WOO_PARTNER, three_platform_config_file, three_platform_sandbox
from support.ingest import query_rows as _rows

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.incremental import dbt_build
from connectors.ingest import ingest_source
from connectors.landing import ensure_raw_schema, land_order_deletion, land_orders_page
from devstack.sandbox.world import LATEST_CHANGE

SALT = "test-salt"
SCHEMA = "del_build"
AS_OF = date(2027, 1, 15)  # every October lock date (2026-11-30) has passed: commissions are locked


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def shopify(order_id: int, created: str, updated: str, *, voided: bool = False, note: str = "") -> dict:
    return {"id": order_id, "created_at": f"{created}Z", "updated_at": f"{updated}Z", "currency": "USD",
            "subtotal_price": "100.00", "email": f"shopper{order_id}@example.test", "cancelled_at": None,
            "financial_status": "voided" if voided else "paid", "discount_codes": [{"code": "BRIGHT5"}],
            "refunds": [], "note": note}


def woo(order_id: int, created: str, modified: str, status: str = "completed", note: str = "") -> dict:
    return {"id": order_id, "date_created_gmt": created, "date_modified_gmt": modified, "currency": "EUR",
            "status": status, "billing": {"email": f"shopper{order_id}@example.test"}, "customer_id": 0,
            "line_items": [{"total": "100.00"}], "coupon_lines": [{"code": "BRIGHT5"}], "customer_note": note}


def land(conn: psycopg.Connection, partner_id: str, platform: str, *records: dict) -> None:
    land_orders_page(conn, uuid.uuid4(), partner_id, platform, list(records), salt=SALT,
                     cursor_cap=datetime(1970, 1, 1, tzinfo=UTC), as_of=datetime(2027, 1, 1, tzinfo=UTC))


def marts(url: str, schema: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"select * from {schema}.{t} order by 1, 2, 3, 4").fetchall()
                for t in ("fct_orders", "fct_order_attribution", "partner_kpis_daily", "partner_balances")}


def test_deletions_trash_restore_and_first_cancellation_incremental_equals_full_refresh(fresh_database_factory,
                                                                                         tmp_path):
    url = fresh_database_factory("del")
    config = load_config(three_platform_config_file(tmp_path), require_secrets=False)
    with psycopg.connect(url) as conn:
        ensure_raw_schema(conn)
        sync_config(conn, config)
        conn.commit()
        land(conn, "northwind", "shopify",
             shopify(1, "2026-10-05T12:00:00", "2026-10-05T12:00:00"),  # deleted before its lock date
             shopify(2, "2026-10-06T12:00:00", "2026-10-06T12:00:00"),  # deleted after its lock date
             shopify(6, "2026-10-07T12:00:00", "2026-10-12T09:00:00", voided=True))  # voided, edited later
        land(conn, WOO_PARTNER, "woocommerce",
             woo(3, "2026-10-07T12:00:00", "2026-10-07T12:00:00"),  # trashed (poll)
             woo(4, "2026-10-08T12:00:00", "2026-10-08T12:00:00"),  # trashed, deleted, then restored
             woo(5, "2026-10-09T12:00:00", "2026-10-10T08:00:00", status="cancelled"))  # cancelled, edited later
    dbt_vars = dbt_vars_from_config(config, as_of_date=AS_OF)
    first = dbt_build(url, SCHEMA, dbt_vars)
    assert first.full_refresh and first.outcome.success, first.outcome.failures
    before = {(o, c) for o, c in _rows(url, f"select order_id, commission_rc from {SCHEMA}.fct_order_attribution"
                                             " where attribution_model = 'last_click'")}
    assert {o for o, _ in before} == {"1", "2", "3", "4"}, "6 and 5 are cancelled from the start"

    with psycopg.connect(url) as conn:
        with conn.transaction():  # webhooks, as the inbox processor lands them (receipt time)
            land_order_deletion(conn, "northwind", "1", ts("2026-10-20T10:00:00"), "orders/delete")
            land_order_deletion(conn, "northwind", "2", ts("2026-12-05T10:00:00"), "orders/delete")
        land(conn, "northwind", "shopify", shopify(6, "2026-10-07T12:00:00", "2026-12-10T09:00:00", voided=True,
                                                   note="edited after the lock"))
        land(conn, WOO_PARTNER, "woocommerce",
             woo(3, "2026-10-07T12:00:00", "2026-10-25T07:30:00", status="trash"),
             woo(4, "2026-10-08T12:00:00", "2026-10-20T10:00:00", status="trash"),
             woo(5, "2026-10-09T12:00:00", "2026-12-10T08:00:00", status="cancelled", note="edited after the lock"))
        with conn.transaction():
            land_order_deletion(conn, WOO_PARTNER, "4", ts("2026-10-20T10:00:05"), "order.deleted")
        land(conn, WOO_PARTNER, "woocommerce", woo(4, "2026-10-08T12:00:00", "2026-10-23T09:00:00"))  # restored
        seen = dict(conn.execute("select order_id, cancelled_seen_at from raw.orders").fetchall())
    assert seen == {"1": None, "2": None, "6": ts("2026-10-12T09:00:00"), "3": ts("2026-10-25T07:30:00"),
                    "4": None, "5": ts("2026-10-10T08:00:00")}, "landing remembers the first cancelled version"

    second = dbt_build(url, SCHEMA, dbt_vars)
    assert not second.full_refresh and second.outcome.success, second.outcome.failures
    with psycopg.connect(url) as conn:
        recomputed = {r[0] for r in conn.execute(f"select order_id from {SCHEMA}_work.int_orders__changed")}
    assert recomputed == {"1", "2", "3", "4", "5", "6"}, "a deletion landing makes the next run recompute the order"
    incremental = marts(url, SCHEMA)
    full = dbt_build(url, SCHEMA, dbt_vars, full_refresh=True)
    assert full.outcome.success, full.outcome.failures
    assert marts(url, SCHEMA) == incremental, "incremental and full refresh agree"

    orders = {o: (cancelled, at, after_lock) for o, cancelled, at, after_lock in _rows(
        url, f"select order_id, is_cancelled, cancelled_at, is_cancelled_after_lock from {SCHEMA}.fct_orders")}
    assert orders == {
        "1": (True, ts("2026-10-20T10:00:00"), False),  # deleted before the lock: cancelled at the deletion time
        "2": (True, ts("2026-12-05T10:00:00"), True),  # deleted after the lock: refund leakage, commission stands
        "6": (True, ts("2026-10-12T09:00:00"), False),  # the first voided version, not the later edit
        "3": (True, ts("2026-10-25T07:30:00"), False),  # trashed: the trashed version's date_modified_gmt
        "4": (False, None, False),  # restored from the trash after its deletion: no longer cancelled
        "5": (True, ts("2026-10-10T08:00:00"), False),  # the first cancelled version, not the edit after the lock
    }
    commissions = dict(_rows(url, f"select order_id, commission_rc from {SCHEMA}.fct_order_attribution"
                                  " where attribution_model = 'last_click'"))
    # northwind: brightpath's 0.06 contract starts 2026-10-15, so the default new-customer rate 0.15 x 100 applies
    assert commissions == {"2": Decimal("15.00"), "4": dict(before)["4"]}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    yield from three_platform_sandbox(tmp_path, monkeypatch)


def test_woocommerce_trash_and_restore_seen_by_the_poll(sandbox, warehouse):
    """Trash through the sandbox's WooCommerce API: cancelled at the trashed version's date_modified_gmt, no
    commission; a later edit of the trashed order keeps that time; restored, it is no longer cancelled."""
    from alliance.run import transform

    world = sandbox.world
    clock = replace(FAST, as_of=LATEST_CHANGE + timedelta(days=2))
    order_id = _credited_woocommerce_order(world)
    # after every change the world serves (as a trash is the storefront's latest change), before the lock date
    trashed_at = LATEST_CHANGE + timedelta(hours=1)

    def sync_and_publish() -> dict:
        result = ingest_source(sandbox.config, WOO_PARTNER, warehouse, options=clock)
        assert result.status == "succeeded", result.error
        run = transform(sandbox.config, warehouse, as_of=date(2027, 3, 1))
        assert run.published, run.failures
        [row] = _rows(warehouse, "select o.is_cancelled, o.cancelled_at, a.commission_rc is not null"
                                 " from analytics.fct_orders o left join analytics.fct_order_attribution a"
                                 " on a.partner_id = o.partner_id and a.order_id = o.order_id"
                                 " and a.attribution_model = 'last_click' and a.referrer_partner_id is not null"
                                 " where o.partner_id = %s and o.order_id = %s", (WOO_PARTNER, str(order_id)))
        return {"cancelled": row[0], "cancelled_at": row[1], "commissioned": row[2]}

    assert sync_and_publish() == {"cancelled": False, "cancelled_at": None, "commissioned": True}
    world.touch_order(WOO_PARTNER, order_id, trashed_at, status="trash")
    assert sync_and_publish() == {"cancelled": True, "cancelled_at": trashed_at, "commissioned": False}
    world.touch_order(WOO_PARTNER, order_id, trashed_at + timedelta(hours=5), customer_note="still in the trash")
    assert sync_and_publish() == {"cancelled": True, "cancelled_at": trashed_at, "commissioned": False}
    world.touch_order(WOO_PARTNER, order_id, trashed_at + timedelta(days=1), status="completed")
    assert sync_and_publish() == {"cancelled": False, "cancelled_at": None, "commissioned": True}


def _credited_woocommerce_order(world) -> int:  # noqa: ANN001
    """A completed November WooCommerce order of the sandbox (lock date 2026-12-30) whose first coupon is another
    partner's referral code."""
    codes = {c.upper() for p, info in world.partners.items() if p != WOO_PARTNER for c in info["referral_codes"]}
    for order in world.orders[WOO_PARTNER]:
        coupons = [(c.get("code") or "").upper() for c in order.get("coupon_lines") or []]
        if order.get("status") == "completed" and coupons and coupons[0] in codes \
                and order["date_created_gmt"].startswith("2026-11"):
            return order["id"]
    raise AssertionError("the sandbox world has a code-credited WooCommerce order")
