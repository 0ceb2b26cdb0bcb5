"""§9.2 claims files land by the connectors' rules (connectors/claims.py): validated row by row, bad rows quarantined
with a reason naming file:line and never the value, good rows landed once, re-landing changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from alliance.config import ConfigError, load_config
from alliance.migrate import migrate
from alliance.roles import ROLES, enable_login, role_password, with_login
from connectors.claims import land_claims, parse_claimed_at

PARTNERS = {"northwind", "lumen", "brightpath"}
HEADER = "claim_id,referrer_partner_id,destination_partner_id,order_id,claimed_at\n"


def _write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def _claims(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("select claim_id, referrer_partner_id, destination_partner_id, order_id, claimed_at,"
                        " source_file, source_line from raw.claims order by claim_id").fetchall()


def _quarantine(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("select record_key, reason, payload from raw.quarantine where source_id = 'claims'"
                        " order by quarantine_id").fetchall()


@pytest.fixture()
def conn(warehouse: str):
    with psycopg.connect(warehouse, autocommit=True) as connection:
        migrate(connection)
        yield connection


def test_claimed_at_needs_a_time_and_a_zone() -> None:
    assert parse_claimed_at("2026-11-03T09:30:00Z") == datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    assert parse_claimed_at("2026-11-03 10:30:00+01:00") == datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    for text in ("2026-11-03", "2026-11-03T09:30:00", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_claimed_at(text)


def test_good_rows_land_bad_rows_are_quarantined_with_where_and_why(conn, tmp_path: Path) -> None:
    file = _write(
        tmp_path / "claims.csv",
        "c1,lumen,northwind,1001,2026-11-03T09:30:00Z",              # good
        "c2,ghost,northwind,1002,2026-11-03T09:30:00Z",              # unknown claimant
        "c3,northwind,northwind,1003,2026-11-03T09:30:00Z",          # claimant = destination
        "c4,lumen,northwind,1004,2026-11-03 09:30",                  # no zone
        ",lumen,northwind,1005,2026-11-03T09:30:00Z",                # no claim_id
        "c6,lumen,bob@example.com,1006,2026-11-03T09:30:00Z",        # unknown destination that is an e-mail
        "",                                                          # blank line: skipped
        "c7,brightpath,northwind,1007,2026-11-03T12:00:00+02:00",    # good, offset converted to UTC
        "c8,lumen,northwind,carol@example.com,2026-11-03T09:30:00Z",  # an order id that is an e-mail address
    )
    outcome = land_claims(conn, file, PARTNERS)
    assert (outcome.kept, outcome.landed, outcome.quarantined) == (2, 2, 6)
    assert _claims(conn) == [
        ("c1", "lumen", "northwind", "1001", datetime(2026, 11, 3, 9, 30, tzinfo=UTC), "claims.csv", 2),
        ("c7", "brightpath", "northwind", "1007", datetime(2026, 11, 3, 10, 0, tzinfo=UTC), "claims.csv", 9),
    ]
    bad = _quarantine(conn)
    reasons = {key: reason for key, reason, _ in bad}
    assert reasons["c2"] == "claims.csv:3: column referrer_partner_id: not a declared partner id (unknown partner)"
    assert reasons["c3"].startswith("claims.csv:4: the claimant (referrer_partner_id) is the destination itself")
    assert reasons["c4"].startswith("claims.csv:5: column claimed_at: not an ISO 8601 date-time with a zone")
    assert reasons[None] == "claims.csv:6: column claim_id: empty; every claim needs one"
    assert reasons["c6"] == "claims.csv:7: column destination_partner_id: not a declared partner id (unknown partner)"
    assert reasons["c8"] == ("claims.csv:10: column order_id: holds an e-mail address; a claim names partners and an "
                             "order, never a customer")
    everything = " ".join(f"{key} {reason} {payload}" for key, reason, payload in bad)
    assert "@example.com" not in everything and "ghost" not in everything  # never the value that broke a rule
    assert '"destination_partner_id": "<text>"' in dict((k, p) for k, _, p in bad)["c6"]


def test_relanding_changes_nothing_and_identical_rows_count_once(conn, tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    folder.mkdir()
    _write(folder / "a.csv", "c1,lumen,northwind,1001,2026-11-03T09:30:00Z", "c2,ghost,northwind,1,2026-11-03T09:30Z")
    _write(folder / "b.csv", "c1,lumen,northwind,1001,2026-11-03T10:30:00+01:00")  # the same claim again
    (folder / "notes.txt").write_text("not a claims file")
    first = land_claims(conn, folder, PARTNERS)
    assert (first.kept, first.landed, first.quarantined) == (1, 1, 1)
    before = conn.execute("select claim_id, source_file, source_line, loaded_at from raw.claims").fetchall()
    again = land_claims(conn, folder, PARTNERS)
    assert (again.kept, again.landed, again.removed) == (1, 0, 0)
    assert conn.execute("select claim_id, source_file, source_line, loaded_at from raw.claims").fetchall() == before
    assert before[0][:3] == ("c1", "a.csv", 2)
    assert len(_quarantine(conn)) == 1  # the bad row is not quarantined twice


def test_one_claim_id_with_different_content_is_quarantined_in_every_version(conn, tmp_path: Path) -> None:
    file = _write(tmp_path / "claims.csv", "c1,lumen,northwind,1001,2026-11-03T09:30:00Z",
                  "c1,lumen,northwind,1002,2026-11-03T09:30:00Z", "c2,lumen,northwind,1003,2026-11-03T09:30:00Z")
    land_claims(conn, file, PARTNERS)
    assert [row[0] for row in _claims(conn)] == ["c2"]
    reasons = [reason for key, reason, _ in _quarantine(conn) if key == "c1"]
    assert reasons == [
        "claims.csv:2: claim_id is given with different content at claims.csv:2, claims.csv:3; every version is "
        "quarantined until one remains",
        "claims.csv:3: claim_id is given with different content at claims.csv:2, claims.csv:3; every version is "
        "quarantined until one remains",
    ]


def test_raw_claims_mirrors_the_files(conn, tmp_path: Path) -> None:
    """A changed claim is rewritten, a removed one disappears, no claims file leaves no claims."""
    file = _write(tmp_path / "claims.csv", "c1,lumen,northwind,1001,2026-11-03T09:30:00Z",
                  "c2,lumen,northwind,1002,2026-11-03T09:30:00Z")
    land_claims(conn, file, PARTNERS)
    _write(file, "c1,lumen,northwind,1009,2026-11-03T09:30:00Z")
    outcome = land_claims(conn, file, PARTNERS)
    assert (outcome.landed, outcome.removed) == (1, 1)
    assert [(row[0], row[3]) for row in _claims(conn)] == [("c1", "1009")]
    assert land_claims(conn, None, PARTNERS).removed == 1
    assert _claims(conn) == []


def test_a_file_with_a_wrong_header_is_quarantined_whole(conn, tmp_path: Path) -> None:
    file = _write(tmp_path / "claims.csv", "c1,lumen,northwind,1001", header="claim_id,referrer,destination,order\n")
    assert land_claims(conn, file, PARTNERS).kept == 0
    [(key, reason, _)] = _quarantine(conn)
    assert key is None
    assert reason.startswith("claims.csv:1: the header must be claim_id,referrer_partner_id,destination_partner_id,"
                             "order_id,claimed_at (missing referrer_partner_id, destination_partner_id, order_id, "
                             "claimed_at)")


def test_config_claims_path_is_relative_to_the_config_and_must_exist(tmp_path: Path) -> None:
    base = "partners:\n  - {id: brightpath, platform: none}\n"
    (tmp_path / "claims").mkdir()
    config = tmp_path / "alliance.yml"
    config.write_text(base + "claims: claims\n")
    assert load_config(config, require_secrets=False).claims == (tmp_path / "claims").resolve()
    config.write_text(base + "claims: missing.csv\n")
    with pytest.raises(ConfigError, match="claims: .*missing.csv is neither a CSV file nor a folder of CSV files"):
        load_config(config, require_secrets=False)


def test_the_transformer_lands_claims_as_the_transform_does(conn, warehouse: str, tmp_path: Path) -> None:
    """alliance/run.py prepare lands the claims as the transformer's login: migration 0015 grants what it needs."""
    password = role_password(ROLES["transformer"])  # the run's shared password: roles are cluster-wide
    enable_login(warehouse, ROLES["transformer"], password)
    file = _write(tmp_path / "claims.csv", "c1,lumen,northwind,1001,2026-11-03T09:30:00Z",
                  "c2,ghost,northwind,1002,2026-11-03T09:30:00Z")
    with psycopg.connect(with_login(warehouse, ROLES["transformer"], password)) as transformer:
        outcome = land_claims(transformer, file, PARTNERS)
    assert (outcome.kept, outcome.quarantined) == (1, 1)
    assert [row[0] for row in _claims(conn)] == ["c1"] and len(_quarantine(conn)) == 1
