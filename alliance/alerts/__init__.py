"""KPI alerts: YAML rules judged by dbt on the build (kpi_alert_observations), one episode per (rule, partner,
period) until the KPI recovers, sent to routed channels (log, webhook, Slack, e-mail) with retries."""

from alliance.alerts.channels import Channel, LogChannel
from alliance.alerts.evaluate import AlertOutcome, FiredAlert, evaluate, evaluate_alerts
from alliance.alerts.rules import KPI_COLUMNS, AlertRule, AlertRulesError, AlertsFile, load_alerts_file, load_rules
from alliance.alerts.sync import sync_alert_rules

__all__ = [
    "KPI_COLUMNS",
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
