-- Who owes whom: per referrer, destination and UTC month of the orders (configured model only), the commission
-- the referrer earned (= what the destination owes), its lock state and the refund leakage after the lock date,
-- from the additive monthly totals (int_partner_monthly_totals). Every order of a month has the month's lock date, so
-- the month's commission is locked or pending as a whole.
with months as (
    select *, {{ lock_date('month') }} as lock_date
    from {{ ref('int_partner_monthly_totals') }}
    where attributed_orders > 0
)

select
    referrer_partner_id,
    destination_partner_id,
    month,
    attributed_orders::bigint                                as attributed_orders,
    {{ cents('attributed_revenue_rc') }}                     as attributed_revenue_rc,
    {{ cents('net_attributed_revenue_rc') }}                 as net_attributed_revenue_rc,
    {{ cents('commission_rc') }}                             as commission_earned_rc,
    {{ cents('commission_rc') }}                             as commission_owed_rc,
    {{ cents("case when " ~ commission_state('lock_date') ~ " = 'locked' then commission_rc else 0 end") }}
                                                             as commission_locked_rc,
    {{ cents("case when " ~ commission_state('lock_date') ~ " = 'pending' then commission_rc else 0 end") }}
                                                             as commission_pending_rc,
    {{ cents('refund_leakage_rc') }}                         as refund_leakage_rc,
    lock_date,
    {{ commission_state('lock_date') }}                      as state
from months
