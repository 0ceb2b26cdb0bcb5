"""An alert episode: one row of ops.kpi_alerts (copied into analytics.kpi_alerts), from its first breach until the
KPI recovers. Evaluate writes it, the deliverer reads it back from the outbox and the channels send it, so it lives
apart from all three."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel


class FiredAlert(BaseModel):
    """A row of analytics.kpi_alerts (one episode)."""

    alert_id: str
    rule_id: str
    severity: str
    partner_id: str
    kpi: str
    period: date
    value: Decimal | None
    threshold: Decimal
    comparison: str
    fired_at: datetime
    run_id: str
    state: str = "firing"
    resolved_at: datetime | None = None
    resolved_run_id: str | None = None
    resolved_value: Decimal | None = None
    kind: str = "threshold"
    baseline: Decimal | None = None
