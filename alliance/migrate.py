"""The warehouse's bookkeeping tables, created in one place: versioned migrations, each applied once.

Every table the project itself owns (landing tables, config mirror, webhook inbox, run log, transform state, alerts)
is created or changed by one file of alliance/migrations/ named `NNNN_description.sql`, never by DDL elsewhere. A
migration runs once per warehouse, in its own transaction, and `ops.schema_migrations` records it; every entry point
(a load, the webhook receiver, a transform, the CLI) calls `migrate()` first, which costs one query when nothing is
pending. Callers in parallel (loaders, receiver workers, Airflow tasks) serialise on the MIGRATIONS advisory lock
(alliance/locks.py): the first applies, the others find the version recorded.

The first migrations use `if not exists`, so a warehouse created by older code (which ran the same DDL on every
start) upgrades in place. A change to a table is a new migration, never an edit of an applied one.

Foundation: imports nothing of alliance but alliance.locks, so connectors may call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from alliance.locks import MIGRATIONS

MIGRATIONS_LOCK_KEY = MIGRATIONS.key
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BOOKKEEPING = """
create schema if not exists ops;
create table if not exists ops.schema_migrations (
    version    integer primary key,
    name       text not null,
    applied_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration of alliance/migrations/, in version order (numbers unique and consecutive from 1)."""
    found = []
    for entry in resources.files("alliance").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        versions = [m.version for m in found]
        raise RuntimeError(f"alliance/migrations: versions must run 1..n without gaps, got {versions}")
    return found


def _applied(conn: psycopg.Connection) -> set[int]:
    if conn.execute("select to_regclass('ops.schema_migrations')").fetchone()[0] is None:
        return set()
    return {row[0] for row in conn.execute("select version from ops.schema_migrations")}


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the pending migrations, each once in its own transaction; the names applied (none when up to date).

    Call it with the connection idle (or in autocommit): each migration then commits on its own. Inside an open
    transaction the migrations become savepoints of it, and the lock is held until the caller commits.
    """
    everything = migrations()
    with conn.transaction():
        if _applied(conn) >= {m.version for m in everything}:
            return []
    done: list[str] = []
    for migration in everything:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK_KEY,))
            conn.execute(_BOOKKEEPING)
            if migration.version in _applied(conn):  # another caller applied it while this one waited
                continue
            conn.execute(migration.sql)
            conn.execute("insert into ops.schema_migrations (version, name) values (%s, %s)",
                         (migration.version, migration.name))
            done.append(f"{migration.version:04d}_{migration.name}")
    return done
