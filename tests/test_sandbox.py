"""The sandbox world is deterministic and exercises the rules; its APIs page, filter and refuse like the real ones."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from alliance.config import load_config
from devstack.sandbox.server import SandboxOptions, start_sandbox
from devstack.sandbox.world import build_world, parse_ts

ROOT = Path(__file__).resolve().parents[1]
MONEY = re.compile(r"^-?\d+\.\d{2}$")


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config" / "demo.yml", require_secrets=False)


@pytest.fixture(scope="module")
def world(config):
    return build_world(config, seed=42)


@pytest.fixture()
def sandbox(config):
    handle = start_sandbox(build_world(config, seed=42), options=SandboxOptions(page_size=40))
    yield handle
    handle.stop()


def test_same_seed_gives_byte_identical_json_and_other_seed_differs(config, world):
    assert build_world(config, seed=42).to_json() == world.to_json()
    assert build_world(config, seed=7).to_json() != world.to_json()


def test_world_shape_and_tokens_match_sandbox_env(world):
    env = dict(line.split("=", 1) for line in (ROOT / "config" / "sandbox.env").read_text().split() if "=" in line)
    assert world.tokens == {
        "northwind": env["NORTHWIND_TOKEN"], "lumen": env["LUMEN_TOKEN"], "tidewater": env["TIDEWATER_TOKEN"],
        "alliance_network": env["NETWORK_SID_TOKEN"],
    }
    assert set(world.orders) == {"northwind", "lumen", "tidewater"}  # brightpath (platform none) has no storefront
    assert all(100 <= len(orders) <= 150 for orders in world.orders.values())
    clicks = world.clicks["alliance_network"]
    assert 4 * 360 <= len(clicks) <= 6 * 360
    assert len({c["Id"] for c in clicks}) == len(clicks)
    assert "brightpath" in {c["ReferrerPartnerId"] for c in clicks}
    window = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    for partner_id, orders in world.orders.items():
        for order in orders:
            assert MONEY.match(order["subtotal_price"]), order["subtotal_price"]
            assert window[0] <= parse_ts(order["created_at"]) < window[1]
            assert parse_ts(order["updated_at"]) >= parse_ts(order["created_at"])
            assert order["currency"] == world.partners[partner_id]["currency"]
            for refund in order["refunds"]:
                assert all(MONEY.match(item["subtotal"]) for item in refund["refund_line_items"])
    for click in clicks:
        assert click["EventDate"].endswith("Z") and window[0] <= parse_ts(click["EventDate"]) < window[1]
    offsets = Counter(o["created_at"][-6:] for orders in world.orders.values() for o in orders)
    assert {"-04:00", "-05:00", "+02:00", "+01:00", "+09:00"} <= set(offsets)


def test_world_contains_every_rule_case(world):
    orders = {(p, o["id"]): o for p, os_ in world.orders.items() for o in os_}

    def order(name):
        ref = next(r for r in world.scenarios[name] if "order_id" in r)
        return orders[(ref["partner_id"], ref["order_id"])]

    clicks = {c["Id"]: c for c in world.clicks["alliance_network"]}
    assert clicks["999"]["EventDate"] == clicks["1000"]["EventDate"]
    assert clicks["999"]["DestinationPartnerId"] == clicks["1000"]["DestinationPartnerId"]
    assert order("own_code_ignored")["discount_codes"][0]["code"].upper() in {"NORTHWIND10", "NWFRIENDS"}
    assert "ref=" in order("code_landing_ref")["landing_site"]
    assert order("cancelled")["cancelled_at"] and order("voided")["financial_status"] == "voided"
    assert order("test_order")["test"] is True
    assert order("refund_shipping_only")["refunds"][0]["refund_line_items"] == []
    assert order("guest")["email"] is None and order("guest")["customer"] is None
    late = order("refund_after_lock")["refunds"][-1]
    assert parse_ts(late["created_at"]) > datetime(2026, 10, 30, 23, 59, tzinfo=UTC)  # Sept lock date is Oct 30
    upd = order("updated_after_creation")
    assert parse_ts(upd["updated_at"]).date() > parse_ts(upd["created_at"]).date()
    emails = [o["email"] for o in orders.values() if o["email"]]
    assert any(e != e.strip() for e in emails) and any(e.strip() != e.strip().lower() for e in emails)
    codes = [d["code"] for o in orders.values() for d in o["discount_codes"]]
    assert any(c.islower() for c in codes) and any(c.isupper() for c in codes)


def _get_all_orders(url: str, token: str, **params) -> list[tuple[list[dict], requests.Response]]:
    pages = []
    response = requests.get(url, params={"status": "any", **params}, headers={"X-Shopify-Access-Token": token},
                            timeout=10)
    while True:
        assert response.status_code == 200, response.text
        pages.append((response.json()["orders"], response))
        if "next" not in response.links:
            return pages
        response = requests.get(response.links["next"]["url"], headers={"X-Shopify-Access-Token": token}, timeout=10)


def test_shopify_paging_is_complete_ordered_and_inclusive(sandbox):
    url = f"{sandbox.url}/northwind/admin/api/2025-10/orders.json"
    token = sandbox.world.tokens["northwind"]
    pages = _get_all_orders(url, token, limit=250)
    got = [o for page, _ in pages for o in page]
    assert len(pages) == 3  # 120 orders, pages capped at 40
    assert sorted(o["id"] for o in got) == sorted(o["id"] for o in sandbox.world.orders["northwind"])
    keys = [(parse_ts(o["updated_at"]), o["id"]) for o in got]
    assert keys == sorted(keys)
    assert re.match(r"^\d+/40$", pages[0][1].headers["X-Shopify-Shop-Api-Call-Limit"])
    pivot = got[50]["updated_at"]  # local offset string, as a partner would echo it
    later = [o for page, _ in _get_all_orders(url, token, updated_at_min=pivot) for o in page]
    assert later[0]["id"] == got[50]["id"] or parse_ts(later[0]["updated_at"]) == parse_ts(pivot)
    assert {o["id"] for o in later} == {o["id"] for o in got if parse_ts(o["updated_at"]) >= parse_ts(pivot)}
    first_next = pages[0][1].links["next"]["url"]
    bad = requests.get(first_next + "&updated_at_min=2026-01-01T00:00:00Z",
                       headers={"X-Shopify-Access-Token": token}, timeout=10)
    assert bad.status_code == 400


def test_shopify_rejects_missing_or_wrong_token(sandbox):
    url = f"{sandbox.url}/northwind/admin/api/2025-10/orders.json"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, headers={"X-Shopify-Access-Token": sandbox.world.tokens["lumen"]}, timeout=10)
    assert wrong.status_code == 401 and "errors" in wrong.json()


PAGING_FIELDS = {"@page", "@numpages", "@pagesize", "@total", "@start", "@end", "@uri", "@firstpageuri",
                 "@previouspageuri", "@nextpageuri", "@lastpageuri"}


def test_network_serves_impact_shape_paging_start_date_auth_and_faults(sandbox):
    base = f"{sandbox.url}/alliance_network"
    auth = tuple(sandbox.world.tokens["alliance_network"].split(":", 1))
    assert requests.get(f"{base}/Clicks", auth=("ACsandbox", "nope"), timeout=10).status_code == 401
    seen: list[dict] = []
    bodies: list[dict] = []
    response = requests.get(f"{base}/Clicks", params={"PageSize": 1000, "StartDate": "2026-11-01T00:00:00Z"},
                            auth=auth, timeout=10)
    while True:
        body = response.json()
        bodies.append(body)
        assert set(body) == PAGING_FIELDS | {"Clicks"}  # impact.com's shape: no lowercase list, no extras
        assert all(isinstance(body[k], str) for k in PAGING_FIELDS)  # paging numbers are strings
        seen += body["Clicks"]
        if not body["@nextpageuri"]:
            break
        assert body["@nextpageuri"].startswith("/alliance_network/Clicks?")
        response = requests.get(sandbox.url + body["@nextpageuri"], auth=auth, timeout=10)
    expected = [c for c in sandbox.world.clicks["alliance_network"] if c["EventDate"] >= "2026-11-01T00:00:00Z"]
    assert len(seen) == len(expected) > 40 and len({c["Id"] for c in seen}) == len(seen)
    pages = len(bodies)
    assert [b["@page"] for b in bodies] == [str(n) for n in range(1, pages + 1)]
    assert {b["@numpages"] for b in bodies} == {str(pages)} and {b["@total"] for b in bodies} == {str(len(expected))}
    assert {b["@pagesize"] for b in bodies} == {"40"}  # the sandbox's cap, not the 1000 asked for
    assert bodies[0]["@previouspageuri"] == "" and bodies[-1]["@nextpageuri"] == ""
    assert bodies[-1]["@uri"] == bodies[0]["@lastpageuri"]
    by_id = {c["Id"]: c for c in expected}
    for click in seen:  # the contract fields unchanged, plus impact.com's own (hashed IP, device, URLs)
        assert {k: click[k] for k in by_id[click["Id"]]} == by_id[click["Id"]]
        assert {"IpAddress", "ReferringUrl", "LandingPageUrl", "DeviceType", "CustomerCity"} <= set(click)
        assert "@" not in json.dumps({k: v for k, v in click.items() if k != "CustomerEmail"})
    sandbox.fail_first_n("alliance_network", 2, status=503, retry_after=None)
    codes = [requests.get(f"{base}/Clicks", auth=auth, timeout=10).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_update_order_bumps_updated_at_past_everything(sandbox):
    world = sandbox.world
    target = world.orders["lumen"][0]
    before = max(parse_ts(o["updated_at"]) for o in world.orders["lumen"])
    updated = world.update_order("lumen", target["id"], financial_status="refunded")
    assert updated["financial_status"] == "refunded" and parse_ts(updated["updated_at"]) > before
    assert world.find_order("lumen", target["id"])["financial_status"] == "refunded"


def test_late_edits_spare_orders_cancelled_by_status_alone():
    """The campaign's late edits skip orders whose cancellation time is their first landed version's (§3): the
    oracle, reading the storefront's state, could not date it (tests/reliability/explain.py)."""
    from devstack.sandbox.server import _cancelled_without_time

    assert _cancelled_without_time({"date_modified_gmt": "2026-10-01T00:00:00", "status": "trash"})
    assert _cancelled_without_time({"date_modified_gmt": "2026-10-01T00:00:00", "status": "failed"})
    assert not _cancelled_without_time({"date_modified_gmt": "2026-10-01T00:00:00", "status": "completed"})
    assert _cancelled_without_time({"updated_at": "2026-10-01T00:00:00Z", "financial_status": "voided"})
    assert not _cancelled_without_time({"updated_at": "2026-10-01T00:00:00Z", "financial_status": "voided",
                                        "cancelled_at": "2026-10-01T00:00:00Z"})
