-- Pace of each objective (objective_progress), day by day through its month: the metric's partner_kpis_daily column
-- summed from the month's first day to that day, the share of the target reached, the share of the month elapsed
-- (where an even pace would be) and the month-end attainment projected from the days elapsed. The scorecard picks
-- the row of its as-of date (the month's last day for a past month) and draws the days as a chart.
{%- set metrics = objective_metrics() %}

with objectives as (
    select
        partner_id, month, metric, target, actual,
        extract(day from (month + interval '1 month' - interval '1 day'))::int as days_in_month
    from {{ ref('objective_progress') }}
),

days as (
    select o.partner_id, o.month, o.metric, o.target, o.days_in_month, d::date as day
    from objectives as o
    cross join lateral generate_series(o.month::timestamp, (o.month + interval '1 month' - interval '1 day'),
                                       interval '1 day') as d
),

metric_values as (
    select k.partner_id, k.kpi_date, v.metric, v.value
    from {{ ref('partner_kpis_daily') }} as k
    cross join lateral (values
        {% for metric in metrics %}
        ('{{ metric }}', k.{{ metric }}::numeric){% if not loop.last %},{% endif %}
        {% endfor %}
    ) as v (metric, value)
),

cumulative as (
    select
        d.partner_id, d.month, d.metric, d.day, d.target, d.days_in_month,
        extract(day from d.day)::int as elapsed_days,
        sum(coalesce(v.value, 0)) over (
            partition by d.partner_id, d.month, d.metric order by d.day
        ) as actual_to_date
    from days as d
    left join metric_values as v on v.partner_id = d.partner_id and v.metric = d.metric and v.kpi_date = d.day
)

select
    partner_id,
    month,
    metric,
    day,
    target,
    actual_to_date,
    elapsed_days,
    days_in_month,
    round(actual_to_date / nullif(target, 0), 4)                                 as attainment_to_date,
    round(elapsed_days::numeric / days_in_month, 4)                              as expected_attainment,
    round(actual_to_date * days_in_month / elapsed_days / nullif(target, 0), 4)  as projected_attainment,
    actual_to_date * days_in_month >= target * elapsed_days                      as on_pace
from cumulative
