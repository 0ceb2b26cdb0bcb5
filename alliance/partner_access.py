"""`alliance partner-access PARTNER`: a read-only login that sees only that partner's rows (PRODUCT.md §9.3).

The login `alliance_partner_<id>` is a member of `alliance_partner` and of nothing else; ops.partner_logins maps it to
the partner, and the row-level security of every published table (alliance/partner_scope.py, applied at each
publish) lets it read only rows naming that partner. Like the BI login it is read-only, its search_path is
`analytics`, and idle transactions and runaway statements are cut off so it cannot hold up a publish. Its password
is generated once into the state dir (`roles/<login>`, mode 0600, as the component logins'). Running the command
again prints the same URL and changes nothing; a login whose password no longer matches the stored one gets it back.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from alliance.config import AllianceConfig
from alliance.migrate import migrate
from alliance.partner_scope import PARTNER_ROLE
from alliance.publish import BI_TIMEOUTS
from alliance.roles import role_password, with_login
from alliance.schemas import PUBLISHED_SCHEMA
from alliance.warehouse import connect, parse_url

LOGIN_PREFIX = f"{PARTNER_ROLE}_"
CONNECTION_LIMIT = 10
_PLAIN = re.compile(r"^[a-z0-9_]{1,40}$")


class PartnerAccessError(ValueError):
    """The partner or its login cannot be set up; the message names what is wrong and where."""


@dataclass(frozen=True)
class PartnerLogin:
    partner_id: str
    login: str
    url: str
    changed: bool  # False when everything was already in place


def login_name(partner_id: str) -> str:
    """`alliance_partner_<id>`; ids that are not plain lowercase get a short hash, so two ids never share a login."""
    if _PLAIN.match(partner_id):
        return LOGIN_PREFIX + partner_id
    plain = re.sub(r"[^a-z0-9_]+", "_", partner_id.lower())[:30].strip("_")
    return f"{LOGIN_PREFIX}{plain}_{hashlib.sha256(partner_id.encode()).hexdigest()[:8]}"


def _settings() -> dict[str, str]:
    settings = {"default_transaction_read_only": "on", "search_path": PUBLISHED_SCHEMA}
    for setting, (variable, default) in BI_TIMEOUTS.items():
        settings[setting] = os.environ.get(variable) or default
    return settings


def _can_log_in(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


def partner_access(owner_url: str, partner_id: str, config: AllianceConfig) -> PartnerLogin:
    """Create or repair (idempotently) the partner's login and mapping; its connection URL."""
    known = [p.id for p in config.partners]
    if partner_id not in known:
        where = config.source_file or "the config"
        raise PartnerAccessError(f"{where}: no partner `{partner_id}` under partners: (known: {', '.join(known)})")
    login = login_name(partner_id)
    password = role_password(login)
    url = with_login(owner_url, login, password)
    try:
        changed = _ensure_login(owner_url, partner_id, login, password, url)
    except errors.InsufficientPrivilege:
        raise PartnerAccessError(
            f"warehouse login {parse_url(owner_url).user} may not set up partner logins: use the warehouse owner "
            f"(it applies the migrations and may create roles and grant {PARTNER_ROLE})") from None
    return PartnerLogin(partner_id=partner_id, login=login, url=url, changed=changed)


def _ensure_login(owner_url: str, partner_id: str, login: str, password: str, url: str) -> bool:
    """The login, its settings, membership, mapping and password as they should be; whether anything changed."""
    changed = False
    with connect(owner_url, autocommit=True) as conn:
        migrate(conn)  # alliance_partner, ops.partner_logins, ops.current_partner_id() (0016)
        mapped = conn.execute("select login, partner_id from ops.partner_logins where login = %s or partner_id = %s",
                              (login, partner_id)).fetchall()
        if any(row != (login, partner_id) for row in mapped):
            raise PartnerAccessError(f"ops.partner_logins: login {login} or partner `{partner_id}` is already mapped "
                                     "otherwise; remove that row first")
        role = sql.Identifier(login)
        found = conn.execute("select rolsuper or rolbypassrls or rolcreaterole or rolcreatedb or rolreplication,"
                             " rolcanlogin, rolconnlimit, rolconfig from pg_roles where rolname = %s",
                             (login,)).fetchone()
        if found is None:
            try:
                conn.execute(sql.SQL("create role {} login").format(role))
            except errors.DuplicateObject:  # another database or process created it at the same moment
                pass
            found = (False, False, None, None)
        elif found[0]:
            raise PartnerAccessError(f"role {login} exists with powers a partner login must not have "
                                     "(superuser, bypassrls, createrole, createdb or replication); drop it first")
        others = [r[0] for r in conn.execute(
            "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            " join pg_roles r on r.oid = m.member where r.rolname = %s and g.rolname <> %s", (login, PARTNER_ROLE))]
        if others:
            raise PartnerAccessError(f"role {login} is also a member of {', '.join(others)}; a partner login may only "
                                     f"be a member of {PARTNER_ROLE} (revoke the others)")
        if not found[1] or found[2] != CONNECTION_LIMIT:
            conn.execute(sql.SQL("alter role {} login inherit connection limit {}").format(
                role, sql.Literal(CONNECTION_LIMIT)))
            changed = True
        current = dict(entry.split("=", 1) for entry in found[3] or [])
        for setting, value in _settings().items():
            if current.get(setting) != value:
                conn.execute(sql.SQL("alter role {} set {} = {}").format(role, sql.Identifier(setting),
                                                                        sql.Literal(value)))
                changed = True
        if not conn.execute("select pg_has_role(%s, %s, 'member')", (login, PARTNER_ROLE)).fetchone()[0]:
            conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(PARTNER_ROLE), role))
            changed = True
        if not mapped:
            conn.execute("insert into ops.partner_logins (login, partner_id) values (%s, %s)", (login, partner_id))
            changed = True
        if not _can_log_in(url):  # new, or its password was set elsewhere: the stored one becomes it
            conn.execute(sql.SQL("alter role {} password {}").format(role, sql.Literal(password)))
            changed = True
    return changed
