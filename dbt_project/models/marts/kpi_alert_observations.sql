-- What every alert rule sees: per rule, partner and period it can judge, the value, the limit it is compared with,
-- the trailing baseline and whether the rule is breached. The alert evaluator (alliance/alerts/evaluate.py) only
-- reads this table and keeps the episodes (fired, resolved) and their delivery.
{%- set kpis = ['clicks_sent', 'referred_orders', 'conversion_rate', 'attributed_revenue_rc',
                'net_attributed_revenue_rc', 'aov_rc', 'refund_rate', 'new_customer_rate', 'epc_rc',
                'commission_earned_rc', 'commission_owed_rc'] %}
{%- set as_of = var('as_of_date', '') | string | trim %}

with rules as (
    select * from {{ ref('stg_cfg__alert_rules') }}
),

kpis as (
    select * from {{ ref('partner_kpis_daily') }}
),

objective_pace as (
    select * from {{ ref('objective_pace_daily') }}
),

balances as (
    select * from {{ ref('partner_balances') }}
),

-- One row per partner, day and KPI.
kpi_values as (
    select kpis.partner_id, kpis.kpi_date, v.kpi, v.value
    from kpis
    cross join lateral (values
        {% for kpi in kpis %}
        ('{{ kpi }}', kpis.{{ kpi }}::numeric){% if not loop.last %},{% endif %}
        {% endfor %}
    ) as v (kpi, value)
),

-- The days a run judges: up to the run's as-of date when it has one, else every published day.
judged_days as (
    select * from kpi_values
    {% if as_of %}where kpi_date <= '{{ as_of }}'::date{% endif %}
),

-- The volume of the day itself (min_day_volume): a rule with a floor judges no day below it.
day_volumes as (
    select r.rule_id, d.partner_id, d.kpi_date, coalesce(v.value, 0) as day_volume
    from rules as r
    inner join judged_days as d on d.kpi = r.kpi
    left join kpi_values as v
        on v.partner_id = d.partner_id and v.kpi_date = d.kpi_date and v.kpi = r.min_day_volume_kpi
    where r.rule_kind in ('threshold', 'trailing')
),

threshold_observations as (
    select
        r.rule_id, r.rule_kind, d.partner_id, d.kpi, d.kpi_date as period, d.value,
        r.threshold as limit_value, null::numeric as baseline, r.comparison
    from rules as r
    inner join judged_days as d on d.kpi = r.kpi
    inner join day_volumes as dv
        on dv.rule_id = r.rule_id and dv.partner_id = d.partner_id and dv.kpi_date = d.kpi_date
    where r.rule_kind = 'threshold' and dv.day_volume >= r.min_day_volume
),

-- Trailing rules: the mean, sample standard deviation and count of the KPI over the N days before the day (days with
-- a value: the training set), and the volume column summed over the N days and the day itself.
trailing_baselines as (
    select
        r.rule_id, d.partner_id, d.kpi_date, avg(b.value) as baseline, stddev_samp(b.value) as spread,
        count(b.value) as training_days
    from rules as r
    inner join judged_days as d on d.kpi = r.kpi
    inner join kpi_values as b
        on b.partner_id = d.partner_id and b.kpi = d.kpi
        and b.kpi_date between d.kpi_date - r.trailing_days and d.kpi_date - 1
    where r.rule_kind = 'trailing'
    group by 1, 2, 3
),

trailing_volumes as (
    select r.rule_id, d.partner_id, d.kpi_date, coalesce(sum(v.value), 0) as volume
    from rules as r
    inner join judged_days as d on d.kpi = r.kpi
    left join kpi_values as v
        on v.partner_id = d.partner_id and v.kpi = r.min_volume_kpi
        and v.kpi_date between d.kpi_date - r.trailing_days and d.kpi_date
    where r.rule_kind = 'trailing'
    group by 1, 2, 3
),

trailing_windows as (
    select r.rule_id, r.rule_kind, r.method, d.partner_id, d.kpi, d.kpi_date, d.value, r.threshold, r.comparison,
           r.min_volume, r.min_training_days, r.min_day_volume, b.baseline, b.spread, b.training_days, vol.volume,
           dv.day_volume
    from rules as r
    inner join judged_days as d on d.kpi = r.kpi
    inner join trailing_baselines as b
        on b.rule_id = r.rule_id and b.partner_id = d.partner_id and b.kpi_date = d.kpi_date
    inner join trailing_volumes as vol
        on vol.rule_id = r.rule_id and vol.partner_id = d.partner_id and vol.kpi_date = d.kpi_date
    inner join day_volumes as dv
        on dv.rule_id = r.rule_id and dv.partner_id = d.partner_id and dv.kpi_date = d.kpi_date
    where r.rule_kind = 'trailing'
),

-- change: the limit is mean x (1 + change), judged when the mean is above 0. zscore: the limit is mean +/-
-- sensitivity x standard deviation (value beyond it <=> |z| > sensitivity), judged when the window varies at all (a
-- flat window has no spread to learn from). Both only with enough training days, window volume and day volume.
trailing_observations as (
    select
        rule_id, rule_kind, partner_id, kpi, kpi_date as period, value,
        case
            when method = 'zscore' and comparison = 'above' then round(baseline + threshold * spread, 6)
            when method = 'zscore' then round(baseline - threshold * spread, 6)
            else round(baseline * (1 + threshold), 6)
        end as limit_value,
        round(baseline, 6) as baseline, comparison
    from trailing_windows
    where value is not null
        and training_days >= min_training_days
        and volume >= min_volume
        and day_volume >= min_day_volume
        and case when method = 'zscore' then spread > 0 else baseline > 0 end
),

-- Pace rules: the month-end attainment objective_pace_daily projects on the reference day (the run's as-of date,
-- else the latest published KPI day; a past month's last day), the figure the scorecard shows for that day.
reference_day as (
    select {% if as_of %}'{{ as_of }}'::date{% else %}(select max(kpi_date) from kpis){% endif %} as day
),

objective_days as (
    select p.partner_id, p.metric, p.month, p.elapsed_days, p.projected_attainment
    from objective_pace as p
    cross join reference_day as ref
    where p.day = least(ref.day, (p.month + interval '1 month' - interval '1 day')::date) and p.target > 0
),

pace_observations as (
    select
        r.rule_id, r.rule_kind, o.partner_id, o.metric as kpi, o.month as period,
        o.projected_attainment as value,
        r.threshold as limit_value, null::numeric as baseline, r.comparison
    from rules as r
    inner join objective_days as o on r.kpi is null or o.metric = r.kpi
    where r.rule_kind = 'pace' and o.elapsed_days >= r.min_elapsed_days
),

-- Held-share rules (§8.5 holds): per referrer and month, its held orders over its commissioned and held orders,
-- across destinations, once the month holds `min_orders` of them.
referrer_months as (
    select
        referrer_partner_id as partner_id, month,
        sum(held_orders)::numeric as held_orders,
        sum(commissioned_orders + held_orders)::numeric as orders
    from balances
    {% if as_of %}where month <= '{{ as_of }}'::date{% endif %}
    group by 1, 2
),

held_share_observations as (
    select
        r.rule_id, r.rule_kind, m.partner_id, r.kpi, m.month as period,
        round(m.held_orders / m.orders, 4) as value,
        r.threshold as limit_value, null::numeric as baseline, r.comparison
    from rules as r
    inner join referrer_months as m on m.orders >= r.min_volume and m.orders > 0
    where r.rule_kind = 'held_share'
),

observations as (
    select * from threshold_observations
    union all
    select * from trailing_observations
    union all
    select * from pace_observations
    union all
    select * from held_share_observations
)

select
    rule_id,
    rule_kind,
    partner_id,
    kpi,
    period,
    value,
    limit_value as threshold,
    baseline,
    comparison,
    coalesce(case when comparison = 'above' then value > limit_value else value < limit_value end, false) as breached
from observations
