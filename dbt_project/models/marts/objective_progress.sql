-- Attainment of each configured objective: the metric's partner_kpis_daily column summed over the month.
{%- set metrics = objective_metrics() %}

with monthly as (
    select
        partner_id,
        date_trunc('month', kpi_date::timestamp)::date as month,
        {% for metric in metrics %}
        sum({{ metric }})::numeric as {{ metric }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from {{ ref('partner_kpis_daily') }}
    group by 1, 2
),

objectives as (
    select partner_id, objective_month as month, metric, target
    from {{ ref('stg_cfg__objectives') }}
),

actuals as (
    select
        o.partner_id,
        o.month,
        o.metric,
        o.target,
        case o.metric
            {% for metric in metrics %}
            when '{{ metric }}' then coalesce(m.{{ metric }}, 0)
            {% endfor %}
        end as actual
    from objectives as o
    left join monthly as m on m.partner_id = o.partner_id and m.month = o.month
)

select
    partner_id,
    month,
    metric,
    target,
    actual,
    round(actual / nullif(target, 0), 4) as attainment
from actuals
