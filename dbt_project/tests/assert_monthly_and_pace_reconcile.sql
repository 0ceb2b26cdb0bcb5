-- partner_kpis_monthly and objective_pace_daily restate published numbers: the month's commission earned and owed
-- equal partner_kpis_daily's (commissioned orders of the month, §8.6), and an objective's last day reaches
-- objective_progress's actual. Any row returned is a disagreement.
with daily as (
    select partner_id, date_trunc('month', kpi_date::timestamp)::date as month,
           sum(commission_earned_rc) as earned, sum(commission_owed_rc) as owed, sum(referred_orders) as orders
    from {{ ref('partner_kpis_daily') }}
    group by 1, 2
)

select 'partner_kpis_monthly' as model, m.partner_id, m.month
from {{ ref('partner_kpis_monthly') }} as m
full outer join daily as d on d.partner_id = m.partner_id and d.month = m.month
where m.partner_id is null
   or m.commission_earned_rc is distinct from coalesce(d.earned, 0)
   or m.commission_owed_rc is distinct from coalesce(d.owed, 0)
   or m.referred_orders is distinct from coalesce(d.orders, 0)

union all

select 'objective_pace_daily', p.partner_id, p.month
from {{ ref('objective_pace_daily') }} as p
inner join {{ ref('objective_progress') }} as o
    on o.partner_id = p.partner_id and o.month = p.month and o.metric = p.metric
where p.elapsed_days = p.days_in_month and p.actual_to_date is distinct from o.actual
