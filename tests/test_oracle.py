"""Hand-built cases for the §6 oracle: each pins one rule of PRODUCT.md to an exact number."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest
from oracle import OracleError, compute, config_from_dict, landing_ref, lock_date_for, parse_utc, round_cents

D = Decimal
FX = [
    (date(2026, 9, 28), "EUR", D("1.0500")),
    (date(2026, 10, 1), "EUR", D("1.1000")),
    (date(2026, 10, 20), "EUR", D("1.2000")),
]
AS_OF = date(2026, 11, 15)  # October orders lock on 2026-11-30: still pending


def base_partners() -> list[dict]:
    return [
        {
            "id": "northwind", "platform": "shopify", "base_url": "https://x/northwind", "credentials_env": "NW",
            "currency": "USD", "referral_codes": ["NORTHWIND10", "NWFRIENDS"],
            "commission": {"type": "percent", "rate": "0.10", "new_customer_rate": "0.15"},
            "contracts": [
                {"referrer": "brightpath", "type": "percent", "rate": "0.06", "effective_from": "2026-10-15"},
                {"referrer": "lumen", "type": "flat", "amount": "5.00", "effective_from": "2026-10-01",
                 "effective_to": "2026-11-01"},
            ],
        },
        {
            "id": "lumen", "platform": "shopify", "base_url": "https://x/lumen", "credentials_env": "LU",
            "currency": "EUR", "referral_codes": ["LUMEN15"], "commission": {"type": "percent", "rate": "0.08"},
        },
        {
            "id": "tidewater", "platform": "shopify", "base_url": "https://x/tidewater", "credentials_env": "TW",
            "currency": "USD", "referral_codes": ["TIDE20"], "commission": {"type": "percent", "rate": "0.12"},
        },
        {"id": "brightpath", "platform": "none", "referral_codes": ["BRIGHT5"]},
    ]


def make_config(**overrides):
    raw = {"reporting_currency": "USD", "attribution": {"model": "last_click", "lookback_days": 30},
           "lock_days": 30, "partners": base_partners()}
    raw.update(overrides)
    return config_from_dict(raw)


def order(oid, created_at, subtotal="100.00", *, email="Ann@Example.com", codes=(), landing=None, currency="USD",
          cancelled_at=None, financial_status="paid", test=False, refunds=(), updated_at=None) -> dict:
    """A Shopify order payload in the API's own shape (string amounts, local offsets)."""
    return {
        "id": oid, "created_at": created_at, "updated_at": updated_at or created_at, "currency": currency,
        "subtotal_price": subtotal, "discount_codes": [{"code": c, "amount": "1.00", "type": "fixed_amount"}
                                                       for c in codes],
        "landing_site": landing, "landing_site_ref": "not-used", "email": email, "cancelled_at": cancelled_at,
        "financial_status": financial_status, "test": test,
        "refunds": [
            {"id": i, "created_at": at, "refund_line_items": [{"id": i * 10 + j, "quantity": 1, "subtotal": amt}
                                                              for j, amt in enumerate(amounts)]}
            for i, (at, amounts) in enumerate(refunds, start=1)
        ],
    }


def click(cid, at, referrer="tidewater", dest="northwind", email="ann@example.com", code=None) -> dict:
    return {"Id": cid, "ReferrerPartnerId": referrer, "DestinationPartnerId": dest, "EventDate": at,
            "ReferralCode": code, "CustomerEmail": email}


def run(orders, clicks=(), *, config=None, as_of=AS_OF, fx=FX):
    return compute(config or make_config(), fx, orders, {"alliance_network": list(clicks)}, as_of)


def test_code_beats_click_and_first_code_in_order_wins():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z", codes=["unknown", " tide20 ", "LUMEN15"])]},
              [click("5", "2026-10-05T11:00:00Z", referrer="lumen")])
    a = res.attribution[("northwind", "1")]
    assert (a.referrer_partner_id, a.reason, a.code, a.credit) == ("tidewater", "code", "TIDE20", D(1))
    # first order of ann at northwind: new_customer_rate 0.15 of 100.00
    assert a.commission_rc == D("15.00") and a.commission_state == "pending"
    assert a.eligible_click_ids == ("5",)


def test_landing_ref_is_used_after_discount_codes_and_landing_site_ref_is_not():
    assert landing_ref("/products/x?utm=1&ref=Tide20") == "Tide20"
    assert landing_ref("https://shop.example.com/?source=abc") is None
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z", codes=["NWFRIENDS"],
                                   landing="https://nw.example.com/landing?ref=tide20&x=1")]})
    assert res.attribution[("northwind", "1")].referrer_partner_id == "tidewater"


def test_own_code_is_ignored_and_click_decides():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z", codes=["NORTHWIND10"], landing="/?ref=nwfriends")]},
              [click("7", "2026-10-04T12:00:00Z", referrer="lumen")])
    a = res.attribution[("northwind", "1")]
    assert (a.referrer_partner_id, a.reason, a.click_id) == ("lumen", "click", "7")
    # lumen has a flat 5.00 contract at northwind in October
    assert a.commission_rc == D("5.00")


def test_lookback_edge_is_inclusive_and_one_second_outside_is_not():
    inside = run({"northwind": [order(1, "2026-10-31T12:00:00+00:00")]}, [click("1", "2026-10-01T12:00:00Z")])
    assert inside.attribution[("northwind", "1")].reason == "click"
    outside = run({"northwind": [order(1, "2026-10-31T12:00:00+00:00")]}, [click("1", "2026-10-01T11:59:59Z")])
    a = outside.attribution[("northwind", "1")]
    assert (a.referrer_partner_id, a.reason, a.commission_rc, a.commission_state) == (None, "organic", D(0), None)
    # a click after the order does not count either
    after = run({"northwind": [order(1, "2026-10-31T12:00:00Z")]}, [click("1", "2026-10-31T12:00:01Z")])
    assert after.attribution[("northwind", "1")].reason == "organic"


def test_lookback_is_in_24_hour_days_across_local_offsets():
    # 2026-10-31T07:00-05:00 is 12:00 UTC; the click exactly 30x24h earlier counts.
    res = run({"northwind": [order(1, "2026-10-31T07:00:00-05:00")]}, [click("1", "2026-10-01T12:00:00Z")])
    assert res.attribution[("northwind", "1")].reason == "click"


def test_credit_resets_after_each_purchase():
    orders = {"northwind": [
        order(1, "2026-10-05T12:00:00Z", codes=["LUMEN15"]),  # credited by code, still resets clicks
        order(2, "2026-10-06T12:00:00Z"),                     # click 1 predates order 1: organic
        order(3, "2026-10-08T12:00:00Z"),                     # click 2 came after order 2
    ]}
    res = run(orders, [click("1", "2026-10-04T12:00:00Z"), click("2", "2026-10-07T12:00:00Z", referrer="lumen")])
    assert res.attribution[("northwind", "1")].reason == "code"
    assert res.attribution[("northwind", "2")].reason == "organic"
    third = res.attribution[("northwind", "3")]
    assert (third.reason, third.click_id, third.referrer_partner_id) == ("click", "2", "lumen")
    assert [res.orders[("northwind", str(i))].is_new_customer for i in (1, 2, 3)] == [True, False, False]


def test_cancelled_or_test_earlier_orders_do_not_reset_or_count_as_first():
    orders = {"northwind": [
        order(1, "2026-10-05T12:00:00Z", cancelled_at="2026-10-06T00:00:00Z"),
        order(2, "2026-10-05T13:00:00Z", test=True),
        order(3, "2026-10-05T14:00:00Z", financial_status="voided"),
        order(4, "2026-10-06T12:00:00Z"),
    ]}
    res = run(orders, [click("1", "2026-10-04T12:00:00Z")])
    assert set(res.attribution) == {("northwind", "4")}
    a = res.attribution[("northwind", "4")]
    assert a.reason == "click" and a.is_first_order and a.commission_rc == D("15.00")
    assert res.orders[("northwind", "1")].is_cancelled and res.orders[("northwind", "3")].is_cancelled
    assert res.orders[("northwind", "2")].is_test and not res.orders[("northwind", "2")].is_new_customer


def test_click_tie_goes_to_greatest_id_in_length_then_text_order():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z")]},
              [click("999", "2026-10-04T12:00:00Z"), click("1000", "2026-10-04T12:00:00Z", referrer="lumen"),
               click("1001", "2026-10-03T12:00:00Z", referrer="brightpath")])
    a = res.attribution[("northwind", "1")]
    assert (a.click_id, a.referrer_partner_id) == ("1000", "lumen")


def test_clicks_need_same_customer_other_referrer_and_destination():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z", email="  ANN@example.COM\u00a0")]},
              [click("1", "2026-10-04T12:00:00Z", email=None),
               click("2", "2026-10-04T13:00:00Z", email="bob@example.com"),
               click("3", "2026-10-04T14:00:00Z", referrer="northwind"),
               click("4", "2026-10-04T15:00:00Z", dest="lumen"),
               click("5", "2026-10-01T00:00:00Z", email=" Ann@Example.com ")])
    assert res.attribution[("northwind", "1")].click_id == "5"
    guest = run({"northwind": [order(1, "2026-10-05T12:00:00Z", email="  ")]}, [click("1", "2026-10-04T12:00:00Z")])
    a = guest.attribution[("northwind", "1")]
    assert a.reason == "organic" and not guest.orders[("northwind", "1")].is_new_customer


def test_refunds_before_lock_reduce_commission_later_ones_do_not():
    # October order: lock date 2026-10-31 + 30 days = 2026-11-30.
    assert lock_date_for(parse_utc("2026-10-05T12:00:00Z", "t"), 30) == date(2026, 11, 30)
    o = order(1, "2026-10-05T12:00:00Z", subtotal="200.00", codes=["TIDE20"], refunds=[
        ("2026-11-30T23:59:59Z", ["20.00", "10.00"]),   # on the lock date: counts
        ("2026-11-30T20:00:00-05:00", ["40.00"]),       # Dec 1 in UTC: leakage
        ("2026-10-10T00:00:00Z", []),                   # shipping only: touches nothing
    ])
    res = run({"northwind": [o]}, as_of=date(2026, 12, 2))
    t = res.orders[("northwind", "1")]
    assert (t.refunded_amount, t.refunded_before_lock) == (D("70.00"), D("30.00"))
    assert (t.commissionable_amount_rc, t.refunded_amount_rc, t.net_amount_rc) == (D("200.00"), D("70.00"),
                                                                                    D("130.00"))
    a = res.attribution[("northwind", "1")]
    assert a.commission_rc == D("25.50")  # 0.15 x (200 - 30)
    assert a.attributed_revenue_rc == D("200.00")
    assert a.commission_state == "locked"  # as_of is after the lock date
    assert run({"northwind": [o]}, as_of=date(2026, 11, 30)).attribution[("northwind", "1")].commission_state \
        == "pending"


def test_commissionable_never_below_zero_and_flat_is_zero_when_nothing_left():
    refunded = [("2026-10-06T00:00:00Z", ["120.00"])]
    res = run({"northwind": [
        order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], refunds=refunded),
        order(2, "2026-10-05T12:00:00Z", email="cy@example.com", codes=["LUMEN15"], refunds=refunded),
        order(3, "2026-10-05T12:00:00Z", email="di@example.com", codes=["LUMEN15"],
              refunds=[("2026-10-06T00:00:00Z", ["99.99"])]),
    ]})
    assert res.attribution[("northwind", "1")].commission_rc == D("0.00")
    assert res.attribution[("northwind", "2")].commission_rc == D("0.00")  # flat, fully refunded
    assert res.attribution[("northwind", "3")].commission_rc == D("5.00")  # flat, 0.01 left
    assert res.orders[("northwind", "1")].net_amount_rc == D("-20.00")


def test_contract_changes_by_effective_from_and_new_customer_rate():
    orders = {"northwind": [
        order(1, "2026-10-14T23:59:59Z", codes=["BRIGHT5"]),                       # default, new customer 0.15
        order(2, "2026-10-14T20:30:00-04:00", codes=["BRIGHT5"], email="bo@x.io"),  # 10-15 UTC: contract 0.06
        order(3, "2026-10-16T12:00:00Z", codes=["BRIGHT5"]),                        # contract 0.06
        order(4, "2026-10-17T12:00:00Z", codes=["TIDE20"]),                          # default, returning: 0.10
        order(5, "2026-11-02T12:00:00Z", codes=["LUMEN15"]),                         # lumen flat ended 11-01
    ]}
    res = run(orders)
    got = {k[1]: a.commission_rc for k, a in res.attribution.items()}
    assert got == {"1": D("15.00"), "2": D("6.00"), "3": D("6.00"), "4": D("10.00"), "5": D("10.00")}
    assert res.balances == {
        ("brightpath", "northwind", "2026-10"): D("27.00"),
        ("tidewater", "northwind", "2026-10"): D("10.00"),
        ("lumen", "northwind", "2026-11"): D("10.00"),
    }


def test_eur_uses_latest_rate_on_or_before_the_order_date():
    orders = {"lumen": [
        order(1, "2026-10-19T23:00:00-02:00", subtotal="50.00", currency="EUR", codes=["TIDE20"]),  # 10-20 UTC
        order(2, "2026-10-19T12:00:00Z", subtotal="50.00", currency="EUR", codes=["TIDE20"], email="b@x.io"),
    ]}
    res = run(orders)
    assert res.orders[("lumen", "1")].fx_rate == D("1.2000")
    assert res.orders[("lumen", "1")].commissionable_amount_rc == D("60.00")
    assert res.attribution[("lumen", "1")].commission_rc == D("4.80")  # 0.08 x 50 x 1.2
    assert res.orders[("lumen", "2")].fx_rate == D("1.1000")
    assert res.attribution[("lumen", "2")].commission_rc == D("4.40")
    with pytest.raises(OracleError, match=r"EUR on or before 2026-09-27"):
        run({"lumen": [order(9, "2026-09-27T12:00:00Z", currency="EUR")]})


def test_rounding_is_once_and_half_away_from_zero():
    assert round_cents(D("0.005")) == D("0.01") and round_cents(D("-0.005")) == D("-0.01")
    assert round_cents(D("0.0049999")) == D("0.00")
    # 0.10 x 0.05 = 0.005 -> 0.01 (a returning customer: rate 0.10)
    res = run({"northwind": [order(1, "2026-10-01T00:00:00Z", codes=["TIDE20"]),
                             order(2, "2026-10-02T00:00:00Z", subtotal="0.05", codes=["TIDE20"])]})
    assert res.attribution[("northwind", "2")].commission_rc == D("0.01")
    # once, at full precision: 0.08 x 6.25 x 1.05 = 0.525 -> 0.53 (rounding 6.5625 to 6.56 first would give 0.52)
    fx = [(date(2026, 10, 1), "EUR", D("1.05"))]
    res = run({"lumen": [order(1, "2026-10-05T00:00:00Z", subtotal="6.25", currency="EUR", codes=["TIDE20"])]},
              fx=fx)
    assert res.orders[("lumen", "1")].commissionable_amount_rc == D("6.56")
    assert res.attribution[("lumen", "1")].commission_rc == D("0.53")


def test_cancelled_after_lock_counts_and_cancelled_before_does_not():
    late = order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], cancelled_at="2026-12-01T00:00:00Z")
    on_lock = order(2, "2026-10-05T12:00:00Z", codes=["TIDE20"], email="b@x.io",
                    cancelled_at="2026-11-30T18:00:00-05:00")  # 23:00 UTC on the lock date: cancelled
    res = run({"northwind": [late, on_lock]}, as_of=date(2026, 12, 5))
    assert res.orders[("northwind", "1")].is_cancelled and not res.orders[("northwind", "1")].counts_as_cancelled
    a = res.attribution[("northwind", "1")]
    assert (a.commission_rc, a.commission_state) == (D("15.00"), "locked")
    assert ("northwind", "2") not in res.attribution
    assert res.orders[("northwind", "1")].is_new_customer


def test_latest_version_of_an_order_wins_and_test_orders_get_no_attribution():
    v1 = order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], updated_at="2026-10-05T12:00:00Z")
    v2 = order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], updated_at="2026-10-07T09:00:00+02:00",
               refunds=[("2026-10-07T07:00:00Z", ["50.00"])])
    assert run({"northwind": [v1, v2]}).orders[("northwind", "1")].refunded_amount == D("50.00")
    res = run({"northwind": [v2, v1], "tidewater": [order(8, "2026-10-05T12:00:00Z", codes=["LUMEN15"], test=True)]})
    assert res.orders[("northwind", "1")].refunded_amount == D("50.00")
    assert res.attribution[("northwind", "1")].commission_rc == D("7.50")
    assert ("tidewater", "8") not in res.attribution and res.orders[("tidewater", "8")].is_test
    assert res.orders[("northwind", "1")].ordered_at.isoformat() == "2026-10-05T12:00:00+00:00"


def test_month_and_balances_use_the_utc_date():
    # 2026-10-31T21:00-05:00 is 2026-11-01 UTC: a November order, locking 2026-12-30.
    res = run({"northwind": [order(1, "2026-10-31T21:00:00-05:00", codes=["TIDE20"])]})
    assert res.balances == {("tidewater", "northwind", "2026-11"): D("15.00")}
    assert res.attribution[("northwind", "1")].lock_date == date(2026, 12, 30)


def test_bad_input_is_named():
    with pytest.raises(OracleError, match=r"northwind/1\.subtotal_price"):
        run({"northwind": [order(1, "2026-10-05T12:00:00Z", subtotal="ten")]})
    with pytest.raises(OracleError, match=r"EventDate"):
        run({"northwind": []}, [click("1", "yesterday")])


def test_overlapping_contracts_latest_effective_from_wins():
    raw_partners = [dict(p) for p in base_partners()]
    raw_partners[0]["contracts"] = [
        *raw_partners[0]["contracts"],
        {"referrer": "tidewater", "type": "percent", "rate": "0.05", "effective_from": "2026-10-01",
         "effective_to": "2026-12-01"},
        {"referrer": "tidewater", "type": "percent", "rate": "0.07", "effective_from": "2026-10-20"},
    ]
    config = make_config(partners=raw_partners)
    res = run({"northwind": [order(1, "2026-10-10T00:00:00Z", codes=["TIDE20"]),
                             order(2, "2026-10-25T00:00:00Z", codes=["TIDE20"]),
                             order(3, "2026-12-01T00:00:00Z", codes=["TIDE20"])]}, config=config)
    got = [res.attribution[("northwind", str(i))].commission_rc for i in (1, 2, 3)]
    assert got == [D("5.00"), D("7.00"), D("7.00")]


def test_unknown_referrer_click_is_not_eligible():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z")]},
              [click("1", "2026-10-03T12:00:00Z"), click("2", "2026-10-04T12:00:00Z", referrer="stranger")])
    a = res.attribution[("northwind", "1")]
    assert (a.click_id, a.referrer_partner_id, a.eligible_click_ids) == ("1", "tidewater", ("1",))


def test_five_models_over_the_same_clicks():
    # Clicks oldest first: lumen t-14d, brightpath t-14d (id "2" after "1"), tidewater t-7d, lumen at t.
    # time_decay weights 0.25, 0.25, 0.5, 1 -> shares 0.125 each for the t-14d clicks, 0.25, 0.5.
    res = run({"northwind": [order(1, "2026-10-29T00:00:00Z", "100.00")]},
              [click("1", "2026-10-15T00:00:00Z", referrer="lumen"),
               click("2", "2026-10-15T00:00:00Z", referrer="brightpath"),
               click("3", "2026-10-22T00:00:00Z", referrer="tidewater"),
               click("4", "2026-10-29T00:00:00Z", referrer="lumen")])
    got = {(m, r): c.credit for (_, _, m, r), c in res.credits.items()}
    assert got == {
        ("last_click", "lumen"): 1, ("first_click", "lumen"): 1,
        ("linear", "brightpath"): D("0.25"), ("linear", "lumen"): D("0.5"), ("linear", "tidewater"): D("0.25"),
        ("position_based", "brightpath"): D("0.1"), ("position_based", "lumen"): D("0.8"),
        ("position_based", "tidewater"): D("0.1"),
        ("time_decay", "brightpath"): D("0.125"), ("time_decay", "lumen"): D("0.625"),
        ("time_decay", "tidewater"): D("0.25"),
    }
    rows = res.credits
    assert rows[("northwind", "1", "last_click", "lumen")].commission_rc == D("5.00")  # lumen's October flat contract
    assert rows[("northwind", "1", "linear", "lumen")].commission_rc is None  # only the configured model is priced
    assert rows[("northwind", "1", "time_decay", "lumen")].attributed_revenue_rc == D("62.50")


def test_thirds_sum_to_one_and_reconcile_to_the_cent():
    res = run({"northwind": [order(1, "2026-10-29T00:00:00Z", "10.00")]},
              [click("1", "2026-10-20T00:00:00Z", referrer="lumen"),
               click("2", "2026-10-21T00:00:00Z", referrer="brightpath"),
               click("3", "2026-10-22T00:00:00Z", referrer="tidewater")],
              config=make_config(attribution={"model": "linear", "lookback_days": 30}))
    linear = sorted((r, c) for (_, _, m, r), c in res.credits.items() if m == "linear")
    assert [c.credit for _, c in linear] == [D("0.3333333333"), D("0.3333333333"), D("0.3333333334")]
    assert [c.attributed_revenue_rc for _, c in linear] == [D("3.33"), D("3.34"), D("3.33")]
    # linear is configured here, each referrer by its contract x credit, rounded once: brightpath 0.06 x 10 / 3,
    # lumen flat 5.00 / 3 (October contract), tidewater first-order default 0.15 x 10 / 3
    assert [c.commission_rc for _, c in linear] == [D("0.20"), D("1.67"), D("0.50")]
    assert sum(res.balances.values()) == D("2.37")


def test_code_keeps_credit_one_in_every_model():
    res = run({"northwind": [order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"])]},
              [click("1", "2026-10-04T12:00:00Z", referrer="lumen")])
    assert {(m, r, c.credit, c.reason) for (_, _, m, r), c in res.credits.items()} == {
        (m, "tidewater", D(1), "code") for m in ("last_click", "first_click", "linear", "position_based", "time_decay")
    }


# --------------------------------------------------------------------------- the published tables, by hand

def kpi_world():
    """Four northwind orders and five clicks whose KPIs, balances and objectives are worked out by hand below."""
    orders = {"northwind": [
        # tidewater's code, ann's first order: 0.15 x (100 - 30 refunded before the lock) = 10.50
        order(1, "2026-10-05T12:00:00Z", "100.00", codes=["TIDE20"], refunds=[("2026-10-10T00:00:00Z", ["30.00"])]),
        # tidewater's click c1, bob's first order: 0.15 x 50 = 7.50
        order(2, "2026-10-05T18:00:00Z", "50.00", email="bob@example.com"),
        # lumen's code: flat 5.00 in October
        order(3, "2026-10-05T20:00:00Z", "40.00", email="cy@example.com", codes=["LUMEN15"]),
        # brightpath's code (0.15 default before its 15 October contract), refunded in full: commission 0.00
        order(4, "2026-10-06T09:00:00Z", "20.00", email="eve@example.com", codes=["BRIGHT5"],
              refunds=[("2026-10-07T00:00:00Z", ["20.00"])]),
    ]}
    clicks = [
        click("c1", "2026-10-04T10:00:00Z", email="bob@example.com"),
        click("c2", "2026-10-05T09:00:00Z", email=None),                      # counts, without a customer
        click("c3", "2026-10-05T10:00:00Z", dest="lumen", email="dan@example.com"),
        click("c4", "2026-10-07T10:00:00Z", referrer="northwind"),             # self-referral: no row on 10-07
        click("c5", "2026-10-06T10:00:00Z", referrer="lumen", dest="tidewater", email=None),
    ]
    objectives = [
        {"partner_id": "tidewater", "month": "2026-10", "metric": "referred_orders", "target": 3},
        {"partner_id": "northwind", "month": "2026-10", "metric": "commission_owed_rc", "target": 20},
        {"partner_id": "lumen", "month": "2026-11", "metric": "clicks_sent", "target": 5},
        {"partner_id": "brightpath", "month": "2026-10", "metric": "attributed_revenue_rc", "target": 1000},
    ]
    return orders, clicks, make_config(objectives=objectives)


def test_partner_kpis_daily_follow_the_section_6_definitions():
    orders, clicks, config = kpi_world()
    res = run(orders, clicks, config=config)
    rows = {(d.isoformat(), p): k for (d, p), k in res.kpis.items()}
    assert set(rows) == {("2026-10-04", "tidewater"), ("2026-10-05", "tidewater"), ("2026-10-05", "lumen"),
                         ("2026-10-05", "northwind"), ("2026-10-06", "lumen"), ("2026-10-06", "brightpath"),
                         ("2026-10-06", "northwind")}
    t = rows[("2026-10-05", "tidewater")]
    assert (t.clicks_sent, t.referred_orders, t.conversion_rate) == (2, 2, D("1.0000"))
    assert (t.attributed_revenue_rc, t.net_attributed_revenue_rc, t.aov_rc) == (D("150.00"), D("120.00"), D("75.00"))
    assert (t.refund_rate, t.new_customer_rate) == (D("0.2000"), D("1.0000"))
    assert (t.commission_earned_rc, t.epc_rc, t.commission_owed_rc) == (D("18.00"), D("9.00"), D("0.00"))
    first = rows[("2026-10-04", "tidewater")]  # a click and nothing else: ratios over 0 orders are null
    assert (first.clicks_sent, first.conversion_rate, first.aov_rc, first.refund_rate, first.epc_rc) == (
        1, D("0.0000"), None, None, D("0.00"))
    lumen = rows[("2026-10-05", "lumen")]  # a code-credited order, no click that day
    assert (lumen.referred_orders, lumen.conversion_rate, lumen.epc_rc, lumen.commission_earned_rc) == (
        1, None, None, D("5.00"))
    nw = rows[("2026-10-05", "northwind")]  # the destination: owes 10.50 + 7.50 + 5.00, sent nothing
    assert (nw.commission_owed_rc, nw.referred_orders, nw.clicks_sent, nw.new_customer_rate) == (D("23.00"), 0, 0, None)
    bright = rows[("2026-10-06", "brightpath")]  # refunded in full: refund_rate 1, commission 0
    assert (bright.attributed_revenue_rc, bright.net_attributed_revenue_rc, bright.refund_rate) == (
        D("20.00"), D("0.00"), D("1.0000"))
    assert rows[("2026-10-06", "northwind")].commission_owed_rc == D("0.00")  # owes on a zero commission: a row


def test_partner_balances_include_zero_commission_months_and_state():
    orders, clicks, config = kpi_world()
    res = run(orders, clicks, config=config)
    got = {(b.referrer_partner_id, b.destination_partner_id, b.month.isoformat()): (
        b.attributed_orders, b.attributed_revenue_rc, b.net_attributed_revenue_rc, b.commission_rc,
        b.refund_leakage_rc, b.lock_date.isoformat(), b.state) for b in res.balance_rows.values()}
    assert got == {
        ("tidewater", "northwind", "2026-10-01"): (2, D("150.00"), D("120.00"), D("18.00"), 0, "2026-11-30", "pending"),
        ("lumen", "northwind", "2026-10-01"): (1, D("40.00"), D("40.00"), D("5.00"), 0, "2026-11-30", "pending"),
        ("brightpath", "northwind", "2026-10-01"): (1, D("20.00"), D("0.00"), D("0.00"), 0, "2026-11-30", "pending"),
    }
    locked = run(orders, clicks, config=config, as_of=date(2026, 12, 1))
    assert {b.state for b in locked.balance_rows.values()} == {"locked"}
    table = locked.tables("salt")["partner_balances"]
    row = table[("tidewater", "northwind", date(2026, 10, 1))]
    assert (row["commission_earned_rc"], row["commission_owed_rc"], row["commission_locked_rc"],
            row["commission_pending_rc"]) == (D("18.00"), D("18.00"), D("18.00"), D("0.00"))


def test_partner_kpis_monthly_sum_the_days_and_both_sides_of_the_balances():
    orders, clicks, config = kpi_world()
    table = run(orders, clicks, config=config).tables("salt")["partner_kpis_monthly"]
    october = date(2026, 10, 1)
    assert set(table) == {(p, october) for p in ("tidewater", "lumen", "northwind", "brightpath")}
    got = {p: (r["clicks_sent"], r["referred_orders"], r["conversion_rate"], r["attributed_revenue_rc"],
               r["commission_earned_rc"], r["commission_owed_rc"], r["net_balance_rc"])
           for (p, _), r in table.items()}
    assert got == {
        # c1 on the 4th, c2 and c3 on the 5th; orders 1 (code) and 2 (click): 2 / 3, not the days' 0 and 1.0
        "tidewater": (3, 2, D("0.6667"), D("150.00"), D("18.00"), D("0.00"), D("18.00")),
        "lumen": (1, 1, D("1.0000"), D("40.00"), D("5.00"), D("0.00"), D("5.00")),
        # the destination: owes 10.50 + 7.50 + 5.00 + 0.00 and sent no click but its own (c4, a self-referral)
        "northwind": (0, 0, None, D("0.00"), D("0.00"), D("23.00"), D("-23.00")),
        "brightpath": (0, 1, None, D("20.00"), D("0.00"), D("0.00"), D("0.00")),
    }


def test_objective_progress_sums_the_month_and_rounds_attainment():
    orders, clicks, config = kpi_world()
    res = run(orders, clicks, config=config)
    got = {(o.partner_id, o.metric): (o.actual, o.attainment) for o in res.objectives.values()}
    assert got == {
        ("tidewater", "referred_orders"): (2, D("0.6667")),
        ("northwind", "commission_owed_rc"): (D("23.00"), D("1.1500")),
        ("lumen", "clicks_sent"): (0, D("0.0000")),  # November: nothing happened
        ("brightpath", "attributed_revenue_rc"): (D("20.00"), D("0.0200")),
    }
    with pytest.raises(OracleError, match="aov_rc is not an additive"):
        make_config(objectives=[{"partner_id": "lumen", "month": "2026-10", "metric": "aov_rc", "target": 1}])


def test_threshold_and_pace_alerts_fire_as_the_rules_say():
    from oracle import rules_from_dicts
    orders, clicks, config = kpi_world()
    rules = rules_from_dicts([
        {"id": "big_bill", "kpi": "commission_owed_rc", "above": 20, "severity": "critical"},
        {"id": "low_conv", "kpi": "conversion_rate", "below": 0.5},  # null conversion never fires
        {"id": "pace", "pace_below": 0.8},
        {"id": "pace_late", "pace_below": 0.8, "min_elapsed_days": 7},  # today is 10-06: 6 days elapsed
    ])
    res = compute(config, FX, orders, {"n": clicks}, AS_OF, rules=rules)
    got = {a.alert_id: (a.value, a.threshold, a.comparison, a.kind) for a in res.alerts.values()}
    # the detection window (2 days up to the latest KPI day, 10-06) opens 10-05 and 10-06; 10-04 is breached too
    assert res.observations[("low_conv", "tidewater", "conversion_rate", date(2026, 10, 4))].breached
    assert got == {
        "big_bill:northwind:2026-10-05:1": (D("23.00"), D(20), "above", "threshold"),
        "low_conv:lumen:2026-10-06:1": (D("0.0000"), D("0.5"), "below", "threshold"),
        # brightpath: 20.00 x 31 days / 6 elapsed / 1000 = 0.1033; tidewater 3.4444 and northwind 5.9417 are on pace
        "pace:brightpath:2026-10-01:attributed_revenue_rc:1": (D("0.1033"), D("0.8"), "below", "pace"),
    }
    assert res.alerts["big_bill:northwind:2026-10-05:1"].severity == "critical"
    # judged as of 2026-10-31 the month has elapsed: 20.00 / 1000 = 0.0200; tidewater 2/3 = 0.6667 is behind now
    late = compute(config, FX, orders, {"n": clicks}, AS_OF, rules=rules[2:], alerts_as_of=date(2026, 10, 31))
    assert {a.alert_id: a.value for a in late.alerts.values()} == {
        "pace:brightpath:2026-10-01:attributed_revenue_rc:1": D("0.0200"),
        "pace:tidewater:2026-10-01:referred_orders:1": D("0.6667"),
        "pace_late:brightpath:2026-10-01:attributed_revenue_rc:1": D("0.0200"),
        "pace_late:tidewater:2026-10-01:referred_orders:1": D("0.6667"),
    }


def test_trailing_alert_compares_with_the_average_of_the_rows_before():
    from oracle import KpiTruth, _alerts, _observations, rules_from_dicts

    def k(day, partner, conversion, clicks):
        z = D("0.00")
        return KpiTruth(date(2026, 10, day), partner, clicks, 0, conversion, z, z, None, None, None, None, z, z, z)

    kpis = {}
    for partner, clicks in (("p", 10), ("q", 5)):  # q: the same story on too few clicks (15 < 30)
        for day, conversion in ((1, D("0.5")), (3, D("0.3")), (4, D("0.1"))):
            row = k(day, partner, conversion, clicks)
            kpis[(row.kpi_date, partner)] = row
    for day in (1, 2):
        row = k(day, "z", D("0"), 50)  # a zero baseline stays quiet
        kpis[(row.kpi_date, "z")] = row
    rule = rules_from_dicts([{"id": "halved", "kpi": "conversion_rate", "trailing_days": 3, "change_below": -0.5,
                              "min_volume": {"kpi": "clicks_sent", "at_least": 30}}])
    observed = _observations(rule, kpis, {})
    fired = _alerts(rule, observed, date(2026, 10, 4))
    # judged: only p's day 4 (day 1 has no baseline, day 3's window holds 20 clicks); q's window never reaches 30
    # clicks; z's baseline is 0
    assert {(key[1], key[3].day, o.breached) for key, o in observed.items()} == {("p", 4, True)}
    # day 4: baseline = avg(0.5 on day 1, 0.3 on day 3; day 2 has no row) = 0.4, limit 0.4 x (1 - 0.5) = 0.2 > 0.1;
    # day 3: baseline 0.5, limit 0.25 < 0.3: quiet
    assert list(fired) == ["halved:p:2026-10-04:1"]
    a = fired["halved:p:2026-10-04:1"]
    assert (a.value, a.threshold, a.baseline, a.kind, a.comparison) == (
        D("0.1"), D("0.200000"), D("0.400000"), "trailing", "below")


# --------------------------------------------------------------------------- WooCommerce, clicks, own inputs

def woo_config():
    partners = base_partners()
    partners[1] = {**partners[1], "platform": "woocommerce"}
    return make_config(partners=partners)


def woo_order(oid, *, status="completed", modified="2026-10-05T12:00:00", totals=("30.00", "20.00"), coupons=(),
              refs=(), email="ann@example.com", refunds=()) -> dict:
    """A WooCommerce REST v3 order: GMT times without a zone, amounts as strings, refunds listed by id and total."""
    return {"id": oid, "status": status, "currency": "EUR", "date_created_gmt": "2026-10-05T12:00:00",
            "date_modified_gmt": modified, "line_items": [{"id": i, "total": t} for i, t in enumerate(totals)],
            "coupon_lines": [{"id": 1, "code": c} for c in coupons],
            "meta_data": [{"id": 9, "key": "_order_stock_reduced", "value": "yes"}]
            + [{"id": 10 + i, "key": "_alliance_ref", "value": r} for i, r in enumerate(refs)],
            "billing": {"email": email}, "customer_id": 0, "refunds": [{"id": r, "total": "-1"} for r in refunds]}


def test_woocommerce_orders_refunds_endpoint_codes_and_statuses():
    refunds = {"lumen": {"1": [
        {"id": 11, "date_created_gmt": "2026-10-07T00:00:00", "line_items": [{"id": 1, "total": "-5.00"}]},
        {"id": 12, "date_created_gmt": "2026-10-08T00:00:00", "line_items": []},  # shipping only
    ]}}
    orders = {"lumen": [
        woo_order(1, refs=["TIDE20", "nwfriends"], refunds=[11, 12]),       # the last _alliance_ref wins
        woo_order(2, email="b@x.io", coupons=["Welcome", "tide20"], refs=["NWFRIENDS"]),  # coupons first
        woo_order(3, email="c@x.io", status="trash", modified="2026-10-09T08:00:00", coupons=["TIDE20"]),
        woo_order(4, email="d@x.io", status="failed", coupons=["TIDE20"]),
        woo_order(5, email="e@x.io", status="checkout-draft", coupons=["TIDE20"]),
    ]}
    res = compute(woo_config(), FX, orders, {}, AS_OF, refunds=refunds)
    one = res.orders[("lumen", "1")]
    assert (one.platform, one.commissionable_amount, one.refunded_amount, one.fx_rate) == (
        "woocommerce", D("50.00"), D("5.00"), D("1.1000"))
    a = res.attribution[("lumen", "1")]
    assert (a.referrer_partner_id, a.reason, a.commission_rc) == ("northwind", "code", D("3.96"))  # .08 x 45 x 1.1
    assert res.attribution[("lumen", "2")].referrer_partner_id == "tidewater"
    trashed = res.orders[("lumen", "3")]
    assert trashed.is_cancelled and trashed.cancelled_at.isoformat() == "2026-10-09T08:00:00+00:00"
    assert res.orders[("lumen", "4")].is_cancelled and res.orders[("lumen", "5")].is_test
    assert set(res.attribution) == {("lumen", "1"), ("lumen", "2")}
    assert res.credits[("lumen", "1", "last_click", "northwind")].referral_code == "nwfriends"  # as carried


def test_woocommerce_versions_trash_restore_and_trash_after_lock():
    orders = {"lumen": [
        woo_order(1, status="processing", modified="2026-10-06T00:00:00", coupons=["TIDE20"]),
        woo_order(1, status="trash", modified="2026-10-09T00:00:00", coupons=["TIDE20"]),
        woo_order(1, status="trash", modified="2026-10-11T00:00:00", coupons=["TIDE20"]),  # edited in the trash
        woo_order(2, email="b@x.io", status="trash", modified="2026-10-09T00:00:00", coupons=["TIDE20"]),
        woo_order(2, email="b@x.io", status="processing", modified="2026-10-10T00:00:00", coupons=["TIDE20"]),
        woo_order(3, email="c@x.io", status="trash", modified="2026-12-01T00:00:00", coupons=["TIDE20"]),
    ]}
    res = compute(woo_config(), FX, orders, {}, date(2026, 12, 2))
    first = res.orders[("lumen", "1")]
    assert first.cancelled_at.isoformat() == "2026-10-09T00:00:00+00:00" and first.counts_as_cancelled
    assert not res.orders[("lumen", "2")].is_cancelled, "restored from the trash"
    late = res.orders[("lumen", "3")]
    assert late.is_cancelled and not late.counts_as_cancelled  # trashed after its 2026-11-30 lock date
    assert res.attribution[("lumen", "3")].commission_rc == D("4.40")  # 0.08 x 50 x 1.1 stands
    deleted = compute(woo_config(), FX, {"lumen": [woo_order(2, coupons=["TIDE20"])]}, {}, AS_OF,
                      deletions={("lumen", "2"): parse_utc("2026-10-20T10:00:00Z", "t")})
    assert deleted.orders[("lumen", "2")].cancelled_at.isoformat() == "2026-10-20T10:00:00+00:00"
    assert not deleted.attribution


def test_clicks_from_network_bodies_and_first_landing_wins():
    pages = [{"@page": "1", "@nextpageuri": "/alliance_network/Clicks?Page=2",
              "Clicks": [click("1", "2026-10-04T12:00:00Z")]},
             {"@page": "2", "@nextpageuri": "", "Clicks": [click("2", "2026-10-03T12:00:00Z", referrer="lumen"),
                                                            click("1", "2026-10-04T23:00:00Z", referrer="lumen")]}]
    res = compute(make_config(), FX, {"northwind": [order(1, "2026-10-05T12:00:00Z")]}, {"net": pages}, AS_OF)
    assert res.clicks["1"].referrer_partner_id == "tidewater"
    assert res.attribution[("northwind", "1")].click_id == "1"
    single = compute(make_config(), FX, {}, {"net": pages[1]}, AS_OF)
    assert set(single.clicks) == {"1", "2"}
    row = single.tables("salt")["fct_referrals"][("net", "2")]
    assert row["customer_key"] == hashlib.sha256(b"saltann@example.com").hexdigest() and not row["is_self_referral"]


def test_config_yaml_and_fx_csv_are_read_by_the_oracle(tmp_path, monkeypatch):
    from oracle import load_config, read_fx_csv
    (tmp_path / "rates.csv").write_text("date,currency,rate_to_reporting\n2026-10-01,eur,1.1000\n")
    (tmp_path / "rules.yml").write_text("rules:\n  - {id: r, kpi: aov_rc, below: 5}\n")
    (tmp_path / "a.yml").write_text(
        "reporting_currency: USD\nattribution: {model: linear, lookback_days: 7}\nlock_days: 10\n"
        "fx_rates: rates.csv\nalerts: rules.yml\npartners:\n"
        "  - id: nw\n    platform: shopify\n    base_url: ${SHOP_URL:-http://x}\n    credentials_env: T\n"
        "    commission: {type: percent, rate: 0.10}\n"
        "    contracts:\n      - {referrer: bp, type: flat, amount: 2.50, effective_from: 2026-10-01}\n"
        "  - {id: bp, platform: none, referral_codes: [BP]}\n"
        "objectives:\n  - {partner_id: bp, month: 2026-10, metric: referred_orders, target: 4}\n")
    cfg = load_config(tmp_path / "a.yml")
    assert (cfg.model, cfg.lookback_days, cfg.lock_days) == ("linear", 7, 10)
    assert cfg.fx_rates == tmp_path / "rates.csv" and read_fx_csv(cfg.fx_rates) == [
        (date(2026, 10, 1), "EUR", D("1.1000"))]
    contract = cfg.partner("nw").contracts[0]
    assert (contract.type, contract.amount, contract.effective_from, contract.source) == (
        "flat", D("2.50"), date(2026, 10, 1), "contract")
    assert cfg.objectives[0].month == date(2026, 10, 1)
    res = compute(cfg, None, {"nw": [order(1, "2026-10-05T12:00:00Z", codes=["bp"])]}, {}, AS_OF)
    assert res.attribution[("nw", "1")].commission_rc == D("2.50")
    assert [a.rule_id for a in res.alerts.values()] == []  # aov 100 is not below 5


def test_versions_and_clicks_from_the_future_are_not_landed():
    landed = parse_utc("2026-10-06T12:00:00Z", "t")
    orders = {"northwind": [
        order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], updated_at="2026-10-05T12:00:00Z"),
        # a later version with a refund dated tomorrow: quarantined, the first version stands
        order(1, "2026-10-05T12:00:00Z", codes=["TIDE20"], updated_at="2026-10-06T12:05:00Z",
              refunds=[("2026-10-07T00:00:00Z", ["50.00"])]),
        order(2, "2026-10-06T12:11:00Z", email="b@x.io"),  # 11 minutes ahead: not landed
        order(3, "2026-10-06T12:10:00Z", email="c@x.io"),  # 10 minutes ahead: landed
    ]}
    clicks = [click("1", "2026-10-06T12:09:59Z", email="c@x.io"), click("2", "2026-10-06T12:10:01Z")]
    res = compute(make_config(), FX, orders, {"n": clicks}, AS_OF, landed_at=landed)
    assert set(res.orders) == {("northwind", "1"), ("northwind", "3")}
    assert res.orders[("northwind", "1")].refunded_amount == 0
    assert set(res.clicks) == {"1"} and res.attribution[("northwind", "3")].click_id == "1"


# --------------------------------------------------------------------------- §8 partner programmes


def programme_config(tmp_path=None, **terms):
    """northwind's default commission with §8 terms; holds and the CSVs as given."""
    partners = base_partners()
    partners[0]["commission"] = {"type": "percent", "rate": "0.10", **terms.pop("commission", {})}
    partners[0]["contracts"] = terms.pop("contracts", [])
    return config_from_dict({"reporting_currency": "USD", "attribution": {"model": "last_click", "lookback_days": 30},
                             "lock_days": 30, "partners": partners, **terms}, tmp_path)


def test_programme_tiers_count_earlier_commissioned_orders_and_same_second_ties():
    cfg = programme_config(commission={"tiers": [{"from_orders": 2, "rate": "0.12"}]})
    orders = [order(oid, at, email=f"c{oid}@example.com", codes=["TIDE20"]) for oid, at in
              ((1, "2026-10-01T10:00:00Z"), (10, "2026-10-02T11:00:00Z"), (9, "2026-10-02T11:00:00Z"))]
    res = run({"northwind": orders}, config=cfg)
    got = {k[1]: (c.earlier_commissioned_orders, c.rate_applied, c.commission_rc) for k, c in res.credits.items()
           if k[2] == "last_click"}
    # order 9 before order 10 at the same second ((length, text) order): 10 is the third, and crosses the tier
    assert got == {"1": (0, D("0.10"), D("10.00")), "9": (1, D("0.10"), D("10.00")), "10": (2, D("0.12"), D("12.00"))}


def test_programme_caps_per_order_then_cents_then_month():
    cfg = programme_config(commission={"cap_per_order": "12.00", "cap_per_month": "30.00"})
    orders = [order(oid, f"2026-10-0{oid}T10:00:00Z", subtotal=amount, email=f"c{oid}@example.com",
                    codes=["TIDE20"]) for oid, amount in ((1, "150.00"), (2, "120.00"), (3, "60.00"), (4, "50.00"))]
    res = run({"northwind": orders}, config=cfg)
    got = [res.credits[("northwind", str(i), "last_click", "tidewater")].commission_rc for i in range(1, 5)]
    assert got == [D("12.00"), D("12.00"), D("6.00"), D("0.00")]
    balance = res.balance_rows[("tidewater", "northwind", date(2026, 10, 1))]
    assert (balance.commission_rc, balance.commissioned_orders, balance.attributed_orders) == (D("30.00"), 4, 4)


def test_programme_holds_reviews_and_approval_lines(tmp_path):
    (tmp_path / "reviews.csv").write_text("partner_id,order_id,decision,reviewed_at\nnorthwind,2,approve,2026-12-03\n"
                                          "northwind,3,reject,2026-10-20\nnorthwind,4,approve,2026-11-02\n")
    cfg = programme_config(tmp_path, holds={"min_seconds_click_to_order": 10}, reviews="reviews.csv")
    orders = [order(oid, f"2026-10-0{oid}T10:00:05Z", email=f"c{oid}@example.com") for oid in (1, 2, 3, 4)]
    clicks = [click(str(oid), f"2026-10-0{oid}T10:00:00Z", email=f"c{oid}@example.com") for oid in (1, 2, 3, 4)]
    res = run({"northwind": orders}, clicks, config=cfg, as_of=date(2026, 12, 5))
    rows = {k[1]: c for k, c in res.credits.items() if k[2] == "last_click"}
    assert {k: (c.commission_state, c.commission_rc, c.held_rc) for k, c in rows.items()} == {
        "1": ("held", D("0.00"), D("10.00")), "2": ("approved", D("10.00"), D("10.00")),
        "3": ("rejected", D("0.00"), D("10.00")), "4": ("locked", D("10.00"), None)}
    [line] = res.lines.values()
    assert (line.kind, line.month, line.amount_rc, line.order_id) == ("approval", date(2026, 12, 1), D("10.00"), "2")
    october = res.balance_rows[("tidewater", "northwind", date(2026, 10, 1))]
    assert (october.commission_rc, october.held_rc, october.held_orders, october.attributed_orders) == (
        D("10.00"), D("10.00"), 1, 3)  # the rejected order is not referred; the approved one is paid in December
    assert res.balance_rows[("tidewater", "northwind", date(2026, 12, 1))].adjustments_rc == D("10.00")


def test_programme_clawbacks_follow_late_refunds_and_stop_at_a_cancellation(tmp_path):
    (tmp_path / "adjustments.csv").write_text("month,referrer,destination,amount,reason\n"
                                              "2026-12,tidewater,northwind,-2.50,duplicate payout\n")
    cfg = programme_config(tmp_path, commission={"clawback": True}, adjustments="adjustments.csv")
    o = order(1, "2026-10-05T12:00:00Z", subtotal="200.00", codes=["TIDE20"], cancelled_at="2027-01-03T10:00:00Z",
              refunds=[("2026-11-30T23:00:00Z", ["50.00"]),   # on the lock date: re-rates October instead
                       ("2026-12-05T10:00:00Z", ["30.00"]),   # late: 15.00 -> 12.00
                       ("2027-01-02T10:00:00Z", ["20.00"]),   # a second late refund: 12.00 -> 10.00
                       ("2027-01-04T10:00:00Z", ["10.00"])])  # after the cancellation: ends nothing more
    res = run({"northwind": [o]}, config=cfg, as_of=date(2027, 1, 10))
    assert res.credits[("northwind", "1", "last_click", "tidewater")].commission_rc == D("15.00")
    lines = sorted((line.line_date, line.kind, line.amount_rc) for line in res.lines.values())
    assert lines == [(date(2026, 12, 1), "manual", D("-2.50")), (date(2026, 12, 5), "clawback", D("-3.00")),
                     (date(2027, 1, 2), "clawback", D("-2.00")), (date(2027, 1, 3), "clawback", D("-10.00"))]
    assert sum(line.amount_rc for line in res.lines.values() if line.kind == "clawback") == D("-15.00")
