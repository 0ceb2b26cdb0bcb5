"""dbt build on a small hand-built alliance: the published numbers are checked to the cent.

Each expected value is worked out by hand from PRODUCT.md §6 in the comments next to the data,
independently of the SQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from alliance.dbt_runner import SESSION_SETTINGS, dbt_vars_from_config, run_dbt, target_dir
from alliance.migrate import migrate
from alliance.schemas import PUBLISHED_TABLES

ROOT = Path(__file__).resolve().parents[1]
LOAD = str(uuid.uuid4())
AS_OF = date(2026, 12, 15)
VARS = {"as_of_date": AS_OF.isoformat(), "lock_days": 30, "lookback_days": 30, "reporting_currency": "USD"}
D = Decimal


def _order(order_id: int, created_at: str, subtotal: str, *, customer: str | None = None, codes: tuple = (),
           landing: str | None = None, currency: str = "USD", refunds: tuple = (), cancelled_at: str | None = None,
           financial_status: str = "paid", test: bool = False) -> dict:
    """A Shopify-shaped order (string amounts, local-offset timestamps, e-mail replaced by the key)."""
    return {
        "id": order_id, "email": customer, "created_at": created_at, "updated_at": created_at,
        "currency": currency, "subtotal_price": subtotal, "total_price": subtotal, "test": test,
        "financial_status": financial_status, "cancelled_at": cancelled_at, "landing_site": landing,
        "landing_site_ref": "IGNORED", "discount_codes": [{"code": c, "amount": "1.00", "type": "fixed_amount"}
                                                          for c in codes],
        "customer": {"id": 1000 + order_id, "email": customer} if customer else None,
        "refunds": [
            {"id": 9000 + i, "order_id": order_id, "created_at": at,
             "refund_line_items": [{"id": 1, "quantity": 1, "subtotal": amount} for amount in lines]}
            for i, (at, lines) in enumerate(refunds)
        ],
    }


A, B, C, D_, E, F, G = (f"{c * 64}" for c in "abcdef0")
ORDERS = [
    # N1: discount codes in order: own code ignored, BRIGHT5 wins over the landing ref. A's first order at
    # northwind, before brightpath's dated contract -> default new_customer_rate 0.15.
    # Refunds: 20.00 before lock (2026-11-30), a shipping-only refund (no lines), 10.00 after lock (leakage).
    # commission = 0.15 * (100 - 20) = 12.00, locked (2026-12-15 > 2026-11-30).
    ("northwind", _order(101, "2026-10-05T10:00:00-04:00", "100.00", customer=A, codes=("northwind10", "bright5"),
                         landing="/?ref=LUMEN15",
                         refunds=(("2026-10-20T10:00:00-04:00", ("20.00",)), ("2026-10-21T10:00:00Z", ()),
                                  ("2026-12-05T10:00:00Z", ("10.00",)))), A),
    # N2: A again; click 1 (lumen) came before N1 -> reset; clicks "10" (tidewater) and "9" (lumen) tie on time,
    # "10" wins by (length, text). Default percent 0.10 (not a first order): 0.10 * 50 = 5.00, locked.
    ("northwind", _order(102, "2026-10-20T12:00:00Z", "50.00", customer=A), A),
    # N3: B; lumen click exactly 30*24h before (inclusive edge) beats brightpath's click 1s earlier (outside).
    # lumen's flat contract ended 2026-11-01 (exclusive) -> default; B's first order: 0.15 * 200 = 30.00;
    # lock date 2026-12-30 -> pending.
    ("northwind", _order(103, "2026-11-14T12:00:00Z", "200.00", customer=B), B),
    # N5: test order -> no attribution.
    ("northwind", _order(105, "2026-10-06T12:00:00Z", "70.00", customer=C, codes=("BRIGHT5",), test=True), C),
    # N6: cancelled before lock -> no attribution.
    ("northwind", _order(106, "2026-10-21T12:00:00Z", "80.00", customer=C, codes=("BRIGHT5",),
                         cancelled_at="2026-10-22T12:00:00Z"), C),
    # N7: cancelled after its lock date (2026-10-30) -> counts as not cancelled: 0.15 * 40 = 6.00, locked.
    ("northwind", _order(107, "2026-09-10T12:00:00Z", "40.00", customer=D_, codes=("BRIGHT5",),
                         cancelled_at="2026-12-01T12:00:00Z", financial_status="voided"), D_),
    # N8: guest; landing ref `bright5` (lower case, second parameter). Local date 2026-10-15 but UTC date
    # 2026-10-14, before the 0.06 contract -> default 0.10 (never a first order): 0.10 * 12.25 = 1.225 -> 1.23.
    ("northwind", _order(108, "2026-10-15T01:30:00+02:00", "12.25",
                         landing="https://northwind.example.com/p?utm=x&ref=bright5#top"), None),
    # N9: G, no code, no click -> organic.
    ("northwind", _order(109, "2026-10-25T12:00:00Z", "60.00", customer=G), G),
    # L1 (EUR): own code ignored; northwind click; FX 1.20 (2026-10-10 is the latest on/before 2026-10-12);
    # a later self-referral click is ignored. 0.08 * 99.99 * 1.20 = 9.59904 -> 9.60; revenue 119.988 -> 119.99.
    ("lumen", _order(201, "2026-10-12T08:00:00Z", "99.99", customer=A, codes=("LUMEN15",), currency="EUR"), A),
    # T1: own code, unknown code ignored, landing ref NORTHWIND10 -> northwind; flat 5.00.
    ("tidewater", _order(301, "2026-10-03T12:00:00Z", "30.00", customer=E, codes=("tide20", "NOPE"),
                         landing="/?ref=northwind10"), E),
    # T2: BRIGHT5; fully refunded before lock -> flat commission 0.
    ("tidewater", _order(302, "2026-10-04T12:00:00Z", "25.00", customer=F, codes=("BRIGHT5",),
                         refunds=(("2026-10-06T12:00:00Z", ("25.00",)),)), F),
]

CLICKS = [
    ("1", "lumen", "northwind", "2026-10-05T13:00:00Z", A),      # before N1 (14:00Z): reset by the purchase
    ("10", "tidewater", "northwind", "2026-10-10T00:00:00Z", A),  # tie with "9": wins
    ("9", "lumen", "northwind", "2026-10-10T00:00:00Z", A),
    ("20", "lumen", "northwind", "2026-10-15T12:00:00Z", B),      # exactly 30 days before N3
    ("21", "brightpath", "northwind", "2026-10-15T11:59:59Z", B),  # one second outside
    ("30", "northwind", "lumen", "2026-10-11T09:00:00Z", A),
    ("31", "lumen", "lumen", "2026-10-12T07:00:00Z", A),          # self-referral: never eligible, not sent
    ("40", "brightpath", "tidewater", "2026-10-15T09:00:00Z", None),
]


def _load(url: str, *, with_eur_rates: bool = True) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for partner_id, payload, key in ORDERS:
            conn.execute(
                "insert into raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload, load_id)"
                " values (%s, %s, 'shopify', %s, %s, %s, %s)",
                (partner_id, str(payload["id"]), payload["updated_at"], key, json.dumps(payload), LOAD),
            )
        for click_id, ref, dest, at, key in CLICKS:
            payload = {"Id": click_id, "ReferrerPartnerId": ref, "DestinationPartnerId": dest, "EventDate": at,
                       "ReferralCode": None, "CustomerEmail": key}
            conn.execute(
                "insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id)"
                " values ('alliance_network', %s, %s, %s, %s, %s)",
                (click_id, at, key, json.dumps(payload), LOAD),
            )
        conn.execute(
            "insert into raw.cfg_partners values"
            " ('northwind', 'Northwind', 'shopify', 'USD', 'percent', 0.10, 0.15, null),"
            " ('lumen', 'Lumen', 'shopify', 'EUR', 'percent', 0.08, null, null),"
            " ('tidewater', 'Tidewater', 'shopify', 'USD', 'flat', null, null, 5.00),"
            " ('brightpath', 'Brightpath', 'none', 'USD', null, null, null, null)"
        )
        conn.execute(
            "insert into raw.cfg_referral_codes values ('NORTHWIND10', 'northwind'), ('BRIGHT5', 'brightpath'),"
            " ('LUMEN15', 'lumen'), ('TIDE20', 'tidewater')"
        )
        conn.execute(
            "insert into raw.cfg_contracts values"
            " ('northwind', 'brightpath', 'percent', 0.06, null, null, '2026-10-15', null),"
            " ('northwind', 'lumen', 'flat', null, null, 5.00, '2026-10-01', '2026-11-01')"
        )
        if with_eur_rates:
            conn.execute("insert into raw.cfg_fx_rates values ('2026-09-30', 'EUR', 1.10), ('2026-10-10', 'EUR', 1.20),"
                         " ('2026-10-13', 'EUR', 1.50)")
        conn.execute(
            "insert into raw.cfg_objectives values ('northwind', '2026-10-01', 'referred_orders', 40),"
            " ('brightpath', '2026-10-01', 'attributed_revenue_rc', 5000)"
        )


def _only_failure(args: list[str], url: str) -> str:
    """Run dbt expecting it to fail on exactly one node; that node's failure line."""
    outcome = run_dbt(args, url, "alliance_build", VARS)
    assert not outcome.success
    [line] = outcome.failures
    return line


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def built(fresh_database_factory) -> str:
    url = fresh_database_factory("dbt")
    _load(url)
    outcome = run_dbt(["build"], url, "alliance_build", VARS)
    assert outcome.success, outcome.failures
    return url


def test_attribution_and_commission_to_the_cent(built: str) -> None:
    rows = _rows(built, "select partner_id, order_id, referrer_partner_id, attribution_reason, credit,"
                        " commission_rc, commission_state, attribution_model, click_id"
                        " from alliance_build.fct_order_attribution where attribution_model = 'last_click'"
                        " order by partner_id, order_id")
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert got == {
        ("lumen", "201"): ("northwind", "click", D("1"), D("9.60"), "locked", "last_click", "30"),
        ("northwind", "101"): ("brightpath", "code", D("1"), D("12.00"), "locked", "last_click", None),
        ("northwind", "102"): ("tidewater", "click", D("1"), D("5.00"), "locked", "last_click", "10"),
        ("northwind", "103"): ("lumen", "click", D("1"), D("30.00"), "pending", "last_click", "20"),
        ("northwind", "107"): ("brightpath", "code", D("1"), D("6.00"), "locked", "last_click", None),
        ("northwind", "108"): ("brightpath", "code", D("1"), D("1.23"), "locked", "last_click", None),
        ("northwind", "109"): (None, "organic", D("1"), D("0"), None, "last_click", None),
        ("tidewater", "301"): ("northwind", "code", D("1"), D("5.00"), "locked", "last_click", None),
        ("tidewater", "302"): ("brightpath", "code", D("1"), D("0"), "locked", "last_click", None),
    }
    revenue = _rows(built, "select attributed_revenue_rc from alliance_build.fct_order_attribution"
                           " where partner_id = 'lumen' and order_id = '201'")
    assert revenue == [(D("119.99"),)] * 5, "one row per model, the same revenue"


def test_models_side_by_side_and_reconciliation(built: str) -> None:
    # N2 (northwind 102): clicks "9" (lumen) and "10" (tidewater) at the same time, both eligible.
    rows = _rows(built, "select attribution_model, referrer_partner_id, credit, attributed_revenue_rc, commission_rc,"
                        " commission_state from alliance_build.fct_order_attribution"
                        " where partner_id = 'northwind' and order_id = '102' order by 1, 2")
    assert rows == [
        ("first_click", "lumen", D("1"), D("50.00"), None, None),
        ("last_click", "tidewater", D("1"), D("50.00"), D("5.00"), "locked"),
        ("linear", "lumen", D("0.5"), D("25.00"), None, None),
        ("linear", "tidewater", D("0.5"), D("25.00"), None, None),
        ("position_based", "lumen", D("0.5"), D("25.00"), None, None),
        ("position_based", "tidewater", D("0.5"), D("25.00"), None, None),
        ("time_decay", "lumen", D("0.5"), D("25.00"), None, None),
        ("time_decay", "tidewater", D("0.5"), D("25.00"), None, None),
    ]
    code_credit = _rows(built, "select distinct credit, referrer_partner_id from alliance_build.fct_order_attribution"
                               " where partner_id = 'northwind' and order_id = '101'")
    assert code_credit == [(D("1"), "brightpath")], "a code keeps credit 1 in every model"
    # Reconciliation 1: per order and model, attributed (referrers) + organic revenue = the order's revenue.
    unreconciled = _rows(built, """
        select a.partner_id, a.order_id, a.attribution_model, sum(a.credit), sum(a.attributed_revenue_rc),
               min(o.commissionable_amount_rc), sum(a.net_attributed_revenue_rc), min(o.net_amount_rc)
        from alliance_build.fct_order_attribution a
        join alliance_build.fct_orders o using (partner_id, order_id)
        group by 1, 2, 3
        having sum(a.credit) <> 1 or sum(a.attributed_revenue_rc) <> min(o.commissionable_amount_rc)
            or sum(a.net_attributed_revenue_rc) <> min(o.net_amount_rc)""")
    assert unreconciled == []
    models = _rows(built, "select count(distinct attribution_model), count(distinct (partner_id, order_id))"
                          " from alliance_build.fct_order_attribution")
    assert models == [(5, 9)]
    # Reconciliation 2: per month, commission earned by all referrers = owed by all destinations.
    months = _rows(built, """
        select month, sum(earned), sum(owed) from (
            select date_trunc('month', kpi_date)::date as month, commission_earned_rc as earned, 0 as owed
            from alliance_build.partner_kpis_daily
            union all
            select date_trunc('month', kpi_date)::date, 0, commission_owed_rc from alliance_build.partner_kpis_daily
        ) x group by 1 order by 1""")
    assert months and all(earned == owed for _, earned, owed in months)
    assert sum(earned for _, earned, _ in months) == D("68.83")
    # Refund leakage: N1's 10.00 refund after its lock date is brightpath's leakage on the October ledger.
    leakage = _rows(built, "select referrer_partner_id, destination_partner_id, refund_leakage_rc"
                           " from alliance_build.partner_balances where refund_leakage_rc <> 0")
    assert leakage == [("brightpath", "northwind", D("10.00"))]


def test_fct_orders(built: str) -> None:
    rows = _rows(built, "select order_id, is_new_customer, is_cancelled, is_test, commissionable_amount_rc,"
                        " refunded_amount_rc, net_amount_rc, refund_leakage_rc, ordered_at::text"
                        " from alliance_build.fct_orders where partner_id = 'northwind' order by order_id")
    got = {r[0]: r[1:] for r in rows}
    assert {k: v[0] for k, v in got.items()} == {
        "101": True, "102": False, "103": True, "105": False, "106": False, "107": True, "108": False, "109": True,
    }
    assert got["101"][3:7] == (D("100.00"), D("30.00"), D("70.00"), D("10.00"))
    assert got["106"][1:3] == (True, False) and got["105"][1:3] == (False, True)
    assert got["107"][1] is True  # still reported as cancelled, although it keeps its commission
    lumen = _rows(built, "select commissionable_amount, commissionable_amount_rc, fx_rate, currency"
                         " from alliance_build.fct_orders where partner_id = 'lumen'")
    assert lumen == [(D("99.99"), D("119.99"), D("1.20"), "EUR")]


def test_kpis_balances_objectives(built: str) -> None:
    kpi = _rows(built, "select clicks_sent, referred_orders, attributed_revenue_rc, net_attributed_revenue_rc,"
                       " aov_rc, refund_rate, new_customer_rate, commission_earned_rc, commission_owed_rc"
                       " from alliance_build.partner_kpis_daily where partner_id = 'brightpath'"
                       " and kpi_date = '2026-10-05'")
    assert kpi == [(0, 1, D("100.00"), D("70.00"), D("100.00"), D("0.3000"), D("1.0000"), D("12.00"), D("0.00"))]
    clicks = _rows(built, "select kpi_date::text, clicks_sent, conversion_rate, epc_rc"
                          " from alliance_build.partner_kpis_daily where partner_id = 'brightpath'"
                          " and clicks_sent > 0 order by kpi_date")
    assert clicks == [("2026-10-15", 2, D("0.0000"), D("0.00"))]
    owed = _rows(built, "select sum(commission_owed_rc), sum(commission_earned_rc)"
                        " from alliance_build.partner_kpis_daily where partner_id = 'northwind'")
    assert owed == [(D("54.23"), D("14.60"))]
    lumen_sent = _rows(built, "select sum(clicks_sent) from alliance_build.partner_kpis_daily"
                              " where partner_id = 'lumen'")
    assert lumen_sent == [(3,)]  # the self-referral is not counted
    balances = _rows(built, "select referrer_partner_id, destination_partner_id, month::text, commission_earned_rc,"
                            " commission_owed_rc, state from alliance_build.partner_balances"
                            " order by 1, 2, 3")
    assert balances == [
        ("brightpath", "northwind", "2026-09-01", D("6.00"), D("6.00"), "locked"),
        ("brightpath", "northwind", "2026-10-01", D("13.23"), D("13.23"), "locked"),
        ("brightpath", "tidewater", "2026-10-01", D("0.00"), D("0.00"), "locked"),
        ("lumen", "northwind", "2026-11-01", D("30.00"), D("30.00"), "pending"),
        ("northwind", "lumen", "2026-10-01", D("9.60"), D("9.60"), "locked"),
        ("northwind", "tidewater", "2026-10-01", D("5.00"), D("5.00"), "locked"),
        ("tidewater", "northwind", "2026-10-01", D("5.00"), D("5.00"), "locked"),
    ]
    objectives = _rows(built, "select partner_id, metric, actual, attainment from alliance_build.objective_progress"
                              " order by partner_id")
    assert objectives == [
        ("brightpath", "attributed_revenue_rc", D("137.25"), D("0.0275")),
        ("northwind", "referred_orders", D("2"), D("0.0500")),
    ]


def test_schemas_are_separate(built: str) -> None:
    tables = _rows(built, "select table_schema, table_type, count(*) from information_schema.tables"
                          " where table_schema like 'alliance_build%' group by 1, 2 order by 1, 2")
    # the published marts, kpi_alert_observations and objective_pace_daily (outside BI)
    assert ("alliance_build", "BASE TABLE", len(PUBLISHED_TABLES) + 2) in tables
    assert all(kind == "BASE TABLE" for schema, kind, _ in tables if schema == "alliance_build")
    assert any(schema == "alliance_build_work" for schema, _, _ in tables)


def test_descriptions_are_postgres_comments(built: str) -> None:
    """persist_docs: BI tools show the dbt descriptions, as table and column comments, on every published table."""
    missing = _rows(built, """
        select c.relname, a.attname
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'alliance_build' and a.attnum > 0 and not a.attisdropped
          and c.relkind in ('r', 'v', 'm', 'p')  -- not the indexes' columns
          and coalesce(col_description(c.oid, a.attnum), '') = ''""")
    assert missing == []
    tables = _rows(built, "select c.relname, obj_description(c.oid, 'pg_class') from pg_class c"
                          " join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'alliance_build'"
                          " and c.relkind = 'r'")
    assert len(tables) == len(PUBLISHED_TABLES) + 2 and all(comment for _, comment in tables)
    comment = _rows(built, "select col_description('alliance_build.fct_order_attribution'::regclass,"
                           " (select attnum from pg_attribute where attrelid ="
                           " 'alliance_build.fct_order_attribution'::regclass and attname = 'credit'))")
    assert "summing to 1" in comment[0][0]


def test_missing_fx_rate_fails_naming_currency_and_date(fresh_database_factory) -> None:
    url = fresh_database_factory("dbtfx")
    _load(url, with_eur_rates=False)
    outcome = run_dbt(["build"], url, "alliance_build", VARS)
    assert not outcome.success
    line = next(f for f in outcome.failures if "assert_order_fx_rate_available" in f)
    assert "currency=EUR" in line and "order_date=2026-10-12" in line, line


def test_dbt_vars_from_config() -> None:
    from alliance.config import AllianceConfig, Attribution, Partner

    cfg = AllianceConfig(
        reporting_currency="EUR", attribution=Attribution(lookback_days=14), lock_days=45,
        partners=[Partner(id="brightpath", platform="none")],
    )
    assert dbt_vars_from_config(cfg, date(2026, 1, 31)) == {
        "reporting_currency": "EUR", "attribution_model": "last_click", "lookback_days": 14, "lock_days": 45,
        "as_of_date": "2026-01-31", "session_settings": SESSION_SETTINGS,
    }
    assert dbt_vars_from_config(cfg)["as_of_date"] == ""


def test_enforced_unique_key_needs_the_unique_index(built: str) -> None:
    """The key test of the large work tables reads the catalog instead of scanning: it must see the index go."""
    select = ["test", "--select", "int_orders__unioned,test_type:data int_network__clicks,test_type:data"]
    assert run_dbt(select, built, "alliance_build", VARS).success
    with psycopg.connect(built) as conn:
        name, definition = conn.execute(
            "select indexname, indexdef from pg_indexes where schemaname = 'alliance_build_work'"
            " and tablename = 'int_orders__unioned' and indexdef like 'CREATE UNIQUE%'").fetchone()
        conn.execute(f'drop index alliance_build_work."{name}"')
    try:
        outcome = run_dbt(select, built, "alliance_build", VARS)
        assert not outcome.success
        assert len(outcome.failures) == 1 and "enforced_unique_key" in outcome.failures[0], outcome.failures
        assert "int_orders__unioned" in outcome.failures[0], outcome.failures
    finally:
        with psycopg.connect(built) as conn:
            conn.execute(definition)


def test_attribution_consistency_names_each_problem(built: str) -> None:
    """One aggregation checks credit sums and references per order, the unique index the key: each break shows."""
    select = ["build", "--full-refresh", "--select", "assert_attribution_consistent"]  # every order, not a scope
    table = "alliance_build.fct_order_attribution"
    assert run_dbt(select, built, "alliance_build", VARS).success
    with psycopg.connect(built) as conn:
        conn.execute(f"create table alliance_build.attribution_backup as table {table}")
        # 101: first_click row gone -> its credits sum to 0
        conn.execute(f"delete from {table} where order_id = '101' and attribution_model = 'first_click'")
        # 102 / 109: a (model, referrer) pair twice, organic (null referrer) too: the unique index refuses both
        for order_id, referrer in (("102", "is not null"), ("109", "is null")):
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute(f"insert into {table} select * from {table} where order_id = %s"
                             f" and attribution_model = 'linear' and referrer_partner_id {referrer} limit 1",
                             (order_id,))
        # 103: credited to a partner the config does not know
        conn.execute(f"update {table} set referrer_partner_id = 'nobody'"
                     " where order_id = '103' and attribution_model = 'last_click'")
        # 105 is a test order; 999 does not exist: both get organic rows (copies of 109's)
        conn.execute(f"create temp table organic as select * from {table} where order_id = '109'")
        for order_id in ("105", "999"):
            conn.execute("update organic set order_id = %s", (order_id,))
            conn.execute(f"insert into {table} select * from organic")
    try:
        line = _only_failure(select, built)
        assert line.startswith("test assert_attribution_consistent failed"), line
        assert ": 4 rows" in line, line
        with psycopg.connect(built) as conn:
            sql = (target_dir() / "compiled/alliance/tests/assert_attribution_consistent.sql").read_text()
            problems = dict(conn.execute(f"select order_id, problems from ({sql}) as t").fetchall())
        assert problems == {
            "101": "first_click credits sum to 0",
            "103": "referrer is not a known partner",
            "105": "test or cancelled order attributed",
            "999": "order missing from fct_orders",
        }
    finally:
        with psycopg.connect(built) as conn:
            conn.execute(f"truncate {table}")
            conn.execute(f"insert into {table} select * from alliance_build.attribution_backup")
            conn.execute("drop table alliance_build.attribution_backup")


def test_every_dbt_unit_test_runs_and_passes_here(built: str) -> None:
    """Production builds skip dbt's unit tests (code, not data); CI is where they must run, every one of them."""
    outcome = run_dbt(["test", "--select", "test_type:unit"], built, "alliance_build", VARS)
    assert outcome.success, outcome.failures
    ran = [r for r in outcome.raw["results"] if r["unique_id"].startswith("unit_test.")]
    declared = sum(path.read_text().count("  - name: ")
                   for path in (ROOT / "dbt_project/models").rglob("_unit_tests.yml"))
    assert len(ran) == declared >= 9 and all(r["status"] == "pass" for r in ran), [r["status"] for r in ran]


def test_published_marts_refuse_rows_breaking_their_rules(built: str) -> None:
    """Row rules of the published marts are PostgreSQL constraints (enforced dbt contracts): every write is checked
    without a test scanning the table, and a model producing a breaking row fails the build naming the rule."""
    attribution = "alliance_build.fct_order_attribution"
    with psycopg.connect(built) as conn:
        checks = {name for (name,) in conn.execute(
            "select conname from pg_constraint where conrelid = %s::regclass and contype = 'c'", (attribution,))}
        assert checks >= {"fct_order_attribution__attribution_model_accepted",
                          "fct_order_attribution__attribution_reason_accepted",
                          "fct_order_attribution__commission_for_commission_model",
                          "fct_order_attribution__commission_state_accepted"}, checks
        for statement, error in (
            (f"update {attribution} set attribution_model = 'lastclick' where order_id = '101'",
             psycopg.errors.CheckViolation),
            (f"update {attribution} set commission_rc = null where is_commission_model", psycopg.errors.CheckViolation),
            (f"update {attribution} set credit = null where order_id = '101'", psycopg.errors.NotNullViolation),
            ("update alliance_build.fct_orders set fx_rate = null", psycopg.errors.NotNullViolation),
            ("update alliance_build.fct_referrals set clicked_at = null", psycopg.errors.NotNullViolation),
            ("update alliance_build.partner_balances set state = 'open'", psycopg.errors.CheckViolation),
            ("update alliance_build.partner_kpis_daily set partner_id = null", psycopg.errors.NotNullViolation),
            ("update alliance_build.objective_progress set metric = null", psycopg.errors.NotNullViolation),
        ):
            with pytest.raises(error), conn.transaction():
                conn.execute(statement)

    work = "alliance_build_work.int_order_attribution"
    rebuild = ["run", "--full-refresh", "--select", "fct_order_attribution"]
    row = "where partner_id = 'northwind' and order_id = '101' and attribution_model = 'last_click'"
    with psycopg.connect(built) as conn:
        [(reason,)] = conn.execute(f"select attribution_reason from {work} {row}").fetchall()
        conn.execute(f"update {work} set attribution_reason = 'referral' {row}")
    try:
        line = _only_failure(rebuild, built)
        assert line.startswith("model fct_order_attribution error"), line
        assert "fct_order_attribution__attribution_reason_accepted" in line, line
    finally:
        with psycopg.connect(built) as conn:
            conn.execute(f"update {work} set attribution_reason = %s {row}", (reason,))
        assert run_dbt(rebuild, built, "alliance_build", VARS).success


def test_staged_rows_missing_a_key_fail_the_build_naming_the_column(built: str) -> None:
    """The staging views' not-null rules are NOT NULL columns of the tables they feed (enforced contracts): a raw click
    written past the loader without a referrer stops the build at int_network__clicks, which names the column."""
    with psycopg.connect(built) as conn:
        nullable = dict(conn.execute(
            "select table_name || '.' || column_name, is_nullable from information_schema.columns"
            " where table_schema = 'alliance_build_work'"
            " and table_name in ('int_orders__unioned', 'int_network__clicks')").fetchall())
        for column in ("partner_id", "order_id", "ordered_at", "currency", "commissionable_amount"):
            assert nullable[f"int_orders__unioned.{column}"] == "NO", column
        for column in ("network_id", "click_id", "referrer_partner_id", "destination_partner_id", "clicked_at"):
            assert nullable[f"int_network__clicks.{column}"] == "NO", column
        payload = {"Id": "no-referrer", "DestinationPartnerId": "northwind", "EventDate": "2026-10-05T09:00:00Z"}
        conn.execute("insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id)"
                     " values ('alliance_network', 'no-referrer', '2026-10-05T09:00:00Z', null, %s, %s)",
                     (json.dumps(payload), LOAD))
    try:
        line = _only_failure(["run", "--select", "int_network__clicks"], built)
        assert line.startswith("model int_network__clicks error"), line
        assert 'null value in column "referrer_partner_id"' in line, line
    finally:
        with psycopg.connect(built) as conn:
            conn.execute("delete from raw.clicks where click_id = 'no-referrer'")


def test_a_review_of_an_order_that_is_not_held_is_a_warning(built: str) -> None:
    """§8.5: a review naming an order alliance does not know, or one with no held row, is ignored; the build goes on
    and the run reports the reviews line and the order as a warning."""
    with psycopg.connect(built) as conn:
        conn.execute("insert into raw.cfg_reviews values ('northwind', '999', 'approve', '2026-11-01', 2),"
                     " ('northwind', '101', 'reject', '2026-11-01', 3)")
    try:
        outcome = run_dbt(["test", "--select", "warn_reviews_of_orders_not_held"], built, "alliance_build", VARS)
    finally:
        with psycopg.connect(built) as conn:
            conn.execute("delete from raw.cfg_reviews")
    assert outcome.success and outcome.failures == []
    [line] = outcome.warnings
    assert line.startswith("test warn_reviews_of_orders_not_held: 2 rows")
    assert "order_id=999, why_ignored=unknown order" in line and "order_id=101, why_ignored=order not held" in line
