"""Where fired alerts go. Only the log channel exists now; Slack, webhook and e-mail implement the same protocol."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from alliance.alerts.evaluate import FiredAlert

LOGGER_NAME = "alliance.alerts"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


@runtime_checkable
class Channel(Protocol):
    """A destination for newly fired alerts; `send` is called once per alert, after it is recorded."""

    name: str

    def send(self, alert: FiredAlert) -> None: ...


class LogChannel:
    """One log line per alert on logger `alliance.alerts`, level from the rule's severity."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def send(self, alert: FiredAlert) -> None:
        self.logger.log(
            _LEVELS.get(alert.severity, logging.WARNING),
            "alert %s [%s]: partner %s %s on %s = %s, %s threshold %s (run %s)",
            alert.rule_id, alert.severity, alert.partner_id, alert.kpi, alert.period.isoformat(),
            alert.value, alert.comparison, alert.threshold, alert.run_id,
        )
