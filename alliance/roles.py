"""Which login each component uses: its own role, granted only what it does (alliance/migrations/0010).

| component | role | may |
|---|---|---|
| loader (partner pulls, the webhook inbox processor) | alliance_loader | rows of raw.* |
| webhook_receiver (the receiver's HTTP side) | alliance_webhook_receiver | INSERT on raw.webhook_inbox |
| transformer (dbt, gate, publish, alerts) | alliance_transformer | read raw; ops; own the build schemas |
| BI | alliance_bi_reader (alliance/publish.py) | read analytics |
| Airflow's metadata | alliance_airflow | own the `airflow` database only |

Why URLs per component: a leaked or hijacked process (the internet-facing receiver first) can then do only what its
component does. `component_url(c)` is ALLIANCE_<C>_URL when set (a deployment's own logins, e.g. compose); with the
embedded warehouse, the role's login with a password generated once in the state dir (`roles/<role>`, mode 0600);
with one configured ALLIANCE_WAREHOUSE_URL and no per-component URL, that URL (a deployment that chose one login).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random

from alliance.migrate import migrate
from alliance.warehouse import connect, parse_url, read_or_create_secret, state_dir, warehouse_url

ROLES = {
    "loader": "alliance_loader",
    "webhook_receiver": "alliance_webhook_receiver",
    "transformer": "alliance_transformer",
}
AIRFLOW_ROLE = "alliance_airflow"
URL_VARIABLES = {component: f"ALLIANCE_{component.upper()}_URL" for component in ROLES}


def with_login(url: str, role: str, password: str, dbname: str | None = None) -> str:
    """`url` with another login (and database)."""
    parts = parse_url(url)
    return (f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}@{parts.host}:{parts.port}/"
            f"{quote(dbname or parts.dbname, safe='')}")


ROLES_DIR_VARIABLE = "ALLIANCE_ROLES_DIR"


def roles_dir() -> Path:
    """Where the logins' passwords are kept: $ALLIANCE_ROLES_DIR, else `roles/` in the state dir.

    Roles belong to the server, not to a state dir: every process that logs in to one server must read the same
    folder, or each would set its own password and lock the others out (the test suite points all of its state
    dirs at one warehouse, so it sets this once)."""
    configured = os.environ.get(ROLES_DIR_VARIABLE, "").strip()
    return Path(configured).resolve() if configured else state_dir() / "roles"


def role_password(role: str) -> str:
    """The role's password for the embedded warehouse: generated once, kept in roles_dir() with mode 0600."""
    return read_or_create_secret(roles_dir() / role)


def enable_login(owner_url: str, role: str, password: str) -> None:
    """Let `role` log in with `password` (no other attribute: no superuser, no role or database creation).

    Two processes starting at once (two CLI runs, two Airflow tasks) set the same role's same password: PostgreSQL
    refuses the second concurrent ALTER ROLE with "tuple concurrently updated", so it is tried again."""
    statement = sql.SQL("alter role {} login nosuperuser nocreatedb nocreaterole noreplication password {}").format(
        sql.Identifier(role), sql.Literal(password))
    with connect(owner_url, autocommit=True) as conn:
        migrate(conn)  # the component roles and their grants (0010) exist before anyone logs in as one
        for attempt in Retrying(retry=retry_if_exception(_concurrent_role_update), stop=stop_after_attempt(5),
                                wait=wait_random(0.05, 0.5), reraise=True):
            with attempt:
                conn.execute(statement)


def _concurrent_role_update(error: BaseException) -> bool:
    return isinstance(error, psycopg.errors.InternalError_) and "concurrently updated" in str(error)


def component_url(component: str) -> str:
    """The URL `component` connects with (see the module docstring)."""
    configured = os.environ.get(URL_VARIABLES[component], "").strip()
    if configured:
        parse_url(configured)
        return configured
    owner = warehouse_url()
    if os.environ.get("ALLIANCE_WAREHOUSE_URL", "").strip():
        return owner
    role = ROLES[component]
    password = role_password(role)
    enable_login(owner, role, password)
    return with_login(owner, role, password)


def ensure_airflow_owner(admin_url: str, dbname: str = "airflow") -> str:
    """The Airflow metadata database owned by its own login (which owns nothing else); its URL."""
    password = role_password(AIRFLOW_ROLE)
    with connect(with_login(admin_url, parse_url(admin_url).user, parse_url(admin_url).password, "postgres"),
                 autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (AIRFLOW_ROLE,)).fetchone():
            conn.execute(sql.SQL("create role {} login").format(sql.Identifier(AIRFLOW_ROLE)))
        conn.execute(sql.SQL("alter role {} login nosuperuser nocreatedb nocreaterole noreplication password {}")
                     .format(sql.Identifier(AIRFLOW_ROLE), sql.Literal(password)))
        owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                             (dbname,)).fetchone()
        if owner is None:
            conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(dbname),
                                                                      sql.Identifier(AIRFLOW_ROLE)))
        elif owner[0] != AIRFLOW_ROLE:  # created by older code under the admin login: hand it over whole
            conn.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(dbname),
                                                                        sql.Identifier(AIRFLOW_ROLE)))
            with connect(with_login(admin_url, parse_url(admin_url).user, parse_url(admin_url).password, dbname),
                         autocommit=True) as metadata:
                metadata.execute(HAND_OVER.replace("{role}", AIRFLOW_ROLE))
    return with_login(admin_url, AIRFLOW_ROLE, password, dbname)


# Every table, view and free-standing sequence of the public schema, and the schema itself, to {role}.
HAND_OVER = """
do $$
declare
    target record;
begin
    for target in select c.oid::regclass as name, c.relkind from pg_class c
                  join pg_namespace n on n.oid = c.relnamespace
                  where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'S')
                    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i')) loop
        execute format('alter %s %s owner to {role}',
                       case target.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                           when 'S' then 'sequence' else 'table' end, target.name);
    end loop;
    execute 'alter schema public owner to {role}';
end
$$
"""
