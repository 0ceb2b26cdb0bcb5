"""The platforms' own published payloads (shared/fixtures) through HTTP, the connectors and dbt staging.

Served by the sandbox's Shopify and WooCommerce styles over loopback, landed by ingest, typed by the
staging models; every expected value below is read off the fixture by hand (PRODUCT.md §3).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import shared_fixtures_dir

from alliance.config import load_config
from alliance.dbt_runner import run_dbt
from connectors.ingest import ingest_all
from connectors.pii import customer_key
from devstack.sandbox.server import start_sandbox
from devstack.sandbox.world import World

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = shared_fixtures_dir()
SALT = "fixture-salt"
D = Decimal
STAGING = ["stg_shopify__orders", "stg_shopify__order_refunds", "stg_shopify__order_discount_codes",
           "stg_woocommerce__orders", "stg_woocommerce__order_refunds", "stg_woocommerce__order_discount_codes",
           "int_orders__unioned", "int_order_refunds__unioned"]

CONFIG = """
reporting_currency: USD
attribution: {{model: last_click, lookback_days: 30}}
lock_days: 30
fx_rates: {fx}
alerts: {alerts}
partners:
  - id: shop
    name: Shopify fixture store
    platform: shopify
    base_url: {url}/shop
    credentials_env: FIXTURE_SHOP_TOKEN
    currency: USD
    referral_codes: [SHOP10]
    commission: {{type: percent, rate: 0.10}}
  - id: woo
    name: WooCommerce fixture store
    platform: woocommerce
    base_url: {url}/woo
    credentials_env: FIXTURE_WOO_KEYS
    currency: USD
    referral_codes: [WOO10]
    commission: {{type: percent, rate: 0.10}}
"""


def _load(name: str):  # noqa: ANN202
    return json.loads((FIXTURES / name).read_text())


def _fixture_world() -> World:
    shop_orders = _load("shopify_orders.json")["orders"]
    refund = _load("shopify_refund.json")["refund"]
    with_refund = copy.deepcopy(shop_orders[0])
    with_refund["refunds"] = [refund]  # the refund fixture belongs to this order (order_id 450789469)
    guest = copy.deepcopy(shop_orders[0])  # a guest checkout: no e-mail, no customer
    guest.update(id=450789470, email=None, contact_email=None, customer=None, discount_codes=[{"code": " shop10 "}],
                 landing_site="/products/ipod?utm_source=x&ref=NW%2010", updated_at="2008-01-10T11:00:01-05:00")
    woo_orders = _load("woocommerce_orders.json")
    woo_guest = copy.deepcopy(woo_orders[0])  # a guest with a blank e-mail, a coupon, a referral and cancelled
    woo_guest.update(id=728, status="cancelled", refunds=[], date_created_gmt="2017-03-23T23:30:00",
                     date_modified_gmt="2017-03-24T01:00:00",
                     coupon_lines=[{"id": 1, "code": "Woo10", "discount": "2.00"}],
                     meta_data=[*woo_guest["meta_data"], {"id": 9, "key": "_alliance_ref", "value": " SHOP10 "}])
    woo_guest["billing"]["email"] = ""
    return World(seed=0, partners={}, orders={"shop": [with_refund, guest], "woo": [*woo_orders, woo_guest]},
                 clicks={}, tokens={"shop": "shop-token", "woo": "ck_fixture:cs_fixture"}, scenarios={},
                 refunds={"woo": {"723": _load("woocommerce_order_refunds.json")}})


@pytest.fixture(scope="module")
def staged(fresh_database_factory, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIXTURE_SHOP_TOKEN", "shop-token")
        mp.setenv("FIXTURE_WOO_KEYS", "ck_fixture:cs_fixture")
        mp.setenv("ALLIANCE_PII_SALT", SALT)
        url = fresh_database_factory("fixtures")
        with start_sandbox(_fixture_world()) as sandbox:
            path = tmp_path_factory.mktemp("fixtures") / "alliance.yml"
            path.write_text(CONFIG.format(url=sandbox.url, fx=ROOT / "config" / "demo_fx_rates.csv",
                                          alerts=ROOT / "config" / "alerts.yml"))
            results = ingest_all(load_config(path), url)
        assert [(r.source_id, r.status, r.landed, r.quarantined) for r in results] == [
            ("shop", "succeeded", 2, 0), ("woo", "succeeded", 3, 0)]
        outcome = run_dbt(["run", "--select", *STAGING], url, "alliance_fixtures")
        assert outcome.success, outcome.failures
        yield url


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_orders_stage_with_utc_times_string_amounts_and_guests(staged):
    rows = {r[1]: r for r in _rows(staged, (
        "select partner_id, order_id, platform, ordered_at, updated_at, customer_key, platform_customer_id, "
        "currency, commissionable_amount, is_cancelled, is_test, landing_ref "
        "from alliance_fixtures_work.stg_shopify__orders union all "
        "select partner_id, order_id, platform, ordered_at, updated_at, customer_key, platform_customer_id, "
        "currency, commissionable_amount, is_cancelled, is_test, landing_ref "
        "from alliance_fixtures_work.stg_woocommerce__orders"))}
    assert set(rows) == {"450789469", "450789470", "727", "723", "728"}
    # Shopify: "2008-01-10T11:00:00-05:00" is 16:00 UTC; subtotal_price "597.00" is the amount
    assert rows["450789469"][2:] == ("shopify", _utc(2008, 1, 10, 16), _utc(2008, 1, 10, 16),
                                     customer_key("bob.norman@hostmail.com", SALT), "207119551", "USD", D("597.00"),
                                     False, False, None)
    assert rows["450789470"][5:7] == (None, None)  # guest checkout
    assert rows["450789470"][11] == "NW 10"  # the landing URL's ref, percent-decoded
    # WooCommerce: date_created_gmt "2017-03-22T19:28:02" is UTC (date_created, local, says 16:28)
    assert rows["727"][2:] == ("woocommerce", _utc(2017, 3, 22, 19, 28, 2), _utc(2017, 3, 22, 19, 28, 8),
                               customer_key("john.doe@example.com", SALT), None, "USD", D("18.00"), False, False, None)
    assert rows["723"][3] == _utc(2017, 3, 21, 19, 16)
    assert rows["723"][6] == "26" and rows["723"][8] == D("29.00")  # "9.00" + "20.00"
    assert rows["728"][5] is None and rows["728"][9] is True and rows["728"][11] == "SHOP10"


def test_refunds_stage_per_platform(staged):
    shop = _rows(staged, "select order_id, refund_id, refunded_at, refunded_amount, line_item_count "
                         "from alliance_fixtures_work.stg_shopify__order_refunds")
    # "2016-06-20T13:35:06-04:00"; two refunded line items of "199.00" (this API version has no subtotal)
    assert shop == [("450789469", "509562969", _utc(2016, 6, 20, 17, 35, 6), D("398.00"), 2)]
    woo = sorted(_rows(staged, "select order_id, refund_id, refunded_at, refunded_amount, line_item_count "
                               "from alliance_fixtures_work.stg_woocommerce__order_refunds"))
    assert woo == [
        ("723", "724", _utc(2017, 3, 21, 19, 55, 37), D("9.00"), 1),  # -line_items[].total "-9.00"
        ("723", "726", _utc(2017, 3, 21, 20, 7, 11), D("0"), 0),  # amount "10.00" but no line items: reduces nothing
    ]


def test_codes_stage_and_no_email_reaches_the_warehouse(staged):
    codes = sorted(_rows(staged, "select order_id, code_position, code_normalized from "
                                 "alliance_fixtures_work.stg_shopify__order_discount_codes union all "
                                 "select order_id, code_position, code_normalized from "
                                 "alliance_fixtures_work.stg_woocommerce__order_discount_codes"))
    assert codes == [("450789470", 1, "SHOP10"), ("728", 1, "WOO10")]
    leaked = _rows(staged, "select order_id from raw.orders where payload::text ~ '[A-Za-z0-9._-]+@[A-Za-z0-9-]+\\.'")
    assert leaked == []


def test_woocommerce_rows_reach_the_platform_unions(staged):
    orders = _rows(staged, "select platform, count(*), sum(commissionable_amount) "
                           "from alliance_fixtures_work.int_orders__unioned group by 1 order by 1")
    assert orders == [("shopify", 2, D("1194.00")), ("woocommerce", 3, D("65.00"))]  # 18 + 29 + 18
    refunds = _rows(staged, "select sum(refunded_amount), count(*) "
                            "from alliance_fixtures_work.int_order_refunds__unioned")
    assert refunds == [(D("407.00"), 3)]  # 398 (Shopify) + 9 + 0 (WooCommerce)
