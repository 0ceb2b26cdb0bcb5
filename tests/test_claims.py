"""§9.2 every claim status end to end on a small hand-built alliance: a config with a claims file and a reviews file,
the claims landed by connectors/claims.py, dbt building partner_claims on real attribution, holds and reviews; each
status checked by hand, then every cell compared with the independent oracle (tests/oracle.py)."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import oracle
import psycopg
import pytest
from oracle_compare import compare_published, summarize

from alliance.config import load_config
from alliance.config_sync import sync_config
from alliance.dbt_runner import dbt_vars_from_config, run_dbt
from alliance.migrate import migrate
from connectors.claims import land_claims

AS_OF = date(2026, 12, 15)
SALT = "claims-test-salt"
SCHEMA = "analytics"  # built straight into the published schema's name, so the oracle comparison reads it
CONFIG = """
reporting_currency: USD
attribution: {model: last_click, lookback_days: 30}
lock_days: 30
holds: {min_seconds_click_to_order: 60}
reviews: reviews.csv
claims: claims
partners:
  - {id: shop, platform: shopify, base_url: "http://127.0.0.1:9/shop", credentials_env: SHOP_TOKEN,
     commission: {type: percent, rate: 0.10}}
  - {id: p1, platform: none}
  - {id: p2, platform: none, referral_codes: [P2CODE]}
  - {id: p3, platform: none}
"""
# the customers' e-mails (test-only addresses)
A, B, C, D, E, F = (f"{name}@claims.test" for name in "abcdef")
ORDERS = [  # (order id, created_at, customer, extra fields)
    (1, "2026-10-10T12:00:00Z", A, {}),                                   # p1's click the day before: credited
    (3, "2026-10-12T12:00:00Z", C, {}),                                   # p1's click 30 s before: held
    (4, "2026-10-13T12:00:00Z", D, {}),                                   # p3's click 20 s before: held, rejected
    (5, "2026-10-14T12:00:00Z", E, {"test": True}),                       # test order
    (6, "2026-10-14T13:00:00Z", E, {"cancelled_at": "2026-10-15T12:00:00Z"}),  # cancelled before its lock date
    (7, "2026-09-10T12:00:00Z", B, {"cancelled_at": "2026-12-01T12:00:00Z",   # cancelled after its lock date
                                    "discount_codes": [{"code": "p2code", "amount": "1.00", "type": "fixed_amount"}]}),
    (9, "2026-10-05T12:00:00Z", F, {}),                                   # F's previous order (p1's click 10-04)
    (8, "2026-10-20T12:00:00Z", F, {}),                                   # organic: p1's clicks all ineligible
    (10, "2026-10-21T12:00:00Z", None, {}),                               # guest
]
CLICKS = [  # (click id, referrer, clicked_at, customer, destination)
    ("k1", "p1", "2026-10-09T12:00:00Z", A, "shop"),
    ("k3", "p1", "2026-10-12T11:59:30Z", C, "shop"),
    ("k4", "p3", "2026-10-13T11:59:40Z", D, "shop"),
    ("k5", "p1", "2026-10-13T12:00:00Z", E, "shop"),
    ("k8a", "p1", "2026-10-21T12:00:00Z", F, "shop"),   # after order 8
    ("k8b", "p1", "2026-09-01T12:00:00Z", F, "shop"),   # before order 8's lookback
    ("k8c", "p1", "2026-10-04T12:00:00Z", F, "shop"),   # before F's previous order (it credits order 9)
    ("k8d", "p3", "2026-10-19T12:00:00Z", F, "p1"),     # p3's click for F, but to another destination
]
CLAIMS = """claim_id,referrer_partner_id,destination_partner_id,order_id,claimed_at
unknown,p1,shop,999,2026-11-01T00:00:00Z
test,p1,shop,5,2026-11-01T00:00:00Z
cancelled,p1,shop,6,2026-11-01T00:00:00Z
late-cancel,p2,shop,7,2026-11-01T00:00:00Z
rejected,p3,shop,4,2026-11-01T00:00:00Z
held,p1,shop,3,2026-11-01T00:00:00+01:00
credited,p1,shop,1,2026-11-01T00:00:00Z
credited,p1,shop,1,2026-11-01T00:00:00Z
other,p2,shop,1,2026-11-01T00:00:00Z
window,p1,shop,8,2026-11-01T00:00:00Z
no-click,p3,shop,8,2026-11-01T00:00:00Z
guest,p1,shop,10,2026-11-01T00:00:00Z
twice,p1,shop,1,2026-11-01T00:00:00Z
twice,p1,shop,3,2026-11-01T00:00:00Z
ghost,nobody,shop,1,2026-11-01T00:00:00Z
"""
EXPECTED = {
    "unknown": ("unknown_order", "no order 999 at shop"),
    "test": ("not_commissionable", "a test order: no commission"),
    "cancelled": ("not_commissionable", "the order is cancelled: no commission"),
    "late-cancel": ("credited", "credited to p2 (1) by code"),
    "rejected": ("rejected", "the credit of p3 (1) was rejected in review"),
    "held": ("credited", "credited to p1 (1) by click, held for review"),
    "credited": ("credited", "credited to p1 (1) by click"),
    "other": ("credited_to_other", "credited to p1 (1)"),
    "window": ("outside_window", "p1 clicked for this customer, but outside the window: 1 after the order, "
                                 "1 before the 30-day lookback, 1 before the customer's previous order"),
    "no-click": ("no_click", "no click from p3 for this customer at shop"),
    "guest": ("no_click", "a guest order: no customer to match clicks to"),
}


def _order(order_id: int, created_at: str, email: str | None, extra: dict) -> dict:
    """A Shopify REST order as the API serves it."""
    return {"id": order_id, "email": email, "created_at": created_at, "updated_at": created_at, "currency": "USD",
            "subtotal_price": "100.00", "total_price": "100.00", "test": False, "financial_status": "paid",
            "cancelled_at": None, "landing_site": None, "discount_codes": [], "refunds": [],
            "customer": {"id": 1000 + order_id, "email": email} if email else None, **extra}


def _click(click_id: str, referrer: str, at: str, email: str | None, destination: str) -> dict:
    return {"Id": click_id, "ReferrerPartnerId": referrer, "DestinationPartnerId": destination, "EventDate": at,
            "ReferralCode": None, "CustomerEmail": email}


def _key(email: str | None) -> str | None:
    return oracle.customer_key(email, SALT)


@pytest.fixture()
def world(warehouse: str, tmp_path: Path, monkeypatch) -> tuple[str, Path, dict, dict]:
    """The warehouse with the small alliance landed (payloads as the connectors store them: e-mails as keys)."""
    monkeypatch.setenv("ALLIANCE_PII_SALT", SALT)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "claims.csv").write_text(CLAIMS)
    (tmp_path / "reviews.csv").write_text("partner_id,order_id,decision,reviewed_at\nshop,4,reject,2026-10-20\n")
    path = tmp_path / "alliance.yml"
    path.write_text(CONFIG)
    orders = {"shop": [_order(*row) for row in ORDERS]}
    clicks = [_click(*row) for row in CLICKS]
    load = str(uuid.uuid4())
    with psycopg.connect(warehouse, autocommit=True) as conn:
        migrate(conn)
        for payload in orders["shop"]:
            stored = json.loads(json.dumps(payload).replace(payload["email"] or "\0", _key(payload["email"]) or ""))
            conn.execute("insert into raw.orders (partner_id, order_id, platform, updated_at, customer_key, payload,"
                         " load_id) values ('shop', %s, 'shopify', %s, %s, %s, %s)",
                         (str(payload["id"]), payload["updated_at"], _key(payload["email"]), json.dumps(stored), load))
        for click in clicks:
            stored = {**click, "CustomerEmail": _key(click["CustomerEmail"])}
            conn.execute("insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id)"
                         " values ('alliance_network', %s, %s, %s, %s, %s)",
                         (click["Id"], click["EventDate"], stored["CustomerEmail"], json.dumps(stored), load))
    return warehouse, path, orders, {"alliance_network": clicks}


def test_every_claim_status_end_to_end_and_as_the_oracle_says(world) -> None:
    url, path, orders, clicks = world
    config = load_config(path, require_secrets=False)
    with psycopg.connect(url) as conn:
        sync_config(conn, config)
        outcome = land_claims(conn, config.claims, {p.id for p in config.partners})
    assert (outcome.kept, outcome.quarantined) == (11, 3)  # `twice` in both versions, `ghost`; `credited` once
    built = run_dbt(["build", "--select", "+partner_claims", "--indirect-selection", "cautious",
                     "--exclude-resource-type", "unit_test"], url, SCHEMA,
                    dbt_vars_from_config(config, as_of_date=AS_OF))
    assert built.success, built.failures
    with psycopg.connect(url) as conn:
        got = {claim_id: (status, reason) for claim_id, status, reason in conn.execute(
            "select claim_id, status, reason from analytics.partner_claims")}
        held = conn.execute("select claim_id, claimed_at::text, claimant_credit, credited_referrers, source_file,"
                            " source_line from analytics.partner_claims where claim_id in ('held', 'other')"
                            " order by claim_id").fetchall()
    assert got == EXPECTED
    assert held == [("held", "2026-10-31 23:00:00+00", 1, "p1", "claims.csv", 7),
                    ("other", "2026-11-01 00:00:00+00", None, "p1", "claims.csv", 10)]

    truth = oracle.compute(oracle.load_config(path), None, orders, clicks, AS_OF)
    assert {c: (t.status, t.reason) for c, t in truth.claims.items()} == EXPECTED  # the oracle reads the same world
    diffs = compare_published(url, truth, SALT, tables=("partner_claims",))
    assert not diffs, summarize(diffs)

    # the dbt unit tests of every status and the precedence (dbt_project/models/marts/_unit_tests.yml), on the
    # relations this build made (test_dbt_build runs every unit test too; here they run beside the model they test)
    unit = run_dbt(["test", "--select", "partner_claims,test_type:unit"], url, SCHEMA,
                   dbt_vars_from_config(config, as_of_date=AS_OF))
    assert unit.success, unit.failures
    assert [r["status"] for r in unit.raw["results"] if r["unique_id"].startswith("unit_test.")] == ["pass"]

