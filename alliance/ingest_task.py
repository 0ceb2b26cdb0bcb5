"""Ingest one source for a scheduler task: a failed source raises, so the task fails and retries."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, time

from alliance.config import AllianceConfig


class IngestFailed(RuntimeError):
    pass


def rewind(url: str | None, source_id: str, since: date | None) -> None:
    """Backfill: set the source's incremental start back to `since` (UTC midnight), or forget it (None).

    The next pull re-reads everything changed since then; landing upserts keep the latest version,
    so a re-pull duplicates nothing. The cursor only moves backwards here, never forwards.
    """
    from alliance.warehouse import connect
    from connectors.ingest import IngestOptions
    from connectors.landing import ensure_raw_schema

    with connect(url) as conn:
        ensure_raw_schema(conn)
        if since is None:
            conn.execute("delete from raw.cursors where source_id = %s", (source_id,))
        else:
            # ingest reads from cursor - lookback, so store since + lookback to start exactly at `since`
            start = datetime.combine(since, time.min, tzinfo=UTC) + IngestOptions().lookback
            conn.execute("update raw.cursors set cursor_value = least(cursor_value, %s), updated_at = now() "
                         "where source_id = %s", (start, source_id))


def backfill_start(params: dict | None, dag_run: object = None, interval_start: datetime | None = None) -> date | None:
    """The re-pull start of a run: its `since` param, else a backfill run's data interval start, else None."""
    since = (params or {}).get("since")
    if since:
        return date.fromisoformat(str(since))
    run_type = str(getattr(dag_run, "run_type", "") or "")
    if run_type.endswith("backfill") and interval_start is not None:
        return interval_start.astimezone(UTC).date()
    return None


def ingest_one(config: AllianceConfig, source_id: str, since: date | None = None) -> dict:
    from alliance.airflow_credentials import airflow_connection
    from alliance.roles import component_url
    from connectors.ingest import IngestOptions, ingest_source

    url = component_url("loader")  # the loader's own login (alliance/roles.py)
    if since is not None:
        rewind(url, source_id, since)
    result = ingest_source(config, source_id, url, options=IngestOptions(connections=airflow_connection))
    if result.status != "succeeded":
        raise IngestFailed(result.error or f"{source_id}: ingest failed")
    return {k: str(v) if v is not None and not isinstance(v, int | str) else v for k, v in asdict(result).items()}
