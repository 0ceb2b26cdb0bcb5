-- §6 Commission terms of every credit row (int_attribution__credits): the dated contract in effect between the
-- destination and the referrer on the order date (int_contract_periods), else the destination's default
-- commission; rate_applied is the percent rate used (new_customer_rate on a customer's first order when set).
-- net_commissionable_amount is what a percent rate applies to: the amount minus the refunds before the lock date.
-- The §8 terms (tiers, caps, clawback) come from the same contract as the rate.
-- Ephemeral: compiled into int_order_attribution's statement.
{{ config(materialized='ephemeral') }}
with terms as (
    select
        c.*,
        c.cum_credit - c.credit                                           as prev_credit,
        greatest(0, c.commissionable_amount - c.refunded_before_lock_amount) as net_commissionable_amount,
        case when k.contract_type is not null then 'contract' else 'default' end as contract_source,
        k.effective_from                                                  as contract_effective_from,
        coalesce(k.contract_type, p.commission_type)                      as contract_type,
        case when k.contract_type is not null then k.rate else p.commission_rate end as base_rate,
        case when k.contract_type is not null then k.new_customer_rate else p.commission_new_customer_rate end
            as new_customer_rate,
        case when k.contract_type is not null then k.amount else p.commission_amount end as flat_amount,
        case when k.contract_type is not null then k.tiers else p.commission_tiers end as tiers,
        case when k.contract_type is not null then k.cap_per_order else p.commission_cap_per_order end
            as cap_per_order,
        case when k.contract_type is not null then k.cap_per_month else p.commission_cap_per_month end
            as cap_per_month,
        coalesce(case when k.contract_type is not null then k.clawback else p.commission_clawback end, false)
            as clawback
    from {{ ref('int_attribution__credits') }} as c
    left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = c.partner_id
    left join {{ ref('int_contract_periods') }} as k
        on k.destination_partner_id = c.partner_id
       and k.referrer_partner_id = c.referrer_partner_id
       and c.order_date >= k.starts
       and c.order_date < k.ends
)

select
    *,
    case
        when contract_type = 'percent' and is_new_customer and new_customer_rate is not null then new_customer_rate
        when contract_type = 'percent' then base_rate
    end as rate_applied
from terms
