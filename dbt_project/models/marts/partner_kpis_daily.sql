-- Daily KPIs per partner (UTC dates; an order counts on its order date, a click on its click date).
with partners as (
    select partner_id from {{ ref('stg_cfg__partners') }}
),

clicks as (
    select referrer_partner_id as partner_id, {{ utc_date('clicked_at') }} as kpi_date, count(*) as clicks_sent
    from {{ ref('int_network__clicks') }}
    where referrer_partner_id <> destination_partner_id
    group by 1, 2
),

-- the configured model's credited rows, read once for both sides; (order, model, referrer) is unique, so a
-- referrer's rows of one date are distinct orders and count(*) counts orders
commissions as materialized (
    select partner_id, order_id, referrer_partner_id, order_date, is_new_customer, attributed_revenue_rc,
           net_attributed_revenue_rc, commission_rc, refund_leakage_rc
    from {{ ref('int_order_attribution') }}
    where referrer_partner_id is not null and is_commission_model
),

earned as (
    select
        referrer_partner_id                                 as partner_id,
        order_date                                          as kpi_date,
        count(*)                                            as referred_orders,
        count(*) filter (where is_new_customer)             as referred_new_customer_orders,
        sum(attributed_revenue_rc)                          as attributed_revenue_rc,
        sum(net_attributed_revenue_rc)                      as net_attributed_revenue_rc,
        sum(commission_rc)                                  as commission_earned_rc,
        sum(refund_leakage_rc)                              as refund_leakage_rc
    from commissions
    group by 1, 2
),

owed as (
    select partner_id, order_date as kpi_date, sum(commission_rc) as commission_owed_rc
    from commissions
    group by 1, 2
),

days as (
    select partner_id, kpi_date from clicks
    union
    select partner_id, kpi_date from earned
    union
    select partner_id, kpi_date from owed
),

joined as (
    select
        d.kpi_date,
        d.partner_id,
        coalesce(c.clicks_sent, 0)                  as clicks_sent,
        coalesce(e.referred_orders, 0)              as referred_orders,
        coalesce(e.referred_new_customer_orders, 0) as referred_new_customer_orders,
        coalesce(e.attributed_revenue_rc, 0)        as attributed_revenue_rc,
        coalesce(e.net_attributed_revenue_rc, 0)    as net_attributed_revenue_rc,
        coalesce(e.commission_earned_rc, 0)         as commission_earned_rc,
        coalesce(o.commission_owed_rc, 0)           as commission_owed_rc,
        coalesce(e.refund_leakage_rc, 0)            as refund_leakage_rc
    from days as d
    inner join partners as p on p.partner_id = d.partner_id
    left join clicks as c on c.partner_id = d.partner_id and c.kpi_date = d.kpi_date
    left join earned as e on e.partner_id = d.partner_id and e.kpi_date = d.kpi_date
    left join owed as o on o.partner_id = d.partner_id and o.kpi_date = d.kpi_date
)

select
    kpi_date,
    partner_id,
    clicks_sent,
    referred_orders,
    round(referred_orders::numeric / nullif(clicks_sent, 0), 4)                            as conversion_rate,
    {{ cents('attributed_revenue_rc') }}                                                    as attributed_revenue_rc,
    {{ cents('net_attributed_revenue_rc') }}                                                as net_attributed_revenue_rc,
    {{ cents('attributed_revenue_rc / nullif(referred_orders, 0)') }}                       as aov_rc,
    round((attributed_revenue_rc - net_attributed_revenue_rc) / nullif(attributed_revenue_rc, 0), 4) as refund_rate,
    round(referred_new_customer_orders::numeric / nullif(referred_orders, 0), 4)            as new_customer_rate,
    {{ cents('commission_earned_rc / nullif(clicks_sent, 0)') }}                            as epc_rc,
    {{ cents('commission_earned_rc') }}                                                     as commission_earned_rc,
    {{ cents('commission_owed_rc') }}                                                       as commission_owed_rc,
    {{ cents('refund_leakage_rc') }}                                                        as refund_leakage_rc
from joined
