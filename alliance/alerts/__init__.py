"""KPI alerts: YAML rules evaluated on published data, recorded once per (rule, partner, day), sent to channels."""

from alliance.alerts.channels import Channel, LogChannel
from alliance.alerts.evaluate import FiredAlert, evaluate_alerts
from alliance.alerts.rules import KPI_COLUMNS, AlertRule, AlertRulesError, load_rules

__all__ = [
    "KPI_COLUMNS",
    "AlertRule",
    "AlertRulesError",
    "Channel",
    "FiredAlert",
    "LogChannel",
    "evaluate_alerts",
    "load_rules",
]
