"""The partner scorecard: one self-contained HTML file (plotly.js inlined, no network) from published data.

Sections: each partner's daily KPIs against the thresholds of the alert rules, objectives' cumulative actual
against target and pace, who owes whom (partner_balances), active alerts, and the spread between attribution
models (attributed revenue per referrer and model).
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from psycopg import sql

from alliance.alerts.rules import AlertRule
from alliance.config import OBJECTIVE_METRICS
from alliance.schemas import PUBLISHED_SCHEMA as K
from alliance.warehouse import connect

PLOTTED_KPIS = ("referred_orders", "attributed_revenue_rc", "conversion_rate", "refund_rate", "commission_owed_rc")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2933;background:#f7f9fb}
h1{margin-bottom:0}h2{margin-top:36px;border-bottom:1px solid #d9e2ec;padding-bottom:4px}
.meta{color:#627d98}table{border-collapse:collapse;background:#fff;margin:8px 0}
td,th{border:1px solid #d9e2ec;padding:4px 10px;text-align:left}td.n{text-align:right}
.critical{color:#b42318;font-weight:600}.warning{color:#b54708}.info{color:#175cd3}.card{background:#fff;
padding:8px;margin:12px 0;border-radius:6px;box-shadow:0 1px 2px #0001}
"""


def _table(headers: list[str], rows: list[tuple], numeric: set[int] | None = None, css: int | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="n"' if i in numeric else (f' class="{html.escape(str(row[css]))}"' if i == css else "")
            text = f"{value:,.2f}" if i in numeric and value is not None and not isinstance(value, int) else value
            cells.append(f"<td{cls}>{html.escape('' if text is None else str(text))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body) or '<tr><td>none</td></tr>'}</table>"


def _kpi_figure(partner: str, rows: list[tuple], rules: list[AlertRule]) -> go.Figure:
    fig = make_subplots(rows=len(PLOTTED_KPIS), cols=1, shared_xaxes=True, subplot_titles=PLOTTED_KPIS,
                        vertical_spacing=0.04)
    days = [r[0] for r in rows]
    for index, kpi in enumerate(PLOTTED_KPIS, start=1):
        values = [float(r[index]) if r[index] is not None else None for r in rows]
        fig.add_trace(go.Scatter(x=days, y=values, mode="lines+markers", name=kpi, showlegend=False), row=index, col=1)
        for rule in rules:
            if rule.kind == "threshold" and rule.kpi == kpi:
                fig.add_hline(y=float(rule.threshold), line_dash="dash", line_color="#b42318", row=index, col=1,
                              annotation_text=f"{rule.id} ({rule.comparison} {rule.threshold})")
    fig.update_layout(title=f"{partner}: daily KPIs vs alert thresholds", height=900, margin={"t": 70, "b": 30})
    return fig


def _objectives_figure(objectives: list[tuple], daily: dict[tuple[str, str], list[tuple]]) -> go.Figure | None:
    if not objectives:
        return None
    fig = go.Figure()
    for partner, month, metric, target, _actual in objectives:
        points = sorted((d, v) for d, v in daily.get((partner, metric), []) if d.replace(day=1) == month)
        total, xs, ys = 0.0, [], []
        for day, value in points:
            total += float(value or 0)
            xs.append(day)
            ys.append(total / float(target) if target else None)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{partner} {metric} {month:%Y-%m}"))
    fig.add_hline(y=1.0, line_dash="dash", line_color="#067647", annotation_text="target")
    fig.update_layout(title="Objectives: cumulative attainment (share of target) by day", height=420,
                      yaxis_tickformat=".0%")
    return fig


def build_scorecard(warehouse_url: str, rules: list[AlertRule] | None = None) -> str:
    """The scorecard HTML (a string) from the published analytics schema."""
    rules = rules or []
    with connect(warehouse_url) as conn:
        kpis = conn.execute(
            f"select partner_id, kpi_date, {', '.join(PLOTTED_KPIS)} from {K}.partner_kpis_daily order by 1, 2"
        ).fetchall()
        objectives = conn.execute(
            f"select partner_id, month, metric, target, actual from {K}.objective_progress order by 1, 2, 3"
        ).fetchall()
        metrics = sorted({o[2] for o in objectives} & OBJECTIVE_METRICS)  # the config's validated metric names
        daily: dict[tuple[str, str], list[tuple]] = defaultdict(list)
        for metric in metrics:
            query = sql.SQL("select partner_id, kpi_date, {} from {}.partner_kpis_daily").format(
                sql.Identifier(metric), sql.Identifier(K)
            )
            for partner, day, value in conn.execute(query):
                daily[(partner, metric)].append((day, value))
        balances = conn.execute(
            f"""select destination_partner_id, referrer_partner_id, sum(commission_owed_rc),
                       coalesce(sum(commission_owed_rc) filter (where state = 'locked'), 0),
                       coalesce(sum(commission_owed_rc) filter (where state is distinct from 'locked'), 0)
                from {K}.partner_balances group by 1, 2 order by 3 desc"""
        ).fetchall()
        # §8 partner programmes per partner, as referrer: what it earned, what came back, what waits for review
        programmes = conn.execute(
            f"""select referrer_partner_id, sum(commission_rc), sum(clawback_rc), sum(adjustments_rc),
                       sum(balance_rc), sum(held_rc), sum(held_orders)::bigint
                from {K}.partner_balances group by 1
                having sum(clawback_rc) <> 0 or sum(adjustments_rc) <> 0 or sum(held_orders) > 0
                order by 1"""
        ).fetchall()
        alerts = conn.execute(
            f"""select severity, rule_id, partner_id, kpi, period, value, threshold, fired_at
                from {K}.kpi_alerts where coalesce(state, 'firing') = 'firing'
                order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, period desc"""
        ).fetchall()
        spread = conn.execute(
            f"""select referrer_partner_id, attribution_model, sum(attributed_revenue_rc)
                from {K}.fct_order_attribution where referrer_partner_id is not null group by 1, 2 order by 1, 2"""
        ).fetchall()
        published = conn.execute(
            "select obj_description(oid) from pg_namespace where nspname = %s", (K,)).fetchone()
    figures: list[go.Figure] = []
    by_partner: dict[str, list[tuple]] = defaultdict(list)
    for row in kpis:
        by_partner[row[0]].append(row[1:])
    for partner, rows in by_partner.items():
        figures.append(_kpi_figure(partner, rows, rules))
    objectives_fig = _objectives_figure(objectives, daily)
    balance_fig = go.Figure(go.Bar(
        x=[float(b[2] or 0) for b in balances], y=[f"{b[0]} owes {b[1]}" for b in balances], orientation="h"))
    balance_fig.update_layout(title="Commission owed per pair (all months, reporting currency)",
                              height=max(300, 40 * len(balances) + 120), yaxis={"autorange": "reversed"})
    spread_fig = go.Figure()
    models = sorted({s[1] for s in spread})
    for model in models:
        rows = [s for s in spread if s[1] == model]
        spread_fig.add_trace(go.Bar(name=model, x=[r[0] for r in rows], y=[float(r[2] or 0) for r in rows]))
    spread_fig.update_layout(barmode="group", title="Attributed revenue per referrer and attribution model",
                             height=420)

    def plot(fig: go.Figure) -> str:
        first = not parts_have_js[0]
        parts_have_js[0] = True
        return '<div class="card">' + fig.to_html(full_html=False, include_plotlyjs=first,
                                                  config={"displaylogo": False}) + "</div>"

    parts_have_js = [False]
    spread_rows = []
    per_referrer: dict[str, list[float]] = defaultdict(list)
    for referrer, _model, revenue in spread:
        per_referrer[referrer].append(float(revenue or 0))
    for referrer, values in per_referrer.items():
        spread_rows.append((referrer, min(values), max(values), max(values) - min(values)))
    body = [
        "<h1>alliance scorecard</h1>",
        f'<p class="meta">{html.escape(published[0] or "")} · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>',
        f"<h2>Active alerts ({len(alerts)})</h2>",
        _table(["severity", "rule", "partner", "kpi", "period", "value", "threshold", "fired at (UTC)"],
               [(*a[:7], f"{a[7]:%Y-%m-%d %H:%M}") for a in alerts], css=0),
        "<h2>Who owes whom</h2>",
        plot(balance_fig),
        _table(["destination pays", "referrer", "owed", "in locked months", "in pending months"], balances,
               numeric={2, 3, 4}),
        "<h2>Partner programmes</h2>",
        _table(["referrer", "commission", "clawbacks", "adjustments", "balance", "held", "held orders"], programmes,
               numeric={1, 2, 3, 4, 5, 6}) if programmes else
        "<p>No clawbacks, adjustments or held orders.</p>",
        "<h2>Attribution model spread</h2>",
        plot(spread_fig),
        _table(["referrer", "lowest model", "highest model", "spread"], spread_rows, numeric={1, 2, 3}),
        "<h2>Objectives</h2>",
        plot(objectives_fig) if objectives_fig else "<p>No objectives configured.</p>",
        _table(["partner", "month", "metric", "target", "actual"], objectives, numeric={3, 4}),
        "<h2>Partners' KPIs over time</h2>",
        *[plot(f) for f in figures],
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>alliance scorecard</title>'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def write_scorecard(warehouse_url: str, out: Path, rules: list[AlertRule] | None = None) -> Path:
    """Write the scorecard to `out` (parents created); returns the path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_scorecard(warehouse_url, rules), encoding="utf-8")
    return out
