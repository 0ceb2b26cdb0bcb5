"""One storefront's fast clock stays its own problem (PRODUCT.md §7): future-dated versions are held back at landing.

Real parts: the sandbox partner APIs over loopback HTTP, the embedded PostgreSQL, the ingest entry point, and the
whole transform (dbt, the GX gate, the atomic publish). The warehouse clock is injected (IngestOptions.as_of) at
dates fixed after the sandbox world's window, so nothing depends on today's date.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, timedelta

import psycopg
import pytest
from support.ingest import FAST, WOO_PARTNER, three_platform_sandbox
from support.ingest import query_rows as _rows

from connectors.ingest import ingest_all
from connectors.landing import ensure_raw_schema, land_clicks_page, land_orders_page
from devstack.sandbox.world import LATEST_CHANGE

SALT = "test-salt"
AS_OF = LATEST_CHANGE + timedelta(days=1)  # the injected warehouse clock: after everything the world serves
TOMORROW = AS_OF + timedelta(days=1)


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    yield from three_platform_sandbox(tmp_path, monkeypatch)


def _plain_order(world, partner_id: str) -> dict:  # noqa: ANN001
    """An order of the partner with no refunds and no cancellation (so its dates are only created/updated)."""
    return next(o for o in world.orders[partner_id]
                if not o.get("refunds") and not o.get("alliance_refunds") and not o.get("cancelled_at")
                and o.get("status", "completed") == "completed" and o.get("financial_status", "paid") == "paid"
                and not o.get("test"))


def test_order_dated_tomorrow_is_held_back_the_others_publish_and_it_lands_once_its_time_has_come(
        sandbox, warehouse):
    from alliance.run import transform

    world = sandbox.world
    late = _plain_order(world, "northwind")
    world.redate_order("northwind", late["id"], TOMORROW)
    late_id = str(late["id"])
    total = sum(len(orders) for p, orders in world.orders.items())

    results = ingest_all(sandbox.config, warehouse, options=replace(FAST, as_of=AS_OF))
    assert all(r.status == "succeeded" for r in results), [r.summary() for r in results]
    by_source = {r.source_id: r for r in results}
    assert by_source["northwind"].quarantined == 1
    assert all(r.quarantined == 0 for r in results if r.source_id != "northwind")
    [(source, key, reason)] = _rows(warehouse, "select source_id, record_key, reason from raw.quarantine")
    assert (source, key) == ("northwind", late_id)
    assert reason.startswith(f"northwind order {late_id}: created_at is more than 10 minutes ahead of the "
                             "warehouse clock at landing")
    assert "@" not in reason and TOMORROW.strftime("%Y-%m-%d") not in reason  # field and rule, never a value
    assert _rows(warehouse, "select count(*) from raw.orders where order_id = %s", (late_id,))[0][0] == 0
    assert _rows(warehouse, "select count(*) from raw.orders")[0][0] == total - 1
    [(cursor,)] = _rows(warehouse, "select cursor_value from raw.cursors where source_id = 'northwind'")
    assert cursor < TOMORROW, "the held-back order never advances the cursor"

    first = transform(sandbox.config, warehouse, as_of=AS_OF.date())
    assert first.published, first.failures
    published = {(p, o) for p, o in _rows(warehouse, "select partner_id, order_id from analytics.fct_orders")}
    assert len(published) == total - 1 and ("northwind", late_id) not in published
    assert any(p == WOO_PARTNER for p, _ in published) and any(p == "northwind" for p, _ in published)

    # A run before its time still holds it back (same reason, not quarantined twice); once its time has come it lands.
    again = ingest_all(sandbox.config, warehouse, options=replace(FAST, as_of=TOMORROW - timedelta(minutes=11)))
    assert {r.source_id: (r.landed, r.quarantined) for r in again}["northwind"] == (0, 1)
    assert _rows(warehouse, "select count(*) from raw.quarantine")[0][0] == 1
    within = ingest_all(sandbox.config, warehouse, options=replace(FAST, as_of=TOMORROW - timedelta(minutes=9)))
    assert {r.source_id: (r.landed, r.quarantined) for r in within}["northwind"] == (1, 0), "10 minutes are allowed"
    [(ordered,)] = _rows(warehouse, "select (payload->>'created_at')::timestamptz from raw.orders"
                                    " where partner_id = 'northwind' and order_id = %s", (late_id,))
    assert ordered == TOMORROW

    second = transform(sandbox.config, warehouse, as_of=TOMORROW.date())
    assert second.published, second.failures
    [(ordered_at,)] = _rows(warehouse, "select ordered_at from analytics.fct_orders"
                                       " where partner_id = 'northwind' and order_id = %s", (late_id,))
    assert ordered_at == TOMORROW
    assert _rows(warehouse, "select count(*) from analytics.fct_orders")[0][0] == total


def _shopify(order_id: int, at: str, *, refund_at: str | None = None) -> dict:
    return {"id": order_id, "created_at": at, "updated_at": at, "currency": "USD", "subtotal_price": "10.00",
            "email": "shopper@example.test", "financial_status": "paid", "cancelled_at": None,
            "refunds": [] if refund_at is None else [
                {"id": 1, "created_at": refund_at, "refund_line_items": [{"subtotal": "1.00"}]}]}


def _woo(order_id: int, created: str, modified: str, *, refund_at: str | None = None) -> dict:
    return {"id": order_id, "date_created_gmt": created, "date_modified_gmt": modified, "currency": "EUR",
            "status": "completed", "billing": {"email": "shopper@example.test"},
            "line_items": [{"total": "10.00"}],
            "alliance_refunds": [] if refund_at is None else [
                {"id": 5, "date_created_gmt": refund_at, "line_items": [{"total": "-1.00"}]}]}


@pytest.mark.parametrize("entity", ["shopify", "woocommerce", "clicks"])
def test_every_date_of_a_version_counts_and_the_cursor_stays_before_it(warehouse, entity):
    """created, modified, a refund's date (the whole version is held) and a click's EventDate; PostgreSQL's now()
    is the clock when none is injected."""
    now = _rows(warehouse, "select date_trunc('second', now())")[0][0].astimezone(UTC)
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    gmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    past, soon, ahead = now - timedelta(days=2), now + timedelta(minutes=9), now + timedelta(hours=1)
    if entity == "shopify":
        records = [_shopify(1, z(past)), _shopify(2, z(past), refund_at=z(ahead)), _shopify(3, z(soon))]
        expected_field = "refunds[0].created_at"
    elif entity == "woocommerce":
        records = [_woo(1, gmt(past), gmt(past)), _woo(2, gmt(past), gmt(ahead)),
                   _woo(3, gmt(past), gmt(past), refund_at=gmt(soon))]
        expected_field = "date_modified_gmt"
    else:
        records = [{"Id": str(i), "ReferrerPartnerId": "a", "DestinationPartnerId": "b", "EventDate": z(at),
                    "CustomerEmail": "shopper@example.test"} for i, at in ((1, past), (2, ahead), (3, soon))]
        expected_field = "EventDate"
    with psycopg.connect(warehouse) as conn:
        ensure_raw_schema(conn)
        if entity == "clicks":
            outcome = land_clicks_page(conn, uuid.uuid4(), "net", records, salt=SALT, cursor_cap=ahead)
        else:
            outcome = land_orders_page(conn, uuid.uuid4(), "shop", entity, records, salt=SALT, cursor_cap=ahead)
    assert (outcome.landed, outcome.quarantined) == (2, 1)
    [(key, reason, payload)] = _rows(warehouse, "select record_key, reason, payload from raw.quarantine")
    assert key == "2" and f": {expected_field} is more than 10 minutes ahead of the warehouse clock" in reason
    assert "shopper@example.test" not in payload + reason
    [(cursor,)] = _rows(warehouse, "select cursor_value from raw.cursors")
    if entity == "shopify":  # the held order's own updated_at is in the past: the cursor stops there
        assert cursor == past == outcome.held_from
    else:
        assert cursor <= soon < ahead
