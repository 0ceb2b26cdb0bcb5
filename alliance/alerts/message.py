"""One notification per channel per run: the run's alert events grouped by (partner, rule, event) with a count, the
worst value and the periods, so twenty breached days of one partner read as one line, not twenty messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from alliance.alerts.episode import FiredAlert

SEVERITY_ORDER = ("info", "warning", "critical")
MONTHLY_KINDS = ("pace", "held_share")  # their period is a month
PERIODS_SHOWN = 5


@dataclass(frozen=True)
class AlertEvent:
    """An outbox row: an episode fired or resolved."""

    event: str  # fired | resolved
    alert: FiredAlert


def _period(alert: FiredAlert, day: date) -> str:
    return f"{day:%Y-%m}" if alert.kind in MONTHLY_KINDS else day.isoformat()


@dataclass(frozen=True)
class AlertGroup:
    """The events of one (partner, rule, event) in a message."""

    event: str
    events: tuple[FiredAlert, ...]

    @property
    def first(self) -> FiredAlert:
        return self.events[0]

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def worst(self) -> FiredAlert:
        """The episode furthest past its limit in the rule's direction (highest above, lowest below)."""
        known = [a for a in self.events if a.value is not None] or list(self.events)
        pick = max if self.first.comparison == "above" else min
        return pick(known, key=lambda a: a.value if a.value is not None else Decimal(0))

    @property
    def periods(self) -> tuple[str, ...]:
        return tuple(sorted({_period(a, a.period) for a in self.events}))

    def line(self) -> str:
        """One human line: what, who, how many periods, the worst value against its limit."""
        a, worst = self.first, self.worst
        shown = ", ".join(self.periods[:PERIODS_SHOWN]) + (
            f" (+{len(self.periods) - PERIODS_SHOWN} more)" if len(self.periods) > PERIODS_SHOWN else "")
        noun = "period" if self.count == 1 else "periods"
        head = f"{a.rule_id} for {a.partner_id}, {a.kpi}: {self.count} {noun} ({shown})"
        if self.event == "resolved":
            now = ", ".join(str(e.resolved_value) for e in self.events if e.resolved_value is not None)
            return f"RESOLVED {head}: back within bounds" + (f" (now {now})" if now else "")
        what = "projected month-end attainment " if a.kind == "pace" else ""
        text = f"{a.severity.upper()} {head}, worst {what}{worst.value} {worst.comparison} limit {worst.threshold}"
        return text + (f" (trailing mean {worst.baseline})" if worst.baseline is not None else "")

    def summary(self) -> dict:
        """The group as the webhook body carries it."""
        worst = self.worst
        return {"event": self.event, "rule_id": self.first.rule_id, "partner_id": self.first.partner_id,
                "kpi": self.first.kpi, "severity": self.first.severity, "count": self.count,
                "worst_value": None if worst.value is None else str(worst.value),
                "worst_threshold": str(worst.threshold), "periods": list(self.periods)}


@dataclass(frozen=True)
class AlertMessage:
    """Everything one channel is told in one run (immediate events, plus the day's digest when it is due)."""

    run_id: str
    events: tuple[AlertEvent, ...]
    digest: bool = False

    @property
    def alerts(self) -> list[FiredAlert]:
        return [e.alert for e in self.events]

    @property
    def groups(self) -> list[AlertGroup]:
        """Firing groups first, most severe first, then resolved; stable by partner and rule."""
        grouped: dict[tuple[str, str, str], list[FiredAlert]] = {}
        for e in self.events:
            grouped.setdefault((e.event, e.alert.partner_id, e.alert.rule_id), []).append(e.alert)
        groups = [AlertGroup(event, tuple(alerts)) for (event, _, _), alerts in grouped.items()]
        return sorted(groups, key=lambda g: (g.event == "resolved", -SEVERITY_ORDER.index(g.first.severity),
                                             g.first.partner_id, g.first.rule_id))

    @property
    def severity(self) -> str:
        firing = [e.alert.severity for e in self.events if e.event == "fired"]
        return max(firing, key=SEVERITY_ORDER.index) if firing else "info"

    def subject(self) -> str:
        fired = sum(1 for e in self.events if e.event == "fired")
        resolved = len(self.events) - fired
        counts = ", ".join(part for part in (f"{fired} firing" if fired else "",
                                             f"{resolved} resolved" if resolved else "") if part)
        who = sorted({e.alert.partner_id for e in self.events})
        kind = "alert digest" if self.digest else "alerts"
        return f"[alliance] {self.severity if fired else 'resolved'} {kind}: {counts} for {', '.join(who)}"

    def text(self) -> str:
        """Subject line, then one line per group; ids and numbers only, no customer data."""
        return "\n".join([self.subject() + f" (run {self.run_id})", *(f"- {g.line()}" for g in self.groups)])

    def payload(self) -> dict:
        """The webhook body: the groups, then every event with every column of its alert row."""
        return {"event": "alerts.digest" if self.digest else "alerts", "run_id": self.run_id,
                "groups": [g.summary() for g in self.groups],
                "alerts": [{"event": e.event, "alert": e.alert.model_dump(mode="json")} for e in self.events]}
