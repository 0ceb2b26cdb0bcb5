"""Hand-built cases for the §6 oracle: each pins one rule of PRODUCT.md to an exact number."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from oracle import OracleError, compute, landing_ref, lock_date_for, parse_utc, round_cents

from alliance.config import AllianceConfig

D = Decimal
FX = [
    (date(2026, 9, 28), "EUR", D("1.0500")),
    (date(2026, 10, 1), "EUR", D("1.1000")),
    (date(2026, 10, 20), "EUR", D("1.2000")),
]
AS_OF = date(2026, 11, 15)  # October orders lock on 2026-11-30: still pending


def make_config(**overrides) -> AllianceConfig:
    partners = [
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
    raw = {"reporting_currency": "USD", "attribution": {"model": "last_click", "lookback_days": 30},
           "lock_days": 30, "partners": partners}
    raw.update(overrides)
    return AllianceConfig(**raw)


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
    config = make_config()
    northwind = config.partners[0].model_copy(update={"contracts": [
        *config.partners[0].contracts,
        config.partners[0].contracts[0].model_copy(update={"referrer": "tidewater", "rate": D("0.05"),
                                                           "effective_from": date(2026, 10, 1),
                                                           "effective_to": date(2026, 12, 1)}),
        config.partners[0].contracts[0].model_copy(update={"referrer": "tidewater", "rate": D("0.07"),
                                                           "effective_from": date(2026, 10, 20)}),
    ]})
    config = config.model_copy(update={"partners": [northwind, *config.partners[1:]]})
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
