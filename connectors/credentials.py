"""Where a partner's secret comes from: an environment variable (`credentials_env`) or an Airflow connection
(`credentials_conn`), exactly one of the two (PRODUCT.md §3).

Why an Airflow connection: in a deployment the scheduler's secrets backend (the metastore, Vault, AWS
Secrets Manager, or `AIRFLOW_CONN_<ID>` variables in JSON or URI form) already keeps secrets; reading it
through Airflow's public API (`airflow.sdk.Connection.get`) means alliance needs no secrets of its own.
A connection holds `login` + `password` (WooCommerce key:secret, network sid:token) or the password
alone (a Shopify token, or a whole `key:secret`).
"""

from __future__ import annotations

import os
from typing import Protocol


class CredentialSource(Protocol):
    id: str
    platform: str
    credentials_env: str | None
    credentials_conn: str | None


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


def read_connection_secret(conn_id: str, platform: str, source_id: str) -> str:
    """The secret held by an Airflow connection, as the connectors take it (`token` or `login:password`)."""
    from airflow.sdk import Connection  # Airflow is heavy to import: only sources using a connection pay for it
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        raise MissingCredentials(
            f"{source_id}: credentials_conn `{conn_id}` is not an Airflow connection: add it in Airflow "
            f"(Admin > Connections, login and password) or set {conn_env_var(conn_id)}") from None
    login = (conn.login or "").strip()
    password = (conn.password or "").strip()
    if not password:
        raise MissingCredentials(f"{source_id}: Airflow connection `{conn_id}` has no password: put the token "
                                 "(or the secret, with the key or sid as login) in its password field")
    if platform in ("shopify", "shopify_graphql") or not login:
        return password
    return f"{login}:{password}"


def read_secret(source: CredentialSource) -> str:
    """The source's secret from its environment variable or Airflow connection; MissingCredentials if absent."""
    if source.credentials_conn:
        return read_connection_secret(source.credentials_conn, source.platform, source.id)
    env = source.credentials_env or ""
    value = os.environ.get(env, "").strip() if env else ""
    if not value:
        raise MissingCredentials(f"{source.id}: {env or 'credentials_env'} is not set: export the partner's "
                                 f"credentials in {env or 'the variable named by credentials_env'} "
                                 "(see config/sandbox.env for the demo)")
    return value
