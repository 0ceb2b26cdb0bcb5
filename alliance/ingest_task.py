"""Ingest one source for a scheduler task: a failed source raises, so the task fails and retries."""

from __future__ import annotations

from dataclasses import asdict

from alliance.config import AllianceConfig


class IngestFailed(RuntimeError):
    pass


def ingest_one(config: AllianceConfig, source_id: str) -> dict:
    from connectors.ingest import ingest_source

    result = ingest_source(config, source_id)
    if result.status != "succeeded":
        raise IngestFailed(result.error or f"{source_id}: ingest failed")
    return {k: str(v) if v is not None and not isinstance(v, int | str) else v for k, v in asdict(result).items()}
