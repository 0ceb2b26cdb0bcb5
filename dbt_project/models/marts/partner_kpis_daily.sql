-- Daily KPIs per partner (UTC dates; an order counts on its order date, a click on its click date), from the additive
-- daily totals (int_partner_daily_totals): a partner of the config appears on a day it sent a click, was credited
-- for an order or owed a commission.
select
    t.kpi_date,
    t.partner_id,
    t.clicks_sent::bigint                                                                   as clicks_sent,
    t.referred_orders::bigint                                                               as referred_orders,
    round(t.referred_orders::numeric / nullif(t.clicks_sent, 0), 4)                         as conversion_rate,
    {{ cents('t.attributed_revenue_rc') }}                                                  as attributed_revenue_rc,
    {{ cents('t.net_attributed_revenue_rc') }}                                              as net_attributed_revenue_rc,
    {{ cents('t.attributed_revenue_rc / nullif(t.referred_orders, 0)') }}                   as aov_rc,
    round((t.attributed_revenue_rc - t.net_attributed_revenue_rc) / nullif(t.attributed_revenue_rc, 0), 4)
                                                                                            as refund_rate,
    round(t.referred_new_customer_orders::numeric / nullif(t.referred_orders, 0), 4)        as new_customer_rate,
    {{ cents('t.commission_earned_rc / nullif(t.clicks_sent, 0)') }}                        as epc_rc,
    {{ cents('t.commission_earned_rc') }}                                                   as commission_earned_rc,
    {{ cents('t.commission_owed_rc') }}                                                     as commission_owed_rc,
    {{ cents('t.refund_leakage_rc') }}                                                      as refund_leakage_rc
from {{ ref('int_partner_daily_totals') }} as t
inner join {{ ref('stg_cfg__partners') }} as p on p.partner_id = t.partner_id
where t.clicks_sent > 0 or t.referred_orders > 0 or t.owed_orders > 0
