"""Credentials stay home (PRODUCT.md §3): next links and redirects never take a secret to another origin,
base_url is https unless loopback, and a secret comes from credentials_env or an Airflow connection.

Every origin test runs the real connector over loopback HTTP against a stub partner API; a second
loopback server (another host on the same port, or another port) records whatever reaches it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import requests
import yaml
from support.loopback_api import LoopbackApi, self_signed_cert

from alliance.airflow_credentials import airflow_connection, require_connections
from alliance.config import AllianceConfig, ConfigError, Partner, ReferralNetwork, load_config
from connectors.http import HttpPolicy, same_origin
from connectors.ingest import IngestOptions, ingest_source

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yml"
SHOP_PATH = "/shop/admin/api/2025-10/orders.json"
CLICKS_PATH = "/Mediapartners/IRstub/Clicks"
TOKEN = "stub-shop-token"
SID_TOKEN = "IRstub:stub-network-token"
FAST = IngestOptions(http=HttpPolicy(retries=1, connect_retries=1, read_retries=1, backoff_factor=0.01,
                                     read_timeout=10))
AIRFLOW = IngestOptions(connections=airflow_connection)  # what the Airflow task and the CLI hand in


def _clicks_body(next_uri: str) -> dict:
    return {"@page": "1", "@numpages": "2", "@pagesize": "1000", "@total": "0", "@uri": CLICKS_PATH,
            "@firstpageuri": CLICKS_PATH, "@previouspageuri": "", "@nextpageuri": next_uri,
            "@lastpageuri": CLICKS_PATH + "?Page=2", "Clicks": []}


def _config(kind: str, base: str) -> AllianceConfig:
    if kind == "shopify":
        shop = Partner(id="stub_shop", platform="shopify", base_url=base + "/shop", credentials_env="STUB_TOKEN",
                       commission={"type": "percent", "rate": "0.1"})
        return AllianceConfig(partners=[shop])
    network = ReferralNetwork(id="stub_net", platform="referral_network", base_url=base + "/Mediapartners/IRstub",
                              credentials_env="STUB_SID_TOKEN")
    return AllianceConfig(partners=[], referral_networks=[network])


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    monkeypatch.setenv("STUB_TOKEN", TOKEN)
    monkeypatch.setenv("STUB_SID_TOKEN", SID_TOKEN)
    monkeypatch.setenv("ALLIANCE_PII_SALT", "stub-salt-not-secret")


def _first_page_linking_to(kind: str, target) -> object:  # noqa: ANN001 - a URL or origin -> URL
    """A handler whose first page links on to `target` (Link rel=next, or @nextpageuri); `target` may be a
    function of the serving origin, so a link can point at a server started after this one."""
    def handle(path: str, headers: dict, origin: str) -> tuple[int, dict, bytes]:
        where = target(origin) if callable(target) else target
        if kind == "shopify":
            return 200, {"Link": f'<{where}{SHOP_PATH}?page_info=abc&limit=250>; rel="next"'}, b'{"orders": []}'
        return 200, {}, json.dumps(_clicks_body(f"{where}{CLICKS_PATH}?Page=2")).encode()
    return handle


def _spy_handler(path: str, headers: dict, origin: str) -> tuple[int, dict, bytes]:
    return 200, {}, b'{"orders": [], "Clicks": [], "@nextpageuri": ""}'


def _assert_refused(result, source_id: str, via: str, target: str) -> None:
    assert (result.status, result.landed) == ("failed", 0)
    assert result.error.startswith(f"{source_id}: refused {via} to {target}"), result.error
    assert "another scheme, host or port than base_url" in result.error
    assert TOKEN not in result.error and SID_TOKEN.split(":")[1] not in result.error


def test_same_origin_compares_scheme_lowercased_host_and_effective_port():
    assert same_origin("https://Shop.Example.com/admin?page_info=x", "https://shop.example.com:443/")
    assert same_origin("http://127.0.0.1:80/a", "http://127.0.0.1/b")
    assert not same_origin("http://shop.example.com/a", "https://shop.example.com/a")  # scheme downgrade
    assert not same_origin("https://shop.example.com:8443/a", "https://shop.example.com/a")  # port
    assert not same_origin("https://shop.example.com.evil.test/a", "https://shop.example.com/a")  # host
    assert not same_origin("https://shop.example.com:x/a", "https://shop.example.com/a")  # unreadable port


@pytest.mark.parametrize("kind", ["shopify", "network"])
def test_next_link_to_another_host_on_the_same_port_is_refused(kind, warehouse):
    source_id = "stub_shop" if kind == "shopify" else "stub_net"
    other_host = _first_page_linking_to(kind, lambda origin: origin.replace("127.0.0.1", "127.0.0.2"))
    with LoopbackApi(other_host) as api, LoopbackApi(_spy_handler, host="127.0.0.2", port=api.port) as spy:
        result = ingest_source(_config(kind, api.url), source_id, warehouse, options=FAST)
        via = 'the next-page link (`Link: rel="next"`)' if kind == "shopify" else "the next-page link `@nextpageuri`"
        _assert_refused(result, source_id, via, spy.url + (SHOP_PATH if kind == "shopify" else CLICKS_PATH))
        assert spy.url == api.url.replace("127.0.0.1", "127.0.0.2")  # only the host differs
        assert spy.seen == [] and len(api.seen) == 1


@pytest.mark.parametrize("kind", ["shopify", "network"])
def test_next_link_to_another_port_is_refused(kind, warehouse):
    with LoopbackApi(_spy_handler) as spy, LoopbackApi(_first_page_linking_to(kind, spy.url)) as api:
        source_id = "stub_shop" if kind == "shopify" else "stub_net"
        result = ingest_source(_config(kind, api.url), source_id, warehouse, options=FAST)
        assert result.status == "failed" and result.error.startswith(f"{source_id}: refused "), result.error
        assert f"127.0.0.1:{spy.port}" in result.error and spy.seen == []


@pytest.mark.parametrize("kind", ["shopify", "network"])
def test_next_link_downgrading_https_to_http_is_refused(kind, warehouse, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust the loopback certificate, verification stays on
    source_id = "stub_shop" if kind == "shopify" else "stub_net"
    downgrade = _first_page_linking_to(kind, lambda origin: origin.replace("https://", "http://"))
    with LoopbackApi(downgrade, tls=(cert, key)) as api:
        result = ingest_source(_config(kind, api.url), source_id, warehouse, options=FAST)
        assert result.status == "failed", result.error
        plain = api.url.replace("https://", "http://")  # same host, same port, only the scheme differs
        assert result.error.startswith(f"{source_id}: refused ") and f"to {plain}/" in result.error, result.error
        assert len(api.seen) == 1 and api.seen[0].carried_credentials  # page 1 over https only


@pytest.mark.parametrize("kind", ["shopify", "network"])
def test_redirect_to_another_host_is_refused_and_credentials_never_reach_it(kind, warehouse):
    source_id = "stub_shop" if kind == "shopify" else "stub_net"
    path = SHOP_PATH if kind == "shopify" else CLICKS_PATH

    def redirect(request_path: str, headers: dict, origin: str) -> tuple[int, dict, bytes]:
        return 302, {"Location": origin.replace("127.0.0.1", "127.0.0.2") + request_path}, b"{}"

    with LoopbackApi(redirect) as api, LoopbackApi(_spy_handler, host="127.0.0.2", port=api.port) as spy:
        result = ingest_source(_config(kind, api.url), source_id, warehouse, options=FAST)
        assert result.status == "failed"
        assert result.error.startswith(f"{source_id}: refused a 302 redirect to {spy.url}{path}"), result.error
        assert spy.seen == []  # not even a request, so no Authorization / X-Shopify-Access-Token
        # The control: plain requests follows the redirect and hands the other host the shop's token.
        requests.get(api.url + SHOP_PATH, headers={"X-Shopify-Access-Token": TOKEN}, timeout=10)
        assert spy.seen and spy.seen[-1].headers.get("x-shopify-access-token") == TOKEN


def test_redirect_within_the_origin_is_followed(warehouse):
    def handle(path: str, headers: dict, origin: str) -> tuple[int, dict, bytes]:
        if path.startswith(CLICKS_PATH):
            return 301, {"Location": "/v2" + path}, b"{}"
        return 200, {}, json.dumps(_clicks_body("")).encode()

    with LoopbackApi(handle) as api:
        result = ingest_source(_config("network", api.url), "stub_net", warehouse, options=FAST)
        assert result.status == "succeeded", result.error
        assert [s.path.split("?")[0] for s in api.seen] == [CLICKS_PATH, "/v2" + CLICKS_PATH]
        assert all(s.carried_credentials for s in api.seen)


def _write_config(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    data = yaml.safe_load(DEMO.read_text())
    data["fx_rates"] = str(ROOT / "config" / "demo_fx_rates.csv")
    data["claims"] = str(ROOT / "config" / "demo_claims.csv")
    data.pop("alerts", None)
    edit(data)
    path = tmp_path / "alliance.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _source(data: dict, source_id: str) -> dict:
    return next(s for s in data["partners"] + data["referral_networks"] if s["id"] == source_id)


@pytest.mark.parametrize("url", ["http://northwind.example.com", "http://10.0.0.5:8080/shop",
                                 "http://127.0.0.1.example.com/x"])
def test_http_base_url_off_loopback_is_a_config_error(url, tmp_path):
    path = _write_config(tmp_path, lambda d: _source(d, "northwind").update(base_url=url))
    with pytest.raises(ConfigError) as caught:
        load_config(path, require_secrets=False)
    message = str(caught.value)
    assert message.startswith(str(path)) and "partners[0] (id: northwind).base_url" in message, message
    assert "plain http" in message and "use https://" in message


@pytest.mark.parametrize("url", ["https://northwind.example.com", "http://127.0.0.1:8765/northwind",
                                 "http://localhost:8765", "http://[::1]:8765/x", "HTTPS://Shop.Example.com"])
def test_https_or_loopback_base_url_is_accepted(url, tmp_path):
    path = _write_config(tmp_path, lambda d: _source(d, "northwind").update(base_url=url))
    assert load_config(path, require_secrets=False).partner("northwind").base_url == url


def test_credentials_inside_base_url_are_refused_without_echoing_them(tmp_path):
    url = "https://shop:s3cr3t-token@northwind.example.com"
    path = _write_config(tmp_path, lambda d: _source(d, "northwind").update(base_url=url))
    with pytest.raises(ConfigError, match=r"base_url: holds credentials") as caught:
        load_config(path, require_secrets=False)
    assert "s3cr3t-token" not in str(caught.value)


def test_network_base_url_is_held_to_the_same_rule(tmp_path):
    path = _write_config(tmp_path, lambda d: _source(d, "alliance_network").update(base_url="http://api.impact.com"))
    with pytest.raises(ConfigError, match=r"referral_networks\[0\] \(id: alliance_network\)\.base_url: .*plain http"):
        load_config(path, require_secrets=False)


def _use_connections(data: dict) -> None:
    for source_id, conn in (("northwind", "northwind_api"), ("alliance_network", "network_api")):
        source = _source(data, source_id)
        source.pop("credentials_env")
        source["credentials_conn"] = conn


def test_credentials_conn_reads_airflow_connections_json_and_uri(sandbox_url, warehouse, tmp_path, monkeypatch):
    # the env variables the demo would use are gone: only the Airflow connections can open the sandbox
    monkeypatch.delenv("NORTHWIND_TOKEN")
    monkeypatch.delenv("NETWORK_SID_TOKEN")
    monkeypatch.setenv("AIRFLOW_CONN_NORTHWIND_API", json.dumps({"conn_type": "http",
                                                                 "password": "sandbox-northwind-token"}))
    monkeypatch.setenv("AIRFLOW_CONN_NETWORK_API", "http://ACsandbox:sandbox-network-token@network.invalid")
    config = require_connections(load_config(_write_config(tmp_path, _use_connections)))
    assert config.partner("northwind").credentials_conn == "northwind_api"
    orders = ingest_source(config, "northwind", warehouse, options=AIRFLOW)
    clicks = ingest_source(config, "alliance_network", warehouse, options=AIRFLOW)
    assert (orders.status, clicks.status) == ("succeeded", "succeeded"), (orders.error, clicks.error)
    assert orders.landed > 0 and clicks.landed > 0
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("select count(*) from raw.clicks").fetchone()[0] == clicks.landed


def test_credentials_conn_missing_or_wrong_names_the_connection(sandbox_url, warehouse, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NORTHWIND_API", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_NETWORK_API", json.dumps({"conn_type": "http", "login": "ACsandbox",
                                                               "password": "not-the-token"}))
    path = _write_config(tmp_path, _use_connections)
    with pytest.raises(ConfigError) as caught:
        require_connections(load_config(path))
    assert "northwind: credentials_conn `northwind_api` is not an Airflow connection" in str(caught.value)
    assert "AIRFLOW_CONN_NORTHWIND_API" in str(caught.value)
    config = load_config(path, require_secrets=False)
    missing = ingest_source(config, "northwind", warehouse, options=AIRFLOW)
    assert missing.status == "failed" and "`northwind_api` is not an Airflow connection" in missing.error
    without_lookup = ingest_source(config, "northwind", warehouse)  # connectors know no Airflow of their own
    assert without_lookup.status == "failed" and "no connection lookup" in without_lookup.error
    wrong = ingest_source(config, "alliance_network", warehouse, options=replace(FAST, connections=airflow_connection))
    assert wrong.status == "failed" and "check the token in Airflow connection `network_api`" in wrong.error
    assert "not-the-token" not in wrong.error


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda s: s.update(credentials_conn="northwind_api"), "not both"),
    (lambda s: s.pop("credentials_env"), "needs `credentials_env` (an environment variable name) or "
                                         "`credentials_conn`"),
])
def test_exactly_one_place_for_the_secret(edit, expected, tmp_path):
    path = _write_config(tmp_path, lambda d: edit(_source(d, "northwind")))
    with pytest.raises(ConfigError, match=r"partners\[0\] \(id: northwind\): .*" + expected.replace("(", r"\(")
                       .replace(")", r"\)").replace("`", "`")):
        load_config(path, require_secrets=False)
