"""The network connector reads impact.com's real list shape: stored responses served over loopback, landed for real.

tests/fixtures/network/ holds responses in the shape impact.com documents (tests/fixtures/README.md cites
the pages): a first page whose `@nextpageuri` is a path, a second whose link is absolute on the API host,
a last page with `""`, and a single page without the field at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from support.loopback_api import LoopbackApi

from alliance.config import AllianceConfig, ReferralNetwork
from connectors.http import HttpPolicy
from connectors.ingest import IngestOptions, ingest_source

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "network"
DOCUMENTED_HOST = "https://api.impact.com"  # absolute links in the files name impact.com's host; served as ours
ACCOUNT = "/Mediapartners/IRk3Vw9sTq2Xa1000000"
SINGLE = "/Mediapartners/IRsingle0000000000000"
OLD_SHAPE = "/Mediapartners/IRoldshape00000000000"
SID_TOKEN = "IRk3Vw9sTq2Xa1000000:fixture-auth-token"
FAST = IngestOptions(network_page_size=3, http=HttpPolicy(retries=1, backoff_factor=0.01, connect_retries=1,
                                                           read_retries=1, read_timeout=10))
PAGES = {
    (ACCOUNT, "1"): "clicks_page1_relative_next.json",
    (ACCOUNT, "2"): "clicks_page2_absolute_next.json",
    (ACCOUNT, "3"): "clicks_page3_last_empty_next.json",
    (SINGLE, "1"): "clicks_single_page_no_nextpageuri.json",
}


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _serve(path: str, headers: dict[str, str], origin: str) -> tuple[int, dict[str, str], bytes]:
    """Page N of an account's Clicks from its file; the documented host in absolute links becomes this server."""
    parts = urlsplit(path)
    if "authorization" not in headers:
        return 401, {"WWW-Authenticate": 'Basic realm="impact"'}, b'{"Message": "Authenticate"}'
    account = parts.path.removesuffix("/Clicks")
    if account == OLD_SHAPE:  # what our sandbox used to serve: a lowercase list and null paging
        old = {"clicks": _fixture(PAGES[(ACCOUNT, "1")])["Clicks"], "page": 0, "@nextpageuri": None}
        return 200, {}, json.dumps(old).encode()
    page = parse_qs(parts.query).get("Page", ["1"])[-1]
    name = PAGES.get((account, page))
    if name is None:
        return 404, {}, b'{"Message": "Not Found"}'
    return 200, {}, (FIXTURES / name).read_bytes().replace(DOCUMENTED_HOST.encode(), origin.encode())


@pytest.fixture()
def impact(monkeypatch):
    monkeypatch.setenv("IMPACT_SID_TOKEN", SID_TOKEN)
    monkeypatch.setenv("ALLIANCE_PII_SALT", "fixture-salt-not-secret")
    with LoopbackApi(_serve) as api:
        yield api


def _config(base_url: str) -> AllianceConfig:
    network = ReferralNetwork(id="impact_net", platform="referral_network", base_url=base_url,
                              credentials_env="IMPACT_SID_TOKEN")
    return AllianceConfig(partners=[], referral_networks=[network])


def _landed(url: str) -> dict[str, datetime]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("select click_id, clicked_at from raw.clicks where network_id = 'impact_net'"))


def test_fixture_files_are_in_impact_shape():
    for name in PAGES.values():
        body = _fixture(name)
        assert isinstance(body["Clicks"], list) and "clicks" not in body
        paging = {k: v for k, v in body.items() if k.startswith("@")}
        assert paging and all(isinstance(v, str) for v in paging.values()), name  # paging fields are strings
        for click in body["Clicks"]:
            assert {"Id", "ReferrerPartnerId", "DestinationPartnerId", "EventDate", "ReferralCode",
                    "CustomerEmail", "IpAddress", "ReferringUrl", "LandingPageUrl"} <= set(click)
    assert _fixture(PAGES[(ACCOUNT, "1")])["@nextpageuri"].startswith(ACCOUNT + "/Clicks?")  # relative
    assert _fixture(PAGES[(ACCOUNT, "2")])["@nextpageuri"].startswith(DOCUMENTED_HOST + ACCOUNT)  # absolute
    assert _fixture(PAGES[(ACCOUNT, "3")])["@nextpageuri"] == ""
    assert "@nextpageuri" not in _fixture(PAGES[(SINGLE, "1")])


def test_three_pages_relative_absolute_and_empty_next_all_land(impact, warehouse):
    result = ingest_source(_config(impact.url + ACCOUNT), "impact_net", warehouse, options=FAST)
    assert (result.status, result.pages, result.landed, result.quarantined) == ("succeeded", 3, 7, 0), result.error
    expected = {c["Id"]: datetime.fromisoformat(c["EventDate"])
                for name in list(PAGES.values())[:3] for c in _fixture(name)["Clicks"]}
    assert _landed(warehouse) == expected  # offsets like -04:00 land as the same instant
    pages = [parse_qs(urlsplit(s.path).query).get("Page", ["1"])[-1] for s in impact.seen]
    assert pages == ["1", "2", "3"]  # each page once, the last reached through the absolute same-host link
    assert all(s.path.startswith(ACCOUNT + "/Clicks") and s.carried_credentials for s in impact.seen)


def test_single_page_without_nextpageuri_ends_the_walk(impact, warehouse):
    result = ingest_source(_config(impact.url + SINGLE), "impact_net", warehouse, options=FAST)
    assert (result.status, result.pages, result.landed) == ("succeeded", 1, 2), result.error
    assert set(_landed(warehouse)) == {c["Id"] for c in _fixture(PAGES[(SINGLE, "1")])["Clicks"]}
    assert len(impact.seen) == 1


def test_a_body_without_the_clicks_list_fails_naming_the_network_and_the_fix(impact, warehouse):
    result = ingest_source(_config(impact.url + OLD_SHAPE), "impact_net", warehouse, options=FAST)
    assert (result.status, result.landed) == ("failed", 0)
    assert result.error.startswith("impact_net: ") and "without a `Clicks` list" in result.error, result.error
    assert "check that base_url in the config" in result.error
    assert SID_TOKEN.split(":")[1] not in result.error


def test_a_next_link_back_to_a_page_already_read_stops_the_walk(warehouse, monkeypatch):
    monkeypatch.setenv("IMPACT_SID_TOKEN", SID_TOKEN)
    monkeypatch.setenv("ALLIANCE_PII_SALT", "fixture-salt-not-secret")

    def loop(path: str, headers: dict, origin: str) -> tuple[int, dict, bytes]:
        body = _fixture(PAGES[(ACCOUNT, "1")])
        page = parse_qs(urlsplit(path).query).get("Page", ["1"])[-1]
        body["@nextpageuri"] = f"{ACCOUNT}/Clicks?PageSize=3&Page={2 if page == '1' else 1}"  # 1 -> 2 -> 1 ...
        return 200, {}, json.dumps(body).encode()

    with LoopbackApi(loop) as api:
        result = ingest_source(_config(api.url + ACCOUNT), "impact_net", warehouse, options=FAST)
    assert result.status == "failed" and "the network's paging loops" in result.error, result.error
    assert result.error.startswith("impact_net: ") and len(api.seen) == 3
