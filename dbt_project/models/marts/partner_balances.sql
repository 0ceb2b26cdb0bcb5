-- Who owes whom: per referrer, destination and UTC month of the orders (configured model only), the commission
-- the referrer earned (= what the destination owes), its lock state and the refund leakage after the lock date.
with commissions as (
    select *, {{ commission_state('lock_date') }} as commission_state
    from {{ ref('int_order_attribution') }}
    where is_commission_model and referrer_partner_id is not null
)

select
    referrer_partner_id,
    partner_id                                               as destination_partner_id,
    date_trunc('month', order_date::timestamp)::date         as month,
    count(*)                                                 as attributed_orders,
    {{ cents('sum(attributed_revenue_rc)') }}                as attributed_revenue_rc,
    {{ cents('sum(net_attributed_revenue_rc)') }}            as net_attributed_revenue_rc,
    {{ cents('sum(commission_rc)') }}                        as commission_earned_rc,
    {{ cents('sum(commission_rc)') }}                        as commission_owed_rc,
    {{ cents("coalesce(sum(commission_rc) filter (where commission_state = 'locked'), 0)") }}  as commission_locked_rc,
    {{ cents("coalesce(sum(commission_rc) filter (where commission_state = 'pending'), 0)") }} as commission_pending_rc,
    {{ cents('sum(refund_leakage_rc)') }}                    as refund_leakage_rc,
    max(lock_date)                                           as lock_date,
    case when bool_and(commission_state = 'locked') then 'locked' else 'pending' end as state
from commissions
group by referrer_partner_id, partner_id, date_trunc('month', order_date::timestamp)::date
