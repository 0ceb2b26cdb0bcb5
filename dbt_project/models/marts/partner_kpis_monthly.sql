-- Each partner's UTC month, what the scorecard compares month on month: the additive columns of partner_kpis_daily
-- summed over the month (conversion divides those sums, §6), and from partner_balances (§8.6) what the partner
-- earned as referrer and owes as destination, its clawbacks, adjustments and held amounts as referrer, and the
-- balances of both sides. A row exists for a configured partner and month with a KPI day or a balance row.
with daily as (
    select
        partner_id,
        date_trunc('month', kpi_date::timestamp)::date as month,
        sum(clicks_sent)               as clicks_sent,
        sum(referred_orders)           as referred_orders,
        sum(attributed_revenue_rc)     as attributed_revenue_rc,
        sum(net_attributed_revenue_rc) as net_attributed_revenue_rc
    from {{ ref('partner_kpis_daily') }}
    group by 1, 2
),

as_referrer as (
    select
        referrer_partner_id as partner_id,
        month,
        sum(commission_rc)  as commission_earned_rc,
        sum(clawback_rc)    as clawback_rc,
        sum(adjustments_rc) as adjustments_rc,
        sum(held_rc)        as held_rc,
        sum(held_orders)    as held_orders,
        sum(balance_rc)     as balance_earned_rc
    from {{ ref('partner_balances') }}
    group by 1, 2
),

as_destination as (
    select
        destination_partner_id as partner_id,
        month,
        sum(commission_rc) as commission_owed_rc,
        sum(balance_rc)    as balance_owed_rc
    from {{ ref('partner_balances') }}
    group by 1, 2
),

partner_months as (
    select partner_id, month from daily
    union
    select partner_id, month from as_referrer
    union
    select partner_id, month from as_destination
)

select
    m.partner_id,
    m.month,
    coalesce(d.clicks_sent, 0)::bigint                                           as clicks_sent,
    coalesce(d.referred_orders, 0)::bigint                                       as referred_orders,
    round(d.referred_orders::numeric / nullif(d.clicks_sent, 0), 4)              as conversion_rate,
    {{ cents('coalesce(d.attributed_revenue_rc, 0)') }}                          as attributed_revenue_rc,
    {{ cents('coalesce(d.net_attributed_revenue_rc, 0)') }}                      as net_attributed_revenue_rc,
    {{ cents('coalesce(r.commission_earned_rc, 0)') }}                           as commission_earned_rc,
    {{ cents('coalesce(o.commission_owed_rc, 0)') }}                             as commission_owed_rc,
    {{ cents('coalesce(r.clawback_rc, 0)') }}                                    as clawback_rc,
    {{ cents('coalesce(r.adjustments_rc, 0)') }}                                 as adjustments_rc,
    {{ cents('coalesce(r.held_rc, 0)') }}                                        as held_rc,
    coalesce(r.held_orders, 0)::bigint                                           as held_orders,
    {{ cents('coalesce(r.balance_earned_rc, 0)') }}                              as balance_earned_rc,
    {{ cents('coalesce(o.balance_owed_rc, 0)') }}                                as balance_owed_rc,
    {{ cents('coalesce(r.balance_earned_rc, 0) - coalesce(o.balance_owed_rc, 0)') }} as net_balance_rc
from partner_months as m
inner join {{ ref('stg_cfg__partners') }} as p on p.partner_id = m.partner_id
left join daily as d on d.partner_id = m.partner_id and d.month = m.month
left join as_referrer as r on r.partner_id = m.partner_id and r.month = m.month
left join as_destination as o on o.partner_id = m.partner_id and o.month = m.month
