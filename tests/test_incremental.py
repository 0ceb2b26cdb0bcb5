"""An incremental run gives exactly what a full refresh gives, and does not recompute history.

Real dbt on a real PostgreSQL: a synthetic alliance (bench/transform/generate.py) is built in full, then 1% new
orders and clicks plus changed orders (late refunds, cancellations) land; the incremental build's published tables
must equal, row for row, a `--full-refresh` build of the same data.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config
from alliance.incremental import dbt_build
from alliance.migrate import migrate
from alliance.publish import publish
from alliance.schemas import PUBLISHED_TABLES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.transform.generate import Generator  # noqa: E402
from bench.transform.programme import with_programme_terms, with_reviews  # noqa: E402

MARTS = PUBLISHED_TABLES
SCHEMA = "inc_build"
# the generated history ends the evening before the runs' as_of_date (2026-12-01), whatever the machine's clock says
HISTORY_UNTIL = datetime(2026, 11, 30, 23, tzinfo=UTC)
# work tables compared too: an incremental run must rewrite exactly the changed orders' rows (no duplicates)
WORK = ("int_order_attribution",)


def snapshot(url: str, schema: str = SCHEMA) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        tables = [(t, f"{schema}.{t}") for t in MARTS]
        if schema == SCHEMA:
            tables += [(t, f"{schema}_work.{t}") for t in WORK]
        return {t: conn.execute(f"select * from {relation} order by 1, 2, 3, 4").fetchall() for t, relation in tables}


def _oid(url: str, relation: str) -> int | None:
    with psycopg.connect(url) as conn:
        return conn.execute("select to_regclass(%s)::oid", (relation,)).fetchone()[0]


def _change_histories(url: str) -> None:
    """Changes whose effect reaches other, unchanged orders of the same customer at the same storefront.

    Two first orders move (one after the customer's last order, one to another customer): the later orders get
    another first order and previous order. A third customer's first order is cancelled before its lock date: the
    second order becomes the first one. A click lands for a fourth customer just before its second order: that
    order's last click changes, though the order itself did not.
    """
    with psycopg.connect(url) as conn:
        firsts = conn.execute("""
            select partner_id, order_id, customer_key,
                   max((payload ->> 'created_at')::timestamptz) over (partition by partner_id, customer_key),
                   (payload ->> 'created_at')::timestamptz,
                   jsonb_array_length(payload -> 'discount_codes') = 0 and payload ->> 'landing_site' is null
            from raw.orders as o
            where platform = 'shopify' and customer_key is not null
              and not coalesce((payload ->> 'test')::boolean, false) and payload ->> 'cancelled_at' is null
            order by partner_id, customer_key, (payload ->> 'created_at')::timestamptz""").fetchall()
        histories: dict[tuple, list] = {}
        for partner_id, order_id, customer, last, created, codeless in firsts:
            histories.setdefault((partner_id, customer), []).append((order_id, last, created, codeless))
        long = [(key, orders) for key, orders in histories.items() if len(orders) >= 3 and orders[1][3]][:4]
        assert len(long) == 4, "the synthetic alliance has customers with three orders or more"
        (partner_id, _), orders = long[0]
        conn.execute("update raw.orders set payload = jsonb_set(payload, '{created_at}', to_jsonb(%s::text)),"
                     " loaded_at = now() where partner_id = %s and order_id = %s",
                     ((orders[0][1] + timedelta(days=1)).isoformat(), partner_id, orders[0][0]))
        (partner_id, _), orders = long[1]
        conn.execute("update raw.orders set customer_key = %s, loaded_at = now()"
                     " where partner_id = %s and order_id = %s", ("f" * 64, partner_id, orders[0][0]))
        (partner_id, _), orders = long[2]
        cancelled = (orders[0][2] + timedelta(hours=1)).isoformat()
        conn.execute("update raw.orders set payload = jsonb_set(payload, '{cancelled_at}', to_jsonb(%s::text)),"
                     " loaded_at = now() where partner_id = %s and order_id = %s",
                     (cancelled, partner_id, orders[0][0]))
        (partner_id, customer), orders = long[3]
        referrer = conn.execute("select partner_id from raw.cfg_partners where partner_id <> %s order by 1 limit 1",
                                (partner_id,)).fetchone()[0]
        clicked = orders[1][2] - timedelta(seconds=1)
        payload = {"Id": "late-click", "ReferrerPartnerId": referrer, "DestinationPartnerId": partner_id,
                   "EventDate": clicked.isoformat(), "ReferralCode": None, "CustomerEmail": customer}
        conn.execute("insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id,"
                     " loaded_at) values ('alliance_network', 'late-click', %s, %s, %s, gen_random_uuid(), now())",
                     (clicked, customer, Jsonb(payload)))


def _reland_clicks(url: str) -> None:
    """Clicks landed again with another payload (a network corrected them): one moves to another referrer and a day
    earlier, one becomes a self-referral. The daily totals must take back what the old versions counted."""
    with psycopg.connect(url) as conn:
        picked = conn.execute("""
            select c.network_id, c.click_id, c.payload, c.clicked_at
            from raw.clicks as c join raw.cfg_partners as p on p.partner_id = c.payload ->> 'ReferrerPartnerId'
            where c.payload ->> 'ReferrerPartnerId' <> c.payload ->> 'DestinationPartnerId'
            order by c.click_id limit 2""").fetchall()
        assert len(picked) == 2
        partners = [r[0] for r in conn.execute("select partner_id from raw.cfg_partners order by 1")]
        (network, click_id, payload, clicked), (network2, click_id2, payload2, _) = picked
        other = next(p for p in partners if p not in (payload["ReferrerPartnerId"], payload["DestinationPartnerId"]))
        moved = clicked - timedelta(days=1)
        conn.execute("update raw.clicks set payload = %s, clicked_at = %s, loaded_at = now()"
                     " where network_id = %s and click_id = %s",
                     (Jsonb({**payload, "ReferrerPartnerId": other, "EventDate": moved.isoformat()}), moved, network,
                      click_id))
        conn.execute("update raw.clicks set payload = %s, loaded_at = now() where network_id = %s and click_id = %s",
                     (Jsonb({**payload2, "ReferrerPartnerId": payload2["DestinationPartnerId"]}), network2, click_id2))


def test_incremental_equals_full_refresh(fresh_database_factory) -> None:
    """Runs as in production: each build is published, and a publish recycles the snapshot it retires as the next
    build schema, so the last build brings a three-runs-old copy of the marts up to date in place."""
    url = fresh_database_factory("inc")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=datetime(2026, 12, 1, tzinfo=UTC).date())
    gen = Generator(config, seed=11)
    gen.write(url, 3000, history_until=HISTORY_UNTIL, step_seconds=60)

    first = dbt_build(url, SCHEMA, dbt_vars)
    assert first.full_refresh and first.outcome.success, first.outcome.failures
    first_attribution = _oid(url, f"{SCHEMA}.fct_order_attribution")
    publish(url, SCHEMA, run_id="r1")

    # two more runs, each with new orders (and their clicks) and changed orders (late refunds, cancellations)
    for run, day in (("r2", 3), ("r3", 4)):
        gen.write(url, 10, start=datetime(2026, 11, day, tzinfo=UTC), span_seconds=86400)
        assert gen.change(url, 5) == 5
        build = dbt_build(url, SCHEMA, dbt_vars)
        assert not build.full_refresh and build.outcome.success, build.outcome.failures
        publish(url, SCHEMA, run_id=run)
    # r3's publish retired r1's snapshot: it is the build schema now, r1's tables included
    assert _oid(url, f"{SCHEMA}.fct_order_attribution") == first_attribution
    published = snapshot(url, "analytics")

    # 1% new orders and 15 changed orders, landed now; a later run date moves commissions from pending to locked
    gen.write(url, 30, start=datetime(2026, 11, 5, tzinfo=UTC), span_seconds=5 * 86400)
    assert gen.change(url, 15) == 15
    _change_histories(url)
    _reland_clicks(url)
    later = {**dbt_vars, "as_of_date": "2027-01-15"}
    second = dbt_build(url, SCHEMA, later)
    assert not second.full_refresh and second.outcome.success, second.outcome.failures
    assert _oid(url, f"{SCHEMA}.fct_order_attribution") == first_attribution, "the marts were updated in place"
    with psycopg.connect(url) as conn:
        recomputed = conn.execute(f"select count(*) from {SCHEMA}_work.int_orders__changed").fetchone()[0]
        total = conn.execute("select count(*) from raw.orders").fetchone()[0]
    assert 45 <= recomputed < total * 0.2, "the incremental run recomputes the changed orders, not history"

    # nothing landed since: the rows the overlap re-reads were handled by the last run, so nothing is recomputed
    again = dbt_build(url, SCHEMA, later)
    assert not again.full_refresh and again.outcome.success, again.outcome.failures
    with psycopg.connect(url) as conn:
        assert conn.execute(f"select count(*) from {SCHEMA}_work.int_orders__changed").fetchone()[0] == 0
    incremental = snapshot(url)

    full = dbt_build(url, SCHEMA, later, full_refresh=True)
    assert full.outcome.success, full.outcome.failures
    refreshed = snapshot(url)
    for table in (*MARTS, *WORK):
        assert incremental[table] == refreshed[table], f"{table} differs between incremental and full refresh"
    assert len(refreshed["fct_orders"]) == 3050
    models = {row[2] for row in refreshed["fct_order_attribution"]}
    assert models == {"last_click", "first_click", "linear", "position_based", "time_decay"}
    states = {row[11] for row in refreshed["fct_order_attribution"]} - {None}
    assert states == {"locked"}, "every commission is locked on 2027-01-15"
    assert "pending" in {row[11] for row in published["fct_order_attribution"]}, "some were pending on 2026-12-01"


def _early_order(url: str, gen: Generator) -> tuple[tuple, dict[str, tuple]]:
    """A new order early in a busy programme month, credited by code to the referrer with the most orders there that
    reached a tier: every later order of that (destination, referrer, month) moves one place, so the order just
    below each tier boundary now earns the tier, though it did not change itself (§8.1-2). Returns the month and
    its commissioned orders' (rate, tier, commission) before."""
    with psycopg.connect(url) as conn:
        store, referrer, month = conn.execute("""
            select partner_id, referrer_partner_id, date_trunc('month', order_date)
            from analytics.fct_order_attribution where is_commission_model and is_commissioned
              and attribution_reason = 'code'
            group by 1, 2, 3 having bool_or(tier_from_orders is not null)
            order by count(*) desc, 1, 2 limit 1""").fetchone()
        code = conn.execute("select code from raw.cfg_referral_codes where partner_id = %s limit 1",
                            (referrer,)).fetchone()[0]
        created = month + timedelta(hours=1)
        payload = {**gen._order(store, created, None), "id": 999_999, "discount_codes": [{"code": code}],
                   "cancelled_at": None, "financial_status": "paid", "test": False, "refunds": [],
                   "subtotal_price": "300.00", "updated_at": created.isoformat()}
        conn.execute("insert into raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload,"
                     " load_id) values (%s, '999999', 'shopify', %s, null, %s, gen_random_uuid())",
                     (store, created, Jsonb(payload)))
        return (store, referrer, month), _month_rates(conn, "analytics", (store, referrer, month))


def _month_rates(conn: psycopg.Connection, schema: str, month: tuple) -> dict[str, tuple]:
    return {order_id: rest for order_id, *rest in conn.execute(
        f"select order_id, rate_applied, tier_from_orders, commission_rc from {schema}.fct_order_attribution"
        " where is_commissioned and partner_id = %s and referrer_partner_id = %s"
        " and date_trunc('month', order_date) = %s", month).fetchall()}


def test_programme_terms_incremental_equals_full_refresh(fresh_database_factory, tmp_path) -> None:
    """§8 on half the contracts (tiers, caps, clawback), holds, reviews and adjustments: the monthly rules reach
    across orders: the incremental path recomputes the changed orders, re-rates the rest of the months they touch
    from the stored rows, and still equals a full refresh."""
    url = fresh_database_factory("inc8")
    demo = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    config = with_programme_terms(demo, tmp_path)
    gen = Generator(config, seed=5)
    with psycopg.connect(url) as conn:
        migrate(conn)
    gen.write(url, 1500, history_until=HISTORY_UNTIL, step_seconds=60)
    config = with_reviews(config, url, tmp_path)
    with psycopg.connect(url) as conn:
        sync_config(conn, config)
    dbt_vars = dbt_vars_from_config(config, as_of_date=datetime(2026, 12, 1, tzinfo=UTC).date())
    first = dbt_build(url, SCHEMA, dbt_vars)
    assert first.full_refresh and first.outcome.success, first.outcome.failures
    publish(url, SCHEMA, run_id="p1")
    with psycopg.connect(url) as conn:
        states = dict(conn.execute("select commission_state, count(*) from analytics.fct_order_attribution"
                                   " group by 1").fetchall())
        kinds = {r[0] for r in conn.execute("select kind from analytics.commission_adjustments").fetchall()}
        tiered = conn.execute("select count(*) from analytics.fct_order_attribution where is_commissioned"
                              " and tier_from_orders >= 3 and rate_applied > 0.12").fetchone()[0]
    assert {"held", "locked", "pending"} <= set(states) and tiered > 0, (states, tiered)
    assert {"manual", "clawback"} <= kinds, kinds

    month, before = _early_order(url, gen)
    gen.write(url, 15, start=datetime(2026, 11, 2, tzinfo=UTC), span_seconds=3 * 86400)
    assert gen.change(url, 10) == 10
    later = {**dbt_vars, "as_of_date": "2027-01-15"}
    second = dbt_build(url, SCHEMA, later)
    assert not second.full_refresh and second.outcome.success, second.outcome.failures
    incremental = snapshot(url)
    with psycopg.connect(url) as conn:
        after = _month_rates(conn, SCHEMA, month)
    moved = {order_id for order_id, values in before.items() if after.get(order_id) != values}
    assert moved, "the early order moved an order of its month into the next tier"
    with psycopg.connect(url) as conn:
        recomputed = {r[0] for r in conn.execute(f"select order_id from {SCHEMA}_work.int_orders__changed")}
        total = conn.execute("select count(*) from raw.orders").fetchone()[0]
        rerated = {r[0] for r in conn.execute(f"select order_id from {SCHEMA}_work.int_order_attribution__rerated")}
    assert len(recomputed) < total * 0.1, "only the changed orders' attribution is recomputed, not whole months"
    assert moved & rerated and moved <= rerated | recomputed, "the orders the early one moved were re-rated in place"
    full = dbt_build(url, SCHEMA, later, full_refresh=True)
    assert full.outcome.success, full.outcome.failures
    refreshed = snapshot(url)
    for table in (*MARTS, *WORK):
        assert incremental[table] == refreshed[table], f"{table} differs between incremental and full refresh"


def test_config_change_forces_full_refresh(fresh_database_factory) -> None:
    url = fresh_database_factory("inc2")
    config = load_config(ROOT / "config" / "demo.yml", require_secrets=False)
    with psycopg.connect(url) as conn:
        migrate(conn)
        sync_config(conn, config)
    Generator(config, seed=3).write(url, 200)
    dbt_vars = dbt_vars_from_config(config)
    assert dbt_build(url, SCHEMA, dbt_vars).full_refresh
    assert not dbt_build(url, SCHEMA, dbt_vars).full_refresh
    # marts stay in place between incremental builds, unless the clock is behind a recorded watermark (another
    # worker's): then they are built from scratch
    marts = _oid(url, f"{SCHEMA}.fct_orders")
    assert not dbt_build(url, SCHEMA, dbt_vars).full_refresh
    assert _oid(url, f"{SCHEMA}.fct_orders") == marts
    with psycopg.connect(url) as conn:
        conn.execute("update ops.mart_snapshots set clicks_through = now() + interval '1 hour'")
    assert not dbt_build(url, SCHEMA, dbt_vars).full_refresh
    assert _oid(url, f"{SCHEMA}.fct_orders") != marts
    assert dbt_build(url, SCHEMA, {**dbt_vars, "lookback_days": 14}).full_refresh
    with psycopg.connect(url) as conn:
        conn.execute("update raw.cfg_contracts set amount = amount + 1 where contract_type = 'flat'")
    assert dbt_build(url, SCHEMA, {**dbt_vars, "lookback_days": 14}).full_refresh
