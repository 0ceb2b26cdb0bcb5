"""Where a partner's secret comes from: an environment variable (`credentials_env`) or a named connection
(`credentials_conn`), exactly one of the two (PRODUCT.md §3).

Why a lookup is handed in: in a deployment the scheduler's secrets backend (Airflow's metastore, Vault, AWS
Secrets Manager, or `AIRFLOW_CONN_<ID>` variables) already keeps secrets, but the connectors know no scheduler.
Whoever runs them (the Airflow task, the CLI, the webhook receiver) passes a `ConnectionLookup`; the Airflow one
is alliance/airflow_credentials.py. A connection holds `login` + `password` (WooCommerce key:secret, network
sid:token) or the password alone (a Shopify token, or a whole `key:secret`).
"""

from __future__ import annotations

import os
from typing import Protocol

from connectors.platforms import get as get_platform


class CredentialSource(Protocol):
    id: str
    platform: str
    credentials_env: str | None
    credentials_conn: str | None


class ConnectionLookup(Protocol):
    def __call__(self, conn_id: str) -> tuple[str, str] | None:
        """(login, password) of the connection `conn_id`, or None when there is no such connection."""


class MissingCredentials(Exception):
    """The secret is not where the config says; str() names the source, the place and the fix (never a value)."""


def credentials_label(source: CredentialSource) -> str:
    """Where the secret lives, for messages: `NORTHWIND_TOKEN` or `Airflow connection `northwind_api``."""
    if source.credentials_conn:
        return f"Airflow connection `{source.credentials_conn}`"
    return source.credentials_env or ""


def conn_env_var(conn_id: str) -> str:
    """The environment variable Airflow's environment secrets backend reads for a connection id."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_secret(source: CredentialSource, connections: ConnectionLookup | None) -> str:
    """The secret held by the source's connection, as the connectors take it (`token` or `login:password`)."""
    conn_id = source.credentials_conn or ""
    if connections is None:
        raise MissingCredentials(f"{source.id}: credentials_conn `{conn_id}` names an Airflow connection, but this "
                                 "run was given no connection lookup: run it from Airflow or the `alliance` CLI, "
                                 "or use credentials_env")
    found = connections(conn_id)
    if found is None:
        raise MissingCredentials(
            f"{source.id}: credentials_conn `{conn_id}` is not an Airflow connection: add it in Airflow "
            f"(Admin > Connections, login and password) or set {conn_env_var(conn_id)}")
    login, password = (part.strip() for part in found)
    if not password:
        raise MissingCredentials(f"{source.id}: Airflow connection `{conn_id}` has no password: put the token "
                                 "(or the secret, with the key or sid as login) in its password field")
    if get_platform(source.platform).token_credentials or not login:
        return password
    return f"{login}:{password}"


def read_secret(source: CredentialSource, connections: ConnectionLookup | None = None) -> str:
    """The source's secret from its environment variable or its connection; MissingCredentials if absent."""
    if source.credentials_conn:
        return connection_secret(source, connections)
    env = source.credentials_env or ""
    value = os.environ.get(env, "").strip() if env else ""
    if not value:
        raise MissingCredentials(f"{source.id}: {env or 'credentials_env'} is not set: export the partner's "
                                 f"credentials in {env or 'the variable named by credentials_env'} "
                                 "(see config/sandbox.env for the demo)")
    return value
