"""Bad config fails fast with one message naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alliance.config import ConfigError, load_config

BASE = {
    "reporting_currency": "USD",
    "partners": [
        {
            "id": "northwind", "platform": "shopify", "base_url": "https://nw.example.com",
            "credentials_env": "NW_TOKEN_TEST", "referral_codes": ["NW10"],
            "commission": {"type": "percent", "rate": 0.1},
        },
        {"id": "brightpath", "platform": "none", "referral_codes": ["BRIGHT5"]},
    ],
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "alliance.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def mutate(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for key, value in changes.items():
        data[key] = value
    return data


def test_valid_config_loads_with_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    cfg = load_config(write(tmp_path, BASE))
    assert [p.id for p in cfg.storefronts] == ["northwind"]
    assert cfg.attribution.lookback_days == 30 and cfg.lock_days == 30


def test_unknown_platform_names_partner_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    data["partners"][0]["platform"] = "magento"
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, data))
    message = str(exc.value)
    assert "alliance.yml" in message and "partners[0] (id: northwind).platform" in message
    assert "magento" in message and "shopify" in message


def test_duplicate_partner_id(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    data["partners"][1]["id"] = "northwind"
    data["partners"][1]["referral_codes"] = []
    with pytest.raises(ConfigError, match="id `northwind` is declared twice"):
        load_config(write(tmp_path, data))


def test_code_claimed_by_two_partners_case_insensitive(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    data["partners"][1]["referral_codes"] = ["nw10"]
    with pytest.raises(ConfigError, match="code `nw10` is also claimed by `northwind`"):
        load_config(write(tmp_path, data))


def test_missing_secret_names_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NW_TOKEN_TEST", raising=False)
    with pytest.raises(ConfigError, match="northwind: NW_TOKEN_TEST"):
        load_config(write(tmp_path, BASE))
    assert load_config(write(tmp_path, BASE), require_secrets=False).partners[0].id == "northwind"


def test_same_effective_from_twice_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    contract = {"referrer": "brightpath", "type": "flat", "amount": 5, "effective_from": "2026-10-01"}
    data["partners"][0]["contracts"] = [contract, dict(contract, amount=6)]
    with pytest.raises(ConfigError, match="two contracts for referrer `brightpath` start on 2026-10-01"):
        load_config(write(tmp_path, data))


def test_foreign_currency_needs_fx_rates(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    data["partners"][0]["currency"] = "EUR"
    with pytest.raises(ConfigError, match="fx_rates: partners sell in EUR"):
        load_config(write(tmp_path, data))


def test_relative_paths_and_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    monkeypatch.setenv("SANDBOX_URL_TEST", "http://127.0.0.1:9")
    (tmp_path / "rates.csv").write_text("date,currency,rate_to_reporting\n2026-10-01,EUR,1.1\n")
    data = mutate(fx_rates="rates.csv")
    data["partners"][0]["base_url"] = "${SANDBOX_URL_TEST}/nw"
    cfg = load_config(write(tmp_path, data))
    assert cfg.fx_rates == tmp_path / "rates.csv"
    assert cfg.partners[0].base_url == "http://127.0.0.1:9/nw"


def test_env_config_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    monkeypatch.setenv("ALLIANCE_CONFIG", str(write(tmp_path, BASE)))
    assert load_config().source_file == tmp_path / "alliance.yml"


def test_demo_config_is_valid():
    cfg = load_config(Path(__file__).parents[1] / "config" / "demo.yml", require_secrets=False)
    assert {p.id for p in cfg.partners} >= {"northwind", "lumen", "tidewater", "brightpath"}
