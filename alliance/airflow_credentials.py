"""Airflow adapter for secrets: the `ConnectionLookup` the connectors take, backed by Airflow's connections.

Why here and not in connectors/: the connectors know no scheduler (ARCHITECTURE.md); the Airflow task, the CLI
and the webhook receiver hand this lookup in. Airflow's public API (`airflow.sdk.Connection.get`) reads whatever
secrets backend the deployment uses, `AIRFLOW_CONN_<ID>` variables included, so alliance keeps no secrets itself.
"""

from __future__ import annotations

from alliance.config import AllianceConfig, ConfigError
from connectors.credentials import MissingCredentials, read_secret


def airflow_connection(conn_id: str) -> tuple[str, str] | None:
    """(login, password) of an Airflow connection, or None when Airflow has none by that id."""
    from airflow.sdk import Connection  # Airflow is heavy to import: only sources using a connection pay for it
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return conn.login or "", conn.password or ""


def missing_connections(cfg: AllianceConfig) -> list[str]:
    """Problems with `credentials_conn` sources: the Airflow connection is absent or holds no password."""
    problems = []
    for source in [*cfg.storefronts, *cfg.referral_networks]:
        if source.credentials_conn:
            try:
                read_secret(source, airflow_connection)
            except MissingCredentials as exc:
                problems.append(str(exc))
    return problems


def require_connections(cfg: AllianceConfig) -> AllianceConfig:
    """`cfg` when every `credentials_conn` resolves; ConfigError naming each one that does not."""
    problems = missing_connections(cfg)
    if problems:
        raise ConfigError(f"{cfg.source_file}: " + "; ".join(problems))
    return cfg
