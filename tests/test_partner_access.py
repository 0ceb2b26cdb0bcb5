"""Partner-scoped access (PRODUCT.md §9.3): a partner's login reads only rows naming it, in every published table.

Real marts (dbt on the hand-built alliance of tests/test_dbt_build.py), published as the transform publishes, read
through real partner logins made by `partner_access` / `alliance partner-access`. Which rows name a partner is
written out here from §9.3, independently of the product's YAML declaration (that is used only for a table this
file does not know yet, so a newly published mart is still checked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.build_schema import make_build_schema
from test_dbt_build import VARS, _load

from alliance.config import load_config
from alliance.incremental import dbt_build
from alliance.partner_access import PartnerAccessError, login_name, partner_access
from alliance.partner_scope import declared_scopes, missing_scopes, published_scopes
from alliance.publish import publish, rollback, stamp_build
from alliance.roles import with_login
from alliance.schemas import BUILD_SCHEMA, PUBLISHED_TABLES

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yml"
PARTNERS = ("northwind", "lumen", "tidewater", "brightpath")  # the world's partners, all in config/demo.yml
# §9.3 by hand: the columns that name the partner(s) a row belongs to
NAMING = {
    "fct_orders": ("partner_id",),  # its own storefront only
    "fct_referrals": ("referrer_partner_id", "destination_partner_id"),  # both ends of a click
    "fct_order_attribution": ("partner_id", "referrer_partner_id"),  # storefront; a referrer its own credit only
    "partner_kpis_daily": ("partner_id",),
    "partner_kpis_monthly": ("partner_id",),
    "partner_balances": ("referrer_partner_id", "destination_partner_id"),
    "commission_adjustments": ("referrer_partner_id", "destination_partner_id"),
    "objective_progress": ("partner_id",),
    "partner_claims": ("referrer_partner_id", "destination_partner_id"),  # the claimant and the storefront
}


@dataclass
class World:
    owner: str
    home: Path
    logins: dict[str, str]  # partner -> its login URL


def _naming(table: str) -> tuple[str, ...]:
    return NAMING.get(table) or declared_scopes()[table]


def _build_and_publish(url: str, run_id: str, *, full_refresh: bool | None = None) -> None:
    built = dbt_build(url, BUILD_SCHEMA, VARS, full_refresh=full_refresh)
    assert built.outcome.success, built.outcome.failures
    stamp_build(url, run_id)
    publish(url, run_id=run_id, require_stamp=True)


@pytest.fixture(scope="module")
def world(fresh_database_factory, tmp_path_factory) -> World:
    url = fresh_database_factory("rls")
    home = tmp_path_factory.mktemp("alliance_home")
    _load(url)
    with psycopg.connect(url, autocommit=True) as conn:  # §8.4 manual lines, so commission_adjustments has rows
        conn.execute("insert into raw.cfg_adjustments values (1, '2026-10-01', 'lumen', 'northwind', 5.00, 'goodwill'),"
                     " (2, '2026-10-01', 'brightpath', 'tidewater', -2.00, 'correction')")
        # §9.2 claims of two claimants at two storefronts, so partner_claims has rows some partners may not see
        conn.execute("insert into raw.claims (claim_id, referrer_partner_id, destination_partner_id, order_id,"
                     " claimed_at, source_file, source_line) values"
                     " ('c1', 'lumen', 'northwind', '1001', '2026-10-05T00:00Z', 'claims.csv', 2),"
                     " ('c2', 'brightpath', 'tidewater', '2001', '2026-10-05T00:00Z', 'claims.csv', 3)")
    _build_and_publish(url, "r1", full_refresh=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALLIANCE_HOME", str(home))  # the logins' passwords go here
        config = load_config(DEMO, require_secrets=False)
        logins = {partner: partner_access(url, partner, config).url for partner in PARTNERS}
    return World(owner=url, home=home, logins=logins)


def _party(columns: tuple[str, ...]) -> sql.Composable:
    """The row names %(partner)s in one of `columns` (null never does)."""
    return sql.SQL("coalesce({}, false)").format(
        sql.SQL(" or ").join(sql.SQL("{} = %(partner)s").format(sql.Identifier(c)) for c in columns))


def _count(conn: psycopg.Connection, table: str, where: sql.Composable, partner: str) -> int:
    return conn.execute(sql.SQL("select count(*) from {} where {}").format(
        sql.Identifier("analytics", table), where), {"partner": partner}).fetchone()[0]


def _customer_keys(conn: psycopg.Connection, tables: list[str], partner: str, *, party_only: bool) -> set[str]:
    keys: set[str] = set()
    for table in tables:
        where = _party(_naming(table)) if party_only else sql.SQL("true")
        keys |= {r[0] for r in conn.execute(
            sql.SQL("select distinct customer_key from {} where customer_key is not null and {}").format(
                sql.Identifier("analytics", table), where), {"partner": partner})}
    return keys


def assert_scoped(world: World) -> None:
    """Every partner sees exactly its rows of every published table, and no customer key from elsewhere."""
    with psycopg.connect(world.owner) as owner:
        with_keys = [r[0] for r in owner.execute(
            "select table_name from information_schema.columns where table_schema = 'analytics'"
            " and column_name = 'customer_key' and table_name = any(%s)", (list(PUBLISHED_TABLES),))]
        totals = {t: _count(owner, t, sql.SQL("true"), "") for t in PUBLISHED_TABLES}
        seen: dict[str, list[int]] = {t: [] for t in PUBLISHED_TABLES}
        hidden_keys = 0
        for partner, url in world.logins.items():
            with psycopg.connect(url) as login:
                for table in PUBLISHED_TABLES:
                    party = _party(_naming(table))
                    visible = _count(login, table, sql.SQL("true"), partner)
                    foreign = _count(login, table, sql.SQL("not {}").format(party), partner)
                    assert foreign == 0, f"{partner} sees {foreign} row(s) of analytics.{table} not naming it"
                    assert visible == _count(owner, table, party, partner), f"{partner}: analytics.{table}"
                    seen[table].append(visible)
                visible_keys = _customer_keys(login, with_keys, partner, party_only=False)
            party_keys = _customer_keys(owner, with_keys, partner, party_only=True)
            assert visible_keys <= party_keys, f"{partner} sees customer keys only other partners' rows hold"
            assert visible_keys == party_keys
            hidden_keys += len(_customer_keys(owner, with_keys, partner, party_only=False) - party_keys)
    assert with_keys and hidden_keys, "the world must hold customer keys some partner may not see"
    for table, counts in seen.items():  # the check could fail: rows exist, and some are someone else's
        assert totals[table] > 0 and max(counts) > 0, f"analytics.{table} is empty for every partner"
        assert min(counts) < totals[table], f"every partner sees all of analytics.{table}"


def assert_bi_sees_everything(world: World) -> None:
    with psycopg.connect(world.owner, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'analytics' order by 1")]
        totals = {t: _count(conn, t, sql.SQL("true"), "") for t in tables}
        conn.execute("set role alliance_bi")
        assert {t: _count(conn, t, sql.SQL("true"), "") for t in tables} == totals
    assert set(PUBLISHED_TABLES) <= set(totals) and sum(totals.values()) > 0


def test_every_published_table_declares_its_partner_scope():
    assert missing_scopes() == []
    scopes = published_scopes()
    assert set(scopes) == set(PUBLISHED_TABLES)
    for table, columns in NAMING.items():  # §9.3, by hand, matches the declaration
        if table in scopes:
            assert scopes[table] == columns, table


def test_an_undeclared_published_table_is_named_with_the_yaml_to_add(tmp_path):
    marts = tmp_path / "_marts.yml"
    marts.write_text("version: 2\nmodels:\n  - name: fct_orders\n    config:\n      meta:\n"
                     "        partner_scope: {columns: [partner_id]}\n    columns:\n      - name: partner_id\n"
                     "  - name: partner_claims\n    columns:\n      - name: claim_id\n")
    [message] = missing_scopes(("fct_orders", "partner_claims"), marts)
    assert str(marts) in message and "partner_claims" in message
    assert "meta:\n        partner_scope: {columns: [referrer_partner_id, destination_partner_id]}" in message
    marts.write_text(marts.read_text().replace("[partner_id]", "[storefront_id]"))
    with pytest.raises(ValueError, match="storefront_id"):
        declared_scopes(marts)


def test_each_partner_sees_only_its_rows_and_bi_everything(world):
    assert_scoped(world)
    assert_bi_sees_everything(world)
    with psycopg.connect(world.owner) as conn:  # a shared order: two referrers credited for one order
        shared = conn.execute(
            "select count(*) from (select partner_id, order_id from analytics.fct_order_attribution"
            " group by 1, 2, attribution_model having count(distinct referrer_partner_id) > 1) s").fetchone()[0]
    assert shared > 0, "the world must hold an order shared by referrers"


def test_a_partner_login_cannot_write_or_read_anything_else(world):
    url = world.logins["lumen"]
    with psycopg.connect(world.owner, autocommit=True) as conn:  # as deploy/postgres-roles.sh does
        conn.execute(sql.SQL("revoke connect on database {} from public").format(
            sql.Identifier(conn.info.dbname)))
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("show default_transaction_read_only").fetchone()[0] == "on"
        conn.execute("set default_transaction_read_only = off")  # what stops it is privileges, not the default
        for statement in (
            "insert into analytics.fct_orders (partner_id, order_id, ordered_at) values ('lumen', 'x', now())",
            "update analytics.partner_balances set balance_rc = 0",
            "delete from analytics.fct_referrals",
            "alter table analytics.fct_orders disable row level security",
            "drop policy partner_rows on analytics.fct_orders",
            "create table analytics.mine (x int)",
            "create table public.mine (x int)",
            "select * from analytics.kpi_alerts",
            "select * from analytics.run_manifest",
            "select * from raw.orders",
            "select * from ops.runs",
            "select * from ops.partner_logins",  # no other partner's mapping either
            "select * from alliance_build_work.int_orders__unioned",
            "set role alliance_bi",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_partner_access_again_changes_nothing_and_refuses_an_unknown_partner(world):
    alliance = str(Path(sys.executable).with_name("alliance"))
    env = {**os.environ, "ALLIANCE_WAREHOUSE_URL": world.owner, "ALLIANCE_HOME": str(world.home), "COLUMNS": "300"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([alliance, *args], capture_output=True, text=True, env=env, timeout=120)

    def state() -> tuple:
        with psycopg.connect(world.owner) as conn:
            role = conn.execute("select r.*, r.xmin::text from pg_authid r where rolname = %s",
                                ("alliance_partner_lumen",)).fetchone()
            settings = conn.execute("select s.setconfig, s.xmin::text from pg_db_role_setting s"
                                    " join pg_roles r on r.oid = s.setrole where r.rolname = %s",
                                    ("alliance_partner_lumen",)).fetchall()
            mapping = conn.execute("select *, xmin::text from ops.partner_logins order by login").fetchall()
            members = conn.execute("select m.roleid::regrole::text, m.xmin::text from pg_auth_members m"
                                   " where m.member = 'alliance_partner_lumen'::regrole").fetchall()
        return role, settings, mapping, members

    before = state()
    first, second = cli("partner-access", "lumen", "-c", str(DEMO)), cli("partner-access", "lumen", "-c", str(DEMO))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.strip() == second.stdout.strip() == world.logins["lumen"]
    assert first.stdout.strip().startswith(f"postgresql://{login_name('lumen')}:")
    assert state() == before, "running partner-access again changed the login, its settings or the mapping"
    with psycopg.connect(first.stdout.strip()) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "alliance_partner_lumen"
    with psycopg.connect(world.owner) as conn:
        mapped = conn.execute("select login, partner_id from ops.partner_logins order by 2").fetchall()
    assert mapped == sorted(((login_name(p), p) for p in PARTNERS), key=lambda r: r[1])

    unknown = cli("partner-access", "acme", "-c", str(DEMO))
    assert unknown.returncode == 1 and not unknown.stdout.strip()
    assert "demo.yml" in unknown.stderr and "no partner `acme`" in unknown.stderr, unknown.stderr


def test_scoping_survives_publish_rollback_and_full_refresh(world):
    with psycopg.connect(world.owner, autocommit=True) as conn:  # new data, so each snapshot differs
        payload = {"Id": "50", "ReferrerPartnerId": "tidewater", "DestinationPartnerId": "lumen",
                   "EventDate": "2026-10-16T09:00:00Z", "ReferralCode": None, "CustomerEmail": "e" * 64}
        conn.execute(
            "insert into raw.clicks (network_id, click_id, clicked_at, customer_key, payload, load_id)"
            " values ('alliance_network', '50', '2026-10-16T09:00:00Z', %s, %s, gen_random_uuid())",
            ("e" * 64, json.dumps(payload)))
    _build_and_publish(world.owner, "r2")
    assert_scoped(world)
    _build_and_publish(world.owner, "r3", full_refresh=False)  # incremental, on the recycled r1 snapshot
    assert_scoped(world)
    rollback(world.owner)
    with psycopg.connect(world.owner) as conn:
        live = conn.execute("select obj_description('analytics'::regnamespace, 'pg_namespace')").fetchone()[0]
    assert live.endswith("run r2")
    assert_scoped(world)
    with psycopg.connect(world.logins["tidewater"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the snapshot kept for rollback is out of reach
            conn.execute("select * from analytics_prev.fct_orders")
    _build_and_publish(world.owner, "r4", full_refresh=True)
    assert_scoped(world)
    assert_bi_sees_everything(world)


def test_a_rollback_to_a_snapshot_without_policies_gives_it_them(warehouse):
    """A snapshot published before partner access existed gets its grants and policies when rolled back to."""
    for run_id, rows in (("r1", 3), ("r2", 5)):
        make_build_schema(warehouse, rows=rows)
        publish(warehouse, run_id=run_id)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        for table in PUBLISHED_TABLES:
            target = sql.Identifier("analytics_prev", table)
            conn.execute(sql.SQL("alter table {} disable row level security").format(target))
            conn.execute(sql.SQL("drop policy partner_rows on {}").format(target))
            conn.execute(sql.SQL("revoke all on {} from alliance_partner").format(target))
    rollback(warehouse)
    with psycopg.connect(warehouse) as conn:
        guarded = conn.execute(
            "select count(*) from pg_class c join pg_policy p on p.polrelid = c.oid and p.polname = 'partner_rows'"
            " where c.relnamespace = 'analytics'::regnamespace and c.relrowsecurity"
            " and has_table_privilege('alliance_partner', c.oid, 'select')").fetchone()[0]
    assert guarded == len(PUBLISHED_TABLES)


def test_a_login_that_may_not_create_roles_is_refused_clearly(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("ALLIANCE_HOME", str(tmp_path))
    name, password = f"alliance_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(name), sql.Literal(password)))
    try:
        with pytest.raises(PartnerAccessError, match=f"warehouse login {name} may not set up partner logins"):
            partner_access(with_login(warehouse, name, password), "lumen", load_config(DEMO, require_secrets=False))
    finally:
        with psycopg.connect(warehouse, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))
