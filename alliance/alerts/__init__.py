"""KPI alerts: YAML rules judged by dbt on the build (kpi_alert_observations), one episode per (rule, partner,
period) opened inside the rule's detection window and kept until the KPI recovers, told to routed channels (log,
webhook, Slack, e-mail) as one grouped message per channel per run (or a daily digest), with retries."""

from alliance.alerts.channels import Channel, LogChannel
from alliance.alerts.evaluate import AlertOutcome, FiredAlert, evaluate, evaluate_alerts
from alliance.alerts.message import AlertEvent, AlertGroup, AlertMessage
from alliance.alerts.rules import KPI_COLUMNS, AlertRule, AlertRulesError, AlertsFile, load_alerts_file, load_rules
from alliance.alerts.sync import sync_alert_rules

__all__ = [
    "KPI_COLUMNS",
    "AlertEvent",
    "AlertGroup",
    "AlertMessage",
    "AlertOutcome",
    "AlertRule",
    "AlertRulesError",
    "AlertsFile",
    "Channel",
    "FiredAlert",
    "LogChannel",
    "evaluate",
    "evaluate_alerts",
    "load_alerts_file",
    "load_rules",
    "sync_alert_rules",
]
