"""Bad config fails fast with one message naming the file, the key and the fix."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from alliance.config import ConfigError, load_config, read_adjustments, read_reviews

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


# §8 partner programmes: terms of a contract, adjustments and reviews (CSV errors name the line and the column)

def _programme(tmp_path: Path, monkeypatch, commission: dict | None = None, **files: str) -> Path:
    monkeypatch.setenv("NW_TOKEN_TEST", "x")
    data = mutate()
    if commission is not None:
        data["partners"][0]["commission"] = commission
    for key, text in files.items():
        (tmp_path / f"{key}.csv").write_text(text)
        data[key] = f"{key}.csv"
    return write(tmp_path, data)


def test_programme_terms_load(tmp_path, monkeypatch):
    commission = {"type": "percent", "rate": 0.1, "tiers": [{"from_orders": 2, "rate": 0.12}],
                  "cap_per_order": 25, "cap_per_month": 2000, "clawback": True}
    path = _programme(
        tmp_path, monkeypatch, commission,
        adjustments="month,referrer,destination,amount,reason\n2026-10,brightpath,northwind,-12.50,goodwill\n",
        reviews="partner_id,order_id,decision,reviewed_at\nnorthwind,1001,approve,2026-11-03\n"
                "northwind,1001,approve,2026-11-05T10:00:00Z\n",
    )
    cfg = load_config(path)
    assert cfg.partners[0].commission.tiers[0].from_orders == 2 and cfg.partners[0].commission.clawback
    [adjustment] = read_adjustments(cfg)
    assert (adjustment.line, adjustment.month, adjustment.amount) == (2, date(2026, 10, 1), Decimal("-12.50"))
    [review] = read_reviews(cfg)  # the same decision twice: the earliest counts
    assert (review.line, review.reviewed_at) == (2, datetime(2026, 11, 3, tzinfo=UTC))


@pytest.mark.parametrize("tiers", [
    [{"from_orders": 50, "rate": 0.12}, {"from_orders": 20, "rate": 0.15}],
    [{"from_orders": 50, "rate": 0.15}, {"from_orders": 200, "rate": 0.12}],
    [{"from_orders": 50, "rate": 0.12}, {"from_orders": 50, "rate": 0.15}],
])
def test_tiers_must_ascend_in_both_keys(tmp_path, monkeypatch, tiers):
    path = _programme(tmp_path, monkeypatch, {"type": "percent", "rate": 0.1, "tiers": tiers})
    with pytest.raises(ConfigError, match=r"partners\[0\] \(id: northwind\)\.commission\.tiers: tiers must ascend"):
        load_config(path)


def test_tiers_on_a_flat_contract_and_negative_cap(tmp_path, monkeypatch):
    path = _programme(tmp_path, monkeypatch, {"type": "flat", "amount": 5, "tiers": [{"from_orders": 5, "rate": 0.1}]})
    with pytest.raises(ConfigError, match="tiers` apply to percent contracts only"):
        load_config(path)
    path = _programme(tmp_path, monkeypatch, {"type": "percent", "rate": 0.1, "cap_per_month": -1})
    with pytest.raises(ConfigError, match=r"commission\.cap_per_month: Input should be greater than or equal to 0"):
        load_config(path)


@pytest.mark.parametrize(("row", "expected"), [
    ("2026-10,ghost,northwind,10,bonus", "line 2, column referrer: `ghost` is not a declared partner id"),
    ("2026-13,brightpath,northwind,10,bonus", "line 2, column month: not a month; write YYYY-MM"),
    ("2026-10,brightpath,northwind,ten,bonus", "line 2, column amount: not an amount"),
    ("2026-10,brightpath,northwind,1.005,bonus", "line 2, column amount: not an amount"),
    ("2026-10,brightpath,northwind,10,", "line 2, column reason: empty"),
])
def test_bad_adjustment_rows(tmp_path, monkeypatch, row, expected):
    path = _programme(tmp_path, monkeypatch, adjustments=f"month,referrer,destination,amount,reason\n{row}\n")
    with pytest.raises(ConfigError, match="adjustments.csv: adjustments " + re.escape(expected)):
        load_config(path)


@pytest.mark.parametrize(("rows", "expected"), [
    ("ghost,1001,approve,2026-11-03", "line 2, column partner_id: `ghost` is not a declared storefront partner id"),
    ("northwind,1001,maybe,2026-11-03", "line 2, column decision: `maybe` is not approve or reject"),
    ("northwind,1001,approve,soon", "line 2, column reviewed_at: not an ISO date"),
    ("northwind,1001,approve,2026-11-03\nnorthwind,1001,reject,2026-11-04",
     "line 3: order 1001 of northwind already has decision `approve` on line 2; keep one decision per order"),
])
def test_bad_review_rows(tmp_path, monkeypatch, rows, expected):
    path = _programme(tmp_path, monkeypatch, reviews=f"partner_id,order_id,decision,reviewed_at\n{rows}\n")
    with pytest.raises(ConfigError, match="reviews.csv: reviews " + re.escape(expected)):
        load_config(path)


def test_holds_thresholds_reach_dbt_as_vars(tmp_path, monkeypatch):
    from alliance.dbt_runner import dbt_vars_from_config

    path = _programme(tmp_path, monkeypatch)
    assert "holds_min_seconds" not in dbt_vars_from_config(load_config(path))
    data = yaml.safe_load(path.read_text())
    data["holds"] = {"min_seconds_click_to_order": 10, "max_clicks_per_hour": 20}
    dbt_vars = dbt_vars_from_config(load_config(write(tmp_path, data)))
    assert (dbt_vars["holds_min_seconds"], dbt_vars["holds_max_clicks_per_hour"]) == (10, 20)
